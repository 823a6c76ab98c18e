"""The Redis side of `twistd vinom --redis`: services that start and stop the shared parts.

The server wiring (vinom.server.roles) builds, for a process with `--redis`,
one `RedisClient` (the process's pool, shared by the player store, the
matchmaker, the parties, the host registry and the placement channel) and
wraps what needs starting and stopping in the services below, so the root
service's order (started in the order added, stopped in reverse) brings
them up before the lobby listens and takes them down after it.

Every one has the same shape: it holds one part, `startService` starts it
and returns at once, and `stopService` returns the Deferred of its stop.
None keeps the server from starting while Redis does not answer: each part
keeps trying until it does, the matchmaker's start every `START_RETRY`
seconds, the channels (`RedisSubscription`, which the party store also
runs) by reconnecting with their own back-off. The placement channel's
`RemoteMatchHosting` and the game host's `HostAgent` are services
themselves (vinom.cluster.placement, vinom.cluster.agent): each is also the
object the lobby or the host uses.

The pool closes last (`RedisClientService.stops_last`: the root service
stops it once every other service has stopped), and only once the calls the
lobby makes in the background are answered (`InFlightCalls`: a gone
player's ticket cancelled, their record removed, a party left), so that a
stopping lobby leaves nothing behind in Redis and logs no failed call.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from vinom.cluster.client import RedisClient, RedisSubscription
from vinom.cluster.inflight import InFlightCalls
from vinom.cluster.matchmaker import RedisMatchmaker
from vinom.cluster.parties import RedisPartyStore

# Seconds between tries to start the matchmaker while Redis does not answer.
START_RETRY = 1.0
# Seconds the pool waits, as the server stops, for the calls still in flight (each
# is bounded by its own timeout, at most the matchmaker's `call_timeout`, 5 s).
CALLS_WAIT = 10.0


class RedisClientService(Service):
    """Closes the process's Redis pool when the server stops: after every other service
    (`stops_last`) and the counted calls in flight (`calls`)."""

    log = Logger()
    stops_last = True

    def __init__(
        self, redis: RedisClient, clock: IReactorTime, calls: InFlightCalls | None = None
    ) -> None:
        self.redis = redis
        self.calls = calls
        self._clock = clock

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self.calls is None or not self.calls.running:
            return self._disconnect(None)
        done = self.calls.when_done()
        late = self._clock.callLater(CALLS_WAIT, self._gave_up, done)
        done.addCallback(lambda _: late.cancel() if late.active() else None)
        return done.addCallback(self._disconnect)

    def _gave_up(self, done: Deferred[None]) -> None:
        if self.calls is not None and not done.called:
            self.log.warn("closing the Redis connections with {calls} call(s) unanswered",
                          calls=self.calls.running)  # fmt: skip
            done.callback(None)

    def _disconnect(self, _: object) -> Deferred[None]:
        d = self.redis.disconnect()
        return d.addErrback(lambda _: None)


class MatchmakerService(Service):
    """Starts the Redis matchmaker (again every `START_RETRY` s while Redis does not answer)
    and stops it, releasing this lobby's queued tickets."""

    log = Logger()

    def __init__(self, matchmaker: RedisMatchmaker, clock: IReactorTime) -> None:
        self.matchmaker = matchmaker
        self._clock = clock
        self._retry: Any = None
        self.started = False

    def startService(self) -> None:
        super().startService()
        self._start()

    def _start(self) -> None:
        self._retry = None

        def started(_: object) -> None:
            self.started = True
            self.log.info(
                "matchmaker: lobby {lobby_id} on Redis", lobby_id=self.matchmaker.lobby_id
            )

        def failed(failure: Any) -> None:
            self.log.warn("matchmaker: starting failed ({error}); trying again",
                          error=failure.value)  # fmt: skip
            if self.running:
                self._retry = self._clock.callLater(START_RETRY, self._start)

        self.matchmaker.start().addCallbacks(started, failed)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if not self.started:
            return succeed(None)
        return self.matchmaker.stop()


class SubscriptionService(Service):
    """Runs a `RedisSubscription` while the server runs."""

    def __init__(self, subscription: RedisSubscription) -> None:
        self.subscription = subscription

    def startService(self) -> None:
        super().startService()
        self.subscription.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.subscription.stop()


class PartyStoreService(Service):
    """Runs a `RedisPartyStore` (its changes channel and its refresh) while the server runs."""

    def __init__(self, store: RedisPartyStore) -> None:
        self.store = store

    def startService(self) -> None:
        super().startService()
        # The subscription reconnects by itself while Redis is down.
        self.store.start().addErrback(
            lambda f: self.store.log.warn("party changes channel: {error}", error=f.value)
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.store.stop()
