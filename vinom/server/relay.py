"""The UDP relay as a process of its own: `twistd -n vinom relay` (a subcommand of the
twistd plugin; `twistd vinom-relay`, its previous spelling, runs it too, with a hint).

The relay's options (`relay_params`, shared with `twistd vinom
gateway --relay-ports`; `Options` when it runs alone, each mistake one line)
and the service they make (`makeService`: the relay and, with `--ops-port`,
`/health`, `/ready` and the Prometheus `/metrics` of its counters). twistd
runs it until SIGTERM or SIGINT. docs/gateway.md, "UDP relay".
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage

from vinom.gateway.relay import RelayCollector, RelayService, relay_service
from vinom.gateway.relay_core import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_ROUTES
from vinom.server.checks import (
    bind_address,
    param,
    parse_port_range,
    positive_float,
    positive_int,
    read_token_key,
)
from vinom.server.endpoints import description_of
from vinom.server.ops import operations_site
from vinom.server.startup import Listener, PluginOptions, StartupError

_log = Logger()
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


def build_relay(options: usage.Options, reactor: Any) -> RelayService:
    """The relay service its options describe (after `check_relay_ports`): the one builder
    of `twistd vinom gateway --relay-ports` and `twistd vinom relay`."""
    built = relay_service(
        reactor, key=options["relay-key"], ports=options["relay-port-range"],
        interface=options["relay-interface"], host_interface=options["relay-host-interface"],
        idle_timeout=options["relay-idle-timeout"], max_routes=options["relay-max-routes"],
    )  # fmt: skip
    return _CheckedRelayService(built.relay, built.ports, built.interface)


class _CheckedRelayService(RelayService):
    """A public port it cannot listen on ends the start in one line (`StartupError`)."""

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as e:
            self.relay.stop()  # the ports it did open
            raise StartupError(f"cannot listen on udp {e.interface or '*'}:{e.port} for "
                               f"--relay-ports: {e.socketError}") from None  # fmt: skip


class Options(PluginOptions):
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


def makeService(options: usage.Options, reactor: Any = None) -> service.MultiService:
    """The relay and, with --ops-port, its operations endpoint (vinom.server.ops's one
    builder: /health, /ready, /metrics of its counters). Where players send and where
    the figures are is logged once everything listens."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    root = service.MultiService()
    relay = build_relay(options, reactor)
    relay.setServiceParent(root)
    ops: Listener | None = None
    if options["ops-port"] is not None:
        site, _registry = operations_site([RelayCollector(relay.relay.core)])
        ops = Listener(options["ops-port"], site, reactor, "ops-port")
        ops.setServiceParent(root)
    _Announcement(relay, ops, options["relay-interface"]).setServiceParent(root)
    return root


class _Announcement(service.Service):
    """Says, once started, where players send and where the operations endpoint is."""

    def __init__(self, relay: RelayService, ops: Listener | None, interface: str) -> None:
        self.relay, self.ops, self.interface = relay, ops, interface

    def startService(self) -> None:
        super().startService()
        ports = [cast(Any, p.getHost()).port for p in self.relay.relay.public]
        _log.info("vinom relay: players send to udp {interface}:{first}-{last}",
                  interface=self.interface or "*", first=ports[0], last=ports[-1])  # fmt: skip
        if self.ops is not None:
            self.ops.port().addCallback(self._announce_ops)

    def _announce_ops(self, port: IListeningPort) -> None:
        where = cast(Any, port.getHost())
        _log.info("vinom relay: operations on http://{host}:{port}/metrics",
                  host=where.host, port=where.port)  # fmt: skip
