"""The options vinom's fleet adds to `twistd vinom` (vinom.fleet.plugin): its groups, its
subcommands' own commands and their checks.

`RedisOptions` (`--redis` and its files: every role of a cluster, and the whole
server on Redis), `PlacementOptions` (how a game host of the cluster takes
matches), `AgonesOptions` (a game host under Agones), `GatewayOptions` (the
gateway and the relay in its process); `GatewayCommand` and `RelayCommand` are
`twistd vinom gateway` and `twistd vinom relay`. `check` is the fleet's part of
`RoleOptions.postOptions` (vinom.server.options): it sets `redis-settings`, and
`shared` (the same settings: what the processes share), and the Agones SDK port.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger
from twisted.python import usage

from vinom.cluster.settings import PLACEMENTS, RedisSettings
from vinom.fleet.redis import REDIS_START_WAIT, redis_settings
from vinom.gateway.relay_core import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_ROUTES
from vinom.server.checks import (
    bind_address,
    choice,
    existing_file,
    limit,
    param,
    parse_port_range,
    positive_float,
    positive_int,
    read_token_key,
)
from vinom.server.endpoints import description_of
from vinom.server.option_groups import (
    CertificateOptions,
    OptionGroup,
    RelayKeyOptions,
    ServerOptions,
)
from vinom.server.options import RoleOptions
from vinom.server.startup import PluginOptions

DEFAULT_GATEWAY = "tcp:7300"
_log = Logger()


def relay_params(ports: str | None) -> list[list[Any]]:
    """The relay's options, one definition for `twistd vinom gateway` (`ports`
    None: no relay unless --relay-ports is given) and `twistd vinom relay`."""
    return [
        param("relay-ports", None, ports, "UDP relay: the public UDP port range players send "
              "to, first-last (a single port: N)."
              + (" Runs the relay in the gateway's process." if ports is None else "")),
        param("relay-interface", None, "", "UDP relay: address the public ports bind to "
              "('' = all).", bind_address),
        param("relay-host-interface", None, "", "UDP relay: address the routes' sockets toward "
              "the game hosts bind to ('' = all).", bind_address),
        param("relay-idle-timeout", None, DEFAULT_IDLE_TIMEOUT, "UDP relay: seconds without a "
              "datagram from a player after which its route is forgotten.", positive_float),
        param("relay-max-routes", None, DEFAULT_MAX_ROUTES, "UDP relay: most routes (relayed "
              "players) open at once; a new token beyond it is dropped (full).", positive_int),
    ]  # fmt: skip


def check_relay_ports(options: usage.Options) -> None:
    """`relay-port-range` from --relay-ports, and `relay-key` from --relay-key-file, which
    it needs; each mistake one line."""
    low, high = parse_port_range(options["relay-ports"], "--relay-ports")
    options["relay-port-range"] = range(low, high + 1)
    if options["relay-key-file"] is None:
        raise usage.UsageError("--relay-ports needs --relay-key-file: the route-token key the "
                               "lobbies' --relay-key-file names")  # fmt: skip
    options["relay-key"] = read_token_key(options["relay-key-file"], "--relay-key-file")


class RedisOptions(OptionGroup):
    """The Redis that the processes of one deployment share (docs/scaling.md)."""

    title = "Redis (a cluster)"
    optParameters = [
        param(
            "redis",
            None,
            None,
            "Redis URL, redis://[:password@]host[:port][/db] (rediss:// for TLS), or "
            "redis+sentinel://[:password@]host[:port][,host[:port]...]/master-name[/db] for "
            "Redis Sentinel (port 26379 by default), shared by every lobby and game host of "
            "one deployment (players, queues, live hosts, placements). Without it everything "
            "stays in this process's memory. Needs --token-key-file. Keep the password out of "
            "it (`ps` shows the command line): --redis-password-file or $VINOM_REDIS_PASSWORD.",
        ),
        param(
            "redis-password-file",
            None,
            None,
            "File holding the Redis password (one line). Default: $VINOM_REDIS_PASSWORD, "
            "else the password in --redis, else none.",
        ),
        param(
            "redis-user",
            None,
            None,
            "With --redis: the Redis ACL user (AUTH user password) whose password "
            "--redis-password-file holds, as each role's own user (docs/scaling.md, \"Redis "
            "users\"). Default: Redis's `default` user.",
        ),
        param(
            "redis-sentinel-password-file",
            None,
            None,
            "With a redis+sentinel:// --redis: file holding the sentinels' own password "
            "(their requirepass; one line). Default: $VINOM_REDIS_SENTINEL_PASSWORD, else none.",
        ),
        param(
            "redis-ca-file",
            None,
            None,
            "CA certificate(s) (PEM) that issued the certificate of a rediss:// Redis. "
            "Default: the system's trusted roots.",
        ),
        param(
            "redis-start-wait",
            None,
            REDIS_START_WAIT,
            "With --redis: seconds a starting server waits for Redis to answer before it "
            "gives up in one line (a Redis started alongside it, or still loading).",
            positive_float,
        ),
    ]


class PlacementOptions(OptionGroup):
    """How a game host of a cluster takes the matches its realm's lobbies place."""

    title = "Placement (a cluster's game host)"
    optParameters = [
        param(
            "placement",
            None,
            "spread",
            "With --redis, which game host with a free slot takes a match first (a game "
            "host's option: hosts take matches from their realm's queue): spread (the "
            "least loaded: matches spread over the hosts) or pack (the most loaded: hosts "
            "fill one after another, so idle ones can go, as Agones's autoscaling wants).",
            choice(PLACEMENTS),
        ),
    ]


