"""The UDP relay as a process of its own: `twistd -n vinom relay` (a subcommand the fleet
adds; `twistd vinom-relay`, its previous spelling, runs it too, with a hint).

The relay's options are vinom.fleet.options's (`relay_params`, shared with
`twistd vinom gateway --relay-ports`; `Options` when it runs alone, each
mistake one line); here is the service they make (`makeService`: the relay
and, with `--ops-port`, `/health`, `/ready` and the Prometheus `/metrics` of
its counters). twistd runs it until SIGTERM or SIGINT. docs/gateway.md, "UDP
relay".
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage

from vinom.fleet.options import RelayOptions as Options
from vinom.gateway.relay import RelayCollector, RelayService, relay_service
from vinom.net.reactor import install as install_reactor
from vinom.server.ops import operations_site
from vinom.server.startup import Listener, StartupError

__all__ = ["Options", "build_relay", "makeService"]

_log = Logger()
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


def makeService(options: usage.Options, reactor: Any = None) -> service.MultiService:
    """The relay and, with --ops-port, its operations endpoint (vinom.server.ops's one
    builder: /health, /ready, /metrics of its counters). Where players send and where
    the figures are is logged once everything listens."""
    if reactor is None:
        reactor = install_reactor()  # unless --reactor chose one (vinom.net.reactor)
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
