"""`twistd vinom gateway`: the gateway role's services (docs/gateway.md).

`build_gateway` adds to the root service, in start order: the Redis pool and
the rule reader (with --redis), the gateway (health checks), the discovery of
backends named in DNS (vinom.gateway.discovery), its public
listener (--gateway), the operations endpoint (--ops-port: /health, /ready,
/metrics, /status), the UDP relay (--relay-ports: vinom.fleet.relay's builder,
its counters on the same /metrics) and the announcement. The rule source
(vinom.gateway.sources.IRuleSource) is Redis's with --redis; without it the
rules come from --gateway-rules. SIGHUP reads the source again. SIGTERM
drains: the listener stops, open connections may run on for up to --limit drain-timeout, then
are closed; the relay forwards on while a route is open, within the same
--limit drain-timeout, then closes; and the process exits 0.
"""

from __future__ import annotations

import signal
import ssl
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import usage

from vinom.fleet.relay import build_relay
from vinom.gateway.discovery import BackendDiscovery
from vinom.gateway.relay import RelayCollector, RelayService
from vinom.gateway.rules import RuleError, RuleSet
from vinom.gateway.service import Gateway, load_rules
from vinom.gateway.sources import FileRuleSource, IRuleSource
from vinom.net.tls import TLSFiles
from vinom.server.certs import dev_certificate_in
from vinom.server.endpoints import listening_description
from vinom.server.logs import ServerRoot, Site
from vinom.server.ops import operations_site
from vinom.server.startup import Address, Announcement, Listener, StartupError

_log = Logger()


def build_gateway(options: usage.Options, reactor: Any, root: ServerRoot, install: bool) -> None:
    """The gateway role (module docstring); `install`: under twistd (signal handlers)."""
    rules = initial_rules(options)
    gateway = Gateway(rules, reactor, sniff_limit=options["sniff-limit"],
                      sniff_timeout=options["sniff-timeout"],
                      drain_timeout=options["drain-timeout"],
                      tls_context=gateway_tls(options),
                      source=options["backend-interface"] or None)  # fmt: skip
    settings = options["redis-settings"]
    if settings is not None:
        from vinom.cluster.client import RedisClient
        from vinom.cluster.gateway_rules import RedisGatewayRules
        from vinom.cluster.inflight import InFlightCalls
        from vinom.cluster.services import RedisClientService

        redis = RedisClient.open(settings, reactor)
        _add(root, "redis", RedisClientService(redis, reactor, InFlightCalls(reactor)))
        source: IRuleSource = RedisGatewayRules(redis, gateway, reactor)
    else:
        source = FileRuleSource(options["gateway-rules"], gateway)
    _add(root, "gateway-rules", source)
    _add(root, "gateway", gateway)
    discovery = _add(root, "gateway-discovery", BackendDiscovery(gateway, reactor))
    gateway.rules_in_force = discovery.check_interval
    listener = _add(root, "gateway-listener",
                    Listener(listening_description("gateway", options["gateway"]),
                             gateway.factory, reactor, "gateway"))  # fmt: skip
    gateway.stop_listening = listener.stopService
    relay: RelayService | None = None
    if options["relay-ports"] is not None:
        relay = _add(root, "relay", build_relay(options, reactor))
    drain = GatewayDrain(gateway, relay, reactor, options["drain-timeout"])
    root.before_stop = drain.run
    addresses = [Address("the gateway (every client kind)", listener, lambda h, p: f"{h}:{p}")]
    if options["ops-port"] is not None:
        site = gateway_ops_site(gateway, token=options["ops-token"], relay=relay)
        ops = _add(root, "ops", Listener(options["ops-port"], site, reactor, "ops-port"))
        addresses.append(Address("gateway operations", ops, lambda h, p: f"http://{h}:{p}/status"))
    if install:
        # SIGTERM and SIGINT stop the reactor, and the root drains before its children
        # stop (a second one closes the connections at once); SIGHUP reads the rules again.
        reactor.callWhenRunning(install_signal_handlers, drain, reactor)

        # With --redis too: SIGHUP's default action would end the gateway, which an
        # operator used to reloading with it does not expect; it reads Redis at once.
        # Installed now, not once the reactor runs: twistd starts the services (and the
        # start-up lines say where the gateway listens) before it runs the reactor, and
        # the reactor leaves SIGHUP alone.
        def reload(number: int, frame: object) -> None:
            reactor.callFromThread(source.read)

        signal.signal(signal.SIGHUP, reload)
    # Said once everything listens, as a lobby's start says what runs.
    lines: list[tuple[str, dict[str, object]]] = [
        ("vinom: gateway on {where}, rules from {origin}",
         {"where": options["gateway"], "origin": source.origin}),
    ]  # fmt: skip
    if relay is not None:
        lines.append(("vinom: UDP relay: players send to udp {interface}:{ports}",
                      {"interface": options["relay-interface"] or "*",
                       "ports": options["relay-ports"]}))  # fmt: skip
    _add(root, "announcement", Announcement(addresses, options["public-host"], lines))


