"""Active health checks of the gateway's backends.

Every `interval` seconds (the rule set's `health.interval`) each backend is
checked: a TCP connection to its address, and when its rule names a `health`
address (the backend's operations endpoint), `GET /ready` there (or
`/health`, as its `health_path` says), which must answer 200 within
`timeout`. A backend that fails one check is out: the router picks it no
more (its established connections stay); one that passes is back in. Each
change is one log line.

A step's timeout is judged one reactor turn after its timer fires, once the
gateway has read what waits on its sockets. A reactor runs due timers before
it reads, so a gateway that stalled for longer than the timeout (its start,
a collection, a loaded machine) would otherwise find every answer that came
meanwhile too late and put healthy backends out for its own stall.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import readBody

from vinom.gateway.proxy import client_endpoint
from vinom.gateway.router import BackendState, Router
from vinom.net.http import quiet_agent


class HealthChecker:
    """Checks the router's backends while started (module docstring)."""

    log = Logger()

    def __init__(self, router: Router, reactor: Any) -> None:
        self.router = router
        self.reactor = reactor
        self._loop: LoopingCall | None = None
        self._interval = 0.0
        self._running: Deferred[Any] | None = None
        self._stopped = False
        self.checks = 0

    def start(self) -> None:
        self._stopped = False
        self._schedule()

    def stop(self) -> Deferred[None]:
        """Stop checking; a round still out is cancelled (its backends stay as they
        were). Fires once nothing of it is left running."""
        self._stop_loop()
        running, self._running = self._running, None
        if running is None:
            return succeed(None)
        self._stopped = True
        running.addBoth(lambda _: None)  # a cancelled round's outcome is nobody's
        running.cancel()
        return running

    def rules_changed(self) -> None:
        """A new rule set may change the interval: restart the loop on it."""
        if self._loop is not None and self._interval != self.router.rules.health_interval:
            self._stop_loop()
            self._schedule()

    def _stop_loop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _schedule(self) -> None:
        self._interval = self.router.rules.health_interval
        self._loop = LoopingCall(self.check_all)
        self._loop.clock = self.reactor
        self._loop.start(self._interval, now=True)

    def check_all(self) -> Deferred[None] | None:
        if self._running is not None:  # the last round has not finished (its timeouts bound it)
            return None
        checks = [self._check(state) for state in self.router.backends]
        running: Deferred[Any] = DeferredList(checks, consumeErrors=True)
        self._running = running

        def done(result: object) -> None:
            if self._running is running:  # (not a round `stop` cancelled)
                self._running = None
                self.checks += 1

        return running.addBoth(done)

    def _check(self, state: BackendState) -> Deferred[None]:
        timeout = self.router.rules.health_timeout
        backend = state.backend
        # The endpoints' own connect timeouts are a backstop: each step is bounded by
        # `_within` (module docstring).
        endpoint = client_endpoint(self.reactor, backend.host, backend.port, _BACKSTOP)
        d = self._within(endpoint.connect(_quiet(Factory.forProtocol(Protocol))), timeout)

        def connected(protocol: Protocol) -> Any:
            protocol.transport.loseConnection()  # type: ignore[union-attr]
            if backend.health is None:
                return None
            host, port = backend.health
            # A new connection per check (a check is of the backend as a new client
            # finds it), and no log line for it.
            agent = quiet_agent(self.reactor, _BACKSTOP)
            url = f"http://{host}:{port}{backend.health_path}"
            asked = self._within(agent.request(b"GET", url.encode()), timeout)
            return asked.addCallback(answered)

        def answered(response: Any) -> Any:
            code = response.code
            body = self._within(readBody(response), timeout)

            def read(text: bytes) -> None:
                if code != 200:
                    said = text[:100].decode(errors="replace").strip()
                    raise _Unhealthy(f"{backend.health_path} answered {code}: {said}")

            return body.addCallback(read)

        d.addCallback(connected)
        d.addCallbacks(lambda _: self._mark(state, True, ""),
                       lambda f: self._mark(state, False, f.getErrorMessage()))  # fmt: skip
        return d

    def _within(self, d: Deferred[Any], timeout: float) -> Deferred[Any]:
        """`d`, cancelled and failed with `CheckTimedOut` if it has not fired `timeout`
        seconds on, judged a turn after the timer fires (module docstring)."""
        gave_up = answered = False

        def give_up() -> None:
            nonlocal gave_up
            # (Not d.called: that is true too while d waits on a Deferred it chained.)
            if not answered:
                gave_up = True
                d.cancel()

        timer = self.reactor.callLater(timeout, lambda: self.reactor.callLater(0, give_up))

        def over(result: Any) -> Any:
            nonlocal answered
            answered = True
            if timer.active():
                timer.cancel()
            if gave_up and isinstance(result, Failure):
                # However the step reports its cancelling (the HTTP client wraps it).
                return Failure(CheckTimedOut(f"no answer within {timeout:g} s"))
            return result

        return d.addBoth(over)

    def _mark(self, state: BackendState, healthy: bool, why: str) -> None:
        if state.healthy == healthy or self._stopped:
            return
        state.healthy = healthy
        if healthy:
            self.log.info("gateway: backend {name} is back in", name=state.backend.name)
        else:
            self.log.warn("gateway: backend {name} is out: {why}", name=state.backend.name,
                          why=why or "no answer")  # fmt: skip


class _Unhealthy(Exception):
    pass


class CheckTimedOut(Exception):
    """A step of a health check had no answer within the rule set's `health.timeout`."""


# Seconds: the connect timeout of a check's endpoints, past any `health.timeout` the
# rules allow in practice; each step's own bound is `health.timeout` (`_within`).
_BACKSTOP = 3600.0


def _quiet(factory: Factory) -> Factory:
    factory.noisy = False
    return factory
