"""The UDP relay as a process of its own: `python -m vinom.server.relay`.

The relay's options (`RelayOptions`, each checked in one line), the service
they make (`relay_root`: the relay and, with `--ops-port`, `/health` and the
Prometheus `/metrics` of its counters), and `main`, which runs it until
SIGTERM or SIGINT and exits 0. docs/gateway.md, "UDP relay".
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from vinom.gateway.relay import RelayCollector, RelayService, relay_service
from vinom.gateway.relay_core import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_ROUTES
from vinom.server.checks import (
    bind_address,
    check_endpoint,
    param,
    parse_port_range,
    positive_float,
    positive_int,
    read_token_key,
)
from vinom.server.logs import Site
from vinom.server.ops import OpsAnswer
from vinom.server.startup import Listener, StartupError

_log = Logger()
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def relay_params(ports: str | None) -> list[list[Any]]:
    """The relay's options, one definition for `twistd vinom --role gateway` (`ports`
    None: no relay unless --relay-ports is given) and `python -m vinom.server.relay`."""
    return [
        param("relay-ports", None, ports, "UDP relay: the public UDP port range players send "
              "to, first-last (a single port: N)."
              + (" With --role gateway: runs the relay in the gateway's process." if ports is None
                 else "")),
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
    of `--role gateway --relay-ports` and `python -m vinom.server.relay`."""
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


class RelayOptions(usage.Options):
    """The relay's command line when it runs alone."""

    optParameters = [
        *relay_params("7800"),
        param("relay-key-file", None, None, "Route-token key shared with the lobbies "
              "(their --relay-key-file; 32 bytes: raw, hex or base64). Required."),
        param("ops-port", None, "tcp:9180:interface=127.0.0.1", "Operations endpoint "
              "(/health, /metrics), a strports description, or 'none'."),
    ]  # fmt: skip

    def postOptions(self) -> None:
        check_relay_ports(self)
        if self["ops-port"] == "none":
            self["ops-port"] = None
        else:
            check_endpoint(self["ops-port"], "ops-port")


def relay_root(options: usage.Options, reactor: Any) -> tuple[service.MultiService, RelayService]:
    """The relay's services from its options: the relay, then its operations endpoint."""
    root = service.MultiService()
    relay = build_relay(options, reactor)
    relay.setServiceParent(root)
    if options["ops-port"] is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RelayCollector(relay.relay.core))
        resource = Resource()
        resource.putChild(b"health", OpsAnswer(lambda: (200, b"ok\n", "text/plain")))
        resource.putChild(
            b"metrics", OpsAnswer(lambda: (200, generate_latest(registry), METRICS_TYPE))
        )
        Listener(options["ops-port"], Site(resource), reactor, "ops-port").setServiceParent(root)
    return root, relay


def main(argv: Sequence[str] | None = None) -> None:
    """Run the relay until SIGTERM or SIGINT (exit 0); a bad option is one line (exit 2),
    a port it cannot listen on one line (exit 1)."""
    options = RelayOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        print(f"vinom relay: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    from twisted.internet import reactor as global_reactor

    reactor = cast(Any, global_reactor)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    root, relay = relay_root(options, reactor)
    try:
        root.startService()
    except StartupError as e:
        print(f"vinom relay: {str(e.code).removeprefix('vinom: ')}", file=sys.stderr)
        raise SystemExit(1) from None
    failed: list[str] = []

    def announce_ops(port: IListeningPort) -> None:
        where = cast(Any, port.getHost())
        _log.info("vinom relay: operations on http://{host}:{port}/metrics",
                  host=where.host, port=where.port)  # fmt: skip

    def ops_failed(failure: Failure) -> None:
        failed.append(failure.getErrorMessage())
        print(f"vinom relay: {failure.getErrorMessage()}", file=sys.stderr)
        reactor.stop()

    ports = [cast(Any, p.getHost()).port for p in relay.relay.public]
    _log.info("vinom relay: players send to udp {interface}:{first}-{last}",
              interface=options["relay-interface"] or "*", first=ports[0],
              last=ports[-1])  # fmt: skip
    for child in root:
        if isinstance(child, Listener):
            child.port().addCallbacks(announce_ops, ops_failed)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run()
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