class GatewayDrain:
    """The gateway's drain, and its relay's: the TCP connections as `Gateway.drain` says;
    the relay forwards on (it is stopped only after the drain) until no route is open or
    `timeout` passed, counted from the same SIGTERM. `cut` ends both waits."""

    def __init__(self, gateway: Gateway, relay: RelayService | None, reactor: Any,
                 timeout: float) -> None:  # fmt: skip
        self.gateway, self.relay, self.reactor, self.timeout = gateway, relay, reactor, timeout
        self._routes_gone: Deferred[None] | None = None

    def run(self) -> Deferred[None]:
        waits: list[Deferred[Any]] = [self.gateway.drain()]
        if self.relay is not None:
            waits.append(self._wait_for_routes(self.relay))
        return gatherResults(waits).addCallback(lambda _: None)

    def _wait_for_routes(self, relay: RelayService) -> Deferred[None]:
        core = relay.relay.core
        gone: Deferred[None] = Deferred()
        self._routes_gone = gone
        if core.route_count:
            _log.info("relay: draining: {n} route(s) may stay up to {timeout:g} s",
                      n=core.route_count, timeout=self.timeout)  # fmt: skip

        def check() -> None:
            if not core.route_count and not gone.called:
                gone.callback(None)

        # Routes end when their players stop sending (--relay-idle-timeout): polled,
        # as the core keeps no callback for it.
        poll = LoopingCall(check)
        poll.clock = self.reactor
        poll.start(0.2, now=True)
        deadline = self.reactor.callLater(self.timeout, self._routes_over)

        def done(_: object) -> None:
            poll.stop()
            if deadline.active():
                deadline.cancel()

        gone.addCallback(done)
        return gone

    @property
    def draining(self) -> bool:
        return self.gateway.draining

    def cut(self) -> None:
        """End the drain now: the gateway's connections are closed, the relay stops."""
        if self.gateway.draining:
            self.gateway.cut_drain()
        self._routes_over()

    def _routes_over(self) -> None:
        if self._routes_gone is not None and not self._routes_gone.called:
            _log.info("relay: drain over: {n} route(s) end",
                      n=self.relay.relay.core.route_count if self.relay else 0)  # fmt: skip
            self._routes_gone.callback(None)


def install_signal_handlers(drain: GatewayDrain, reactor: Any) -> None:
    """Put the gateway's SIGTERM and SIGINT handlers in place of the reactor's, so that the
    process drains and exits 0 (twistd would end itself with the signal it received)."""

    def on_signal(number: int) -> None:
        if drain.draining:
            drain.cut()
            return
        _log.info("signal {name}: draining, then stopping (send it again to stop at once)",
                  name=signal.Signals(number).name)  # fmt: skip
        reactor.stop()

    def signalled(number: int, frame: object) -> None:
        # A Python signal handler runs between two bytecodes of the reactor thread.
        reactor.callFromThread(on_signal, number)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signalled)


def gateway_tls(options: usage.Options) -> ssl.SSLContext:
    """The TLS of the routes that terminate TLS here: --certificate/--private-key, else
    the dev certificate in --data-dir (made on first start), served as at a lobby
    (vinom.net.tls; docs/gateway.md says what resumes)."""
    if options["certificate"] is not None:
        certificate, key = options["certificate"], options["private-key"]
    else:
        paths = dev_certificate_in(options["data-dir"])
        certificate, key = str(paths.certificate), str(paths.private_key)
    return TLSFiles(key, certificate).context()