class AgonesOptions(OptionGroup):
    """A game host under Agones (docs/kubernetes.md)."""

    title = "Agones"
    optFlags = [
        [
            "agones",
            None,
            "Game hosts under Agones (docs/kubernetes.md): tell the Agones SDK server at "
            "localhost:$AGONES_SDK_HTTP_PORT (default 9358) Ready, Health, the free match "
            "capacity (Counter 'matches') and Shutdown after a drain; take no new matches "
            "once Agones marks the game server Shutdown.",
        ],
    ]

    optLimits = [
        limit(
            "agones-health-interval",
            2.0,
            "With --agones: seconds between two Health calls (Agones's health check "
            "period is 5 s by default: keep this below it).",
            positive_float,
        ),
    ]


class GatewayOptions(OptionGroup):
    """The gateway: one public port in front of the lobbies, and the UDP relay in its process
    (docs/gateway.md)."""

    title = "The gateway and its UDP relay"
    optParameters = [
        param(
            "gateway",
            None,
            DEFAULT_GATEWAY,
            "Its public listener, a port or a strports description "
            "(plain TCP: TLS passes through to the backends).",
        ),
        param(
            "gateway-rules",
            None,
            None,
            "Without --redis: the rule set's JSON file (docs/gateway.md), "
            "read again on SIGHUP.",
            existing_file,
        ),
        param(
            "backend-interface",
            None,
            "",
            "The local address its connections to the backends are made "
            "from ('' = the system's choice); the address the backends' --trusted-proxy "
            "sees.",
            bind_address,
        ),
        *relay_params(None),
    ]

    optLimits = [
        limit(
            "sniff-limit",
            8192,
            "Bytes a client may send before the gateway knows where to "
            "route it; past it the connection is closed (counted: too_large).",
            positive_int,
        ),
        limit(
            "sniff-timeout",
            5.0,
            "Seconds a client has to send its first message; past it the "
            "connection is closed (counted: timeout).",
            positive_float,
        ),
    ]


