"""The gateway: its rule set in force, its connections, health checks and drain.

The gateway is the `IRuleConsumer` of every rule source (vinom.gateway.sources:
a file reloaded on SIGHUP, memory; Redis: vinom.cluster.gateway_rules):
`Gateway.offer(text, origin)` decodes and checks a rule set whole; a good one
is in force for the next connection (established ones keep their backend), a
bad one is refused with one log line and counted (`rules_refused`), and the
one in force stays; one equal to the rule set in force, read again from the
same origin (a file on SIGHUP), is said in one line too. `Gateway.refuse`
refuses, the same way, one that could not be read at all.

A rule set's discovered backends (vinom.gateway.rules, `discover`) are filled in
from the addresses `Gateway.discovered(found)` is given (by
vinom.gateway.discovery): the rule set in force is `expand(rules, found)`.

`Gateway.drain()` stops taking connections (the listener stops), lets those
open run for up to `drain_timeout` seconds, then closes them.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from vinom.gateway.health import HealthChecker
from vinom.gateway.proxy import GatewayFactory
from vinom.gateway.router import Router
from vinom.gateway.rules import RuleError, RuleSet, expand, parse_rules
from vinom.gateway.sources import IRuleConsumer


def load_rules(text: str | bytes) -> RuleSet:
    """A checked rule set from JSON text; RuleError says what is wrong in one line."""
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise RuleError(f"not JSON: {e}") from None
    return parse_rules(document)


@implementer(IRuleConsumer)
class Gateway(service.Service):
    """Runs the health checks while running; holds the factory the listener serves."""

    log = Logger()

    def __init__(self, rules: RuleSet, reactor: Any, *, sniff_limit: int, sniff_timeout: float,
                 drain_timeout: float, tls_context: ssl.SSLContext | None = None,
                 source: str | None = None) -> None:  # fmt: skip
        self.reactor = reactor
        # The rule set as offered (discovered backends unexpanded), and the addresses found.
        self.rules = rules
        self.found: dict[str, tuple[str, ...]] = {}
        self.router = Router(expand(rules, self.found))
        self.factory = GatewayFactory(self.router, reactor, sniff_limit=sniff_limit,
                                      sniff_timeout=sniff_timeout,
                                      tls_context=tls_context, source=source)  # fmt: skip
        self.health = HealthChecker(self.router, reactor)
        self.drain_timeout = drain_timeout
        self.rules_loaded = 1
        self.rules_refused = 0
        # The origins that have offered a rule set (`offer`).
        self._origins_read: frozenset[str] = frozenset()
        self.draining = False
        self._cut: Callable[[], None] = lambda: None
        # Stops the listener (the server wiring sets it).
        self.stop_listening: Callable[[], object] = lambda: None
        # Told when a rule set comes in force (the discovery's, vinom.gateway.discovery).
        self.rules_in_force: Callable[[], object] = lambda: None

    def startService(self) -> None:
        super().startService()
        self.health.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        checked = self.health.stop()
        self.factory.close_all()
        return checked

    def offer(self, text: str | bytes, origin: str) -> bool:
        """Put the rule set in `text` in force if it is good (module docstring)."""
        try:
            rules = load_rules(text)
        except RuleError as e:
            self.refuse(str(e), origin)
            return False
        read_before = origin in self._origins_read
        self._origins_read |= {origin}
        if rules == self.rules:
            # An operator who sent SIGHUP hears back, whatever the file held; the first
            # offer of a source (at start: the rule set the gateway began with) says
            # nothing new.
            if read_before:
                self.log.info("gateway: rule set from {origin} read again: unchanged, the "
                              "one in force stays ({backends} backend(s), {routes} route(s))",
                              origin=origin, backends=len(rules.backends),
                              routes=len(rules.routes))  # fmt: skip
            return True
        self.rules = rules
        self.router.apply(expand(rules, self.found))
        self.health.rules_changed()
        self.rules_in_force()
        self.rules_loaded += 1
        self.log.info("gateway: rule set from {origin} in force ({backends} backend(s), "
                      "{routes} route(s))", origin=origin, backends=len(rules.backends),
                      routes=len(rules.routes))  # fmt: skip
        return True

    def discovered(self, found: Mapping[str, tuple[str, ...]]) -> None:
        """The addresses of the discovered backends now (vinom.gateway.discovery): the rule
        set in force follows; open connections keep their backend."""
        found = {name: tuple(addresses) for name, addresses in found.items()}
        if found == self.found:
            return
        self.found = found
        self.router.apply(expand(self.rules, found))
        self.health.rules_changed()

    def refuse(self, error: str, origin: str) -> None:
        """Count a rule set refused, in one line; the one in force stays."""
        self.rules_refused += 1
        self.log.error("gateway: rule set from {origin} refused, the previous one stays: "
                       "{error}", origin=origin, error=error)  # fmt: skip

    def drain(self) -> Deferred[None]:
        """Stop taking connections; fires when the open ones closed or `drain_timeout` passed
        (and then they are closed)."""
        self.draining = True
        stopped = maybeDeferred(self.stop_listening)
        open_now = len(self.factory.connections)
        if open_now:
            self.log.info("gateway: draining: {n} connection(s) may stay up to {timeout:g} s",
                          n=open_now, timeout=self.drain_timeout)  # fmt: skip
        waited = self.factory.when_all_closed()
        deadline = self.reactor.callLater(self.drain_timeout, self._drain_timed_out, waited)
        self._cut = lambda: self._drain_timed_out(waited)

        def done(_: object) -> None:
            if deadline.active():
                deadline.cancel()

        waited.addCallback(done)
        return stopped.addCallback(lambda _: waited)

    def cut_drain(self) -> None:
        """End the drain's wait now: the open connections are closed."""
        self._cut()

    def _drain_timed_out(self, waited: Deferred[None]) -> None:
        if waited.called:
            return
        self.log.info("gateway: drain over: closing {n} connection(s)",
                      n=len(self.factory.connections))  # fmt: skip
        self.factory.close_all()
        if not waited.called:
            waited.callback(None)