def initial_rules(options: usage.Options) -> RuleSet:
    """The rule set to start with: --gateway-rules (a bad one ends the start in one line),
    else one routing nothing (`no_route`) until Redis's arrives."""
    path = options["gateway-rules"]
    if path is None or options["redis-settings"] is not None:
        return RuleSet(backends={}, pools={}, routes=(), realms={})
    try:
        return load_rules(Path(path).read_bytes())
    except OSError as e:
        raise StartupError(f"--gateway-rules {path!r}: {e.strerror or e}") from None
    except RuleError as e:
        raise StartupError(f"--gateway-rules {path!r}: {e}") from None


class GatewayCollector(Collector):
    """The gateway's figures, read when scraped."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> list[Metric]:
        g = self.gateway
        refused = CounterMetricFamily(
            "vinom_gateway_refused", "Client connections closed before reaching a backend, "
            "by reason.", labels=["reason"],
        )  # fmt: skip
        for reason, count in sorted(g.factory.refused.items()):
            refused.add_metric([reason], count)
        routed = CounterMetricFamily("vinom_gateway_routed", "Client connections sent to a "
                                     "backend, by kind.", labels=["kind"])  # fmt: skip
        for kind, count in sorted(g.factory.routed.items()):
            routed.add_metric([kind], count)
        up = GaugeMetricFamily("vinom_gateway_backend_up", "1 while a backend passes its "
                               "health checks.", labels=["backend"])  # fmt: skip
        open_ = GaugeMetricFamily("vinom_gateway_backend_connections", "Open connections "
                                  "to a backend.", labels=["backend"])  # fmt: skip
        sent = CounterMetricFamily("vinom_gateway_backend_routed", "Client connections sent "
                                   "to a backend.", labels=["backend"])  # fmt: skip
        for state in g.router.backends:
            up.add_metric([state.backend.name], int(state.healthy))
            open_.add_metric([state.backend.name], state.connections)
            sent.add_metric([state.backend.name], state.routed)
        return [
            GaugeMetricFamily("vinom_gateway_connections", "Open client connections.",
                              value=len(g.factory.connections)),
            refused, routed, up, open_, sent,
            CounterMetricFamily("vinom_gateway_tls_terminated", "Client connections whose TLS "
                                "the gateway terminated.", value=g.factory.terminated),
            CounterMetricFamily("vinom_gateway_rules_loaded", "Rule sets put in force.",
                                value=g.rules_loaded),
            CounterMetricFamily("vinom_gateway_rules_refused", "Rule sets refused (invalid "
                                "or unreadable).", value=g.rules_refused),
        ]  # fmt: skip


def gateway_status(gateway: Gateway) -> dict[str, Any]:
    return {
        "draining": gateway.draining,
        "connections": len(gateway.factory.connections),
        "refused": dict(gateway.factory.refused),
        "routed": dict(gateway.factory.routed),
        "terminated": gateway.factory.terminated,
        "rules_loaded": gateway.rules_loaded,
        "rules_refused": gateway.rules_refused,
        "backends": {
            s.backend.name: {"address": f"{s.backend.host}:{s.backend.port}",
                             "up": s.healthy, "connections": s.connections,
                             "routed": s.routed}
            for s in gateway.router.backends
        },
    }  # fmt: skip


def gateway_ops_site(
    gateway: Gateway, token: str | None = None, relay: RelayService | None = None
) -> Site:
    """/health, /ready (503 while draining or with no backend up), /metrics (with the
    relay's counters when it runs here) and /status: vinom.server.ops's one builder."""

    def draining() -> str | None:
        return "draining" if gateway.draining else None

    def no_backend() -> str | None:
        return None if any(s.healthy for s in gateway.router.backends) else "no backend is up"

    collectors: list[Collector] = [GatewayCollector(gateway)]
    if relay is not None:
        collectors.append(RelayCollector(relay.relay.core))
    site, _registry = operations_site(
        collectors,
        readiness=(draining, no_backend),
        status=lambda: gateway_status(gateway),
        token=token,
    )
    return site


def _add(root: service.MultiService, name: str, child: Any) -> Any:
    child.setName(name)
    child.setServiceParent(root)
    return child