class GatewayCommand(RoleOptions, ServerOptions, CertificateOptions, RelayKeyOptions):
    """`twistd vinom gateway`: one public port in front of the lobbies (docs/gateway.md)."""

    role = "gateway"
    synopsis = "[options]"
    longdesc = (
        "Runs the gateway: one public port in front of the lobbies and game hosts, with its "
        "rules from Redis (--redis) or a file (--gateway-rules), and with --relay-ports the "
        "UDP relay (docs/gateway.md)."
    )

    def _check_relay(self) -> None:
        """The relay runs in the gateway's process: --relay-ports and its key."""
        if self["relay-ports"] is None:
            if self["relay-key-file"] is not None:
                raise usage.UsageError("--relay-key-file of twistd vinom gateway is the "
                                       "relay's: give --relay-ports too")  # fmt: skip
            self["relay-key"] = None
            return
        check_relay_ports(self)


class RelayOptions(PluginOptions):
    """`twistd vinom relay`'s command line: the relay alone (also the previous spelling's,
    `twistd vinom-relay`, whose plugin names this class)."""

    command = "vinom-relay"

    optParameters = [
        *relay_params("7800"),
        param("relay-key-file", None, None, "Route-token key shared with the lobbies "
              "(their --relay-key-file; 32 bytes: raw, hex or base64). Required."),
        param("ops-port", None, "tcp:9180:interface=127.0.0.1", "Operations endpoint "
              "(/health, /ready, /metrics): a port (on 127.0.0.1), a strports description, "
              "or 'none'."),
    ]  # fmt: skip

    def postOptions(self) -> None:
        if self.command == "vinom-relay":
            _log.warn("vinom: twistd vinom-relay is now twistd vinom relay; the old spelling "
                      "goes in the next release")  # fmt: skip
        check_relay_ports(self)
        self["ops-port"] = description_of("ops-port", self["ops-port"])


class RelayCommand(RelayOptions):
    """`twistd vinom relay`: the UDP relay alone (vinom.fleet.relay)."""

    command = "vinom relay"


def check(options: usage.Options) -> None:
    """The fleet's options, checked (module docstring)."""
    options["agones-sdk-port"] = None
    if options["role"] == "gateway":
        _check_gateway(options)
        return
    if options["redis"] is None:
        options["redis-settings"] = None
        if options["role"] != "all":
            raise usage.UsageError(
                f"twistd vinom {options['role']} needs --redis: lobbies and game hosts in "
                "separate processes find each other in Redis"
            )
        for name in ("redis-password-file", "redis-user", "redis-sentinel-password-file",
                     "redis-ca-file"):  # fmt: skip
            if options[name] is not None:
                raise usage.UsageError(f"--{name} is for --redis, which is not given")
        return
    options["redis-settings"] = options["shared"] = _redis_settings(options)
    if options["token-key"] is None:
        raise usage.UsageError(
            "--redis needs --token-key-file: the lobbies and game hosts on one Redis must "
            "share the connect-token key (a file of 32 random bytes the operator makes, "
            "e.g. `head -c 32 /dev/urandom > vinom-token.key`)"
        )
    if options["agones"]:
        try:
            from vinom.fleet.agones import sdk_port

            options["agones-sdk-port"] = sdk_port(os.environ)
        except ValueError as e:
            raise usage.UsageError(f"--agones: {e}") from None


def _check_gateway(options: usage.Options) -> None:
    if options["redis"] is None:
        options["redis-settings"] = None
        if options["gateway-rules"] is None:
            raise usage.UsageError(
                "twistd vinom gateway needs its rules: --gateway-rules FILE, or --redis "
                "(docs/gateway.md)"
            )
        return
    options["redis-settings"] = options["shared"] = _redis_settings(options)


def _redis_settings(options: usage.Options) -> RedisSettings:
    """--redis and the files that go with it (password, sentinel password, CA)."""
    return redis_settings(
        options["redis"], options["redis-password-file"], options["redis-sentinel-password-file"],
        options["redis-ca-file"], user=options["redis-user"],
    )
