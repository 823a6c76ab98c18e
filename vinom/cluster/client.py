"""Connecting to Redis: settings from a `redis://` or `rediss://` (TLS) URL, a txredisapi
pool, bounded calls.

The Redis player store and host registry (and whatever else vinom keeps in
Redis) share one `RedisClient` per process: a txredisapi connection pool
that reconnects by itself, the key prefix every vinom key starts with, and
`bounded()`, which gives every call a deadline and turns a Redis that is down
or silent into one clear error, `BackendUnavailable`. Every Lua script of the
wing is a `Script`, run by its SHA1 (`EVALSHA`) and sent whole (`EVAL`) only
when Redis does not have it yet (first use, `SCRIPT FLUSH`, a restart).

txredisapi takes no reactor: it imports the global one and times its
connections and replies with it. So this module imports txredisapi only when
it connects (importing it installs the default reactor, which must not
happen while `twistd --reactor` is still choosing one), and the deadlines
vinom adds run on the clock the caller passes in.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
from attrs import define, field, frozen
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.cluster.clock import RedisClock
from vinom.cluster.settings import DEFAULT_PORT, RedisSettings
from vinom.errors import BackendUnavailable


def parse_redis_url(url: str) -> RedisSettings:
    """`redis://[:password@]host[:port][/db]` -> RedisSettings (port 6379 and db 0 by default);
    `rediss://` is the same over TLS.

    Raises ValueError saying what is wrong with the URL.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError as error:
        raise ValueError(f"bad Redis URL {url!r}: {error}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(
            f"a Redis URL starts with redis:// (or rediss:// for TLS), not {parts.scheme or url!r}"
        )
    if not parts.hostname:
        raise ValueError(f"the Redis URL {url!r} names no host")
    if parts.username:
        raise ValueError(
            "the Redis URL names a user, which vinom does not support: use redis://:password@host"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"the Redis URL {url!r} takes no query or fragment")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        port = DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise ValueError(f"the Redis port must be a number from 1 to 65535, in {url!r}")
    path = parts.path.strip("/")
    if path and not (path.isdigit() and path.isascii()):
        raise ValueError(f"the Redis database must be a number like /0, not /{path}")
    password = None if parts.password is None else unquote(parts.password)
    return RedisSettings(
        parts.hostname, port, int(path or 0), password, tls=parts.scheme == "rediss"
    )


def connect(settings: RedisSettings) -> Any:
    """A lazy txredisapi connection pool for `settings` (a txredisapi ConnectionHandler).

    It is usable at once: calls wait for a connection. Lost connections are
    reestablished with txredisapi's backoff (at most 10 s apart), so Redis may
    start after vinom and may restart under it. Replies are the strings stored
    (txredisapi's number conversion is off); integer replies stay integers.
    """
    import txredisapi

    handler = txredisapi.lazyConnectionPool(
        host=settings.host,
        port=settings.port,
        # Database 0 is where a connection starts: no SELECT for it.
        dbid=settings.db or None,
        poolsize=settings.pool_size,
        reconnect=True,
        password=settings.password,
        connectTimeout=settings.timeout,
        replyTimeout=settings.timeout,
        # Strings stay strings: an id such as "42" must not come back as a number.
        convertNumbers=False,
        # txredisapi wraps each connection in TLS with these (rediss://).
        ssl_context_factory=settings.tls_options() or False,
    )
    # A lazy pool still makes a Deferred of its first connection, which nobody
    # else holds: one lost during its AUTH or SELECT fails it, and it would be
    # reported as an unhandled error when collected. txredisapi logs that
    # failure itself, and the pool reconnects.
    first = getattr(handler, "_connected", None)
    if isinstance(first, Deferred):
        first.addErrback(lambda _: None)
    return handler


@frozen
class Script:
    """A Lua script and its SHA1, run with `EVALSHA` and sent whole only when needed."""

    source: str
    sha1: str = field(init=False)

    @sha1.default
    def _sha1(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    @classmethod
    def packaged(cls, name: str) -> Script:
        """The script `name` beside this module (in the vinom.cluster package)."""
        return cls(resources.files("vinom.cluster").joinpath(name).read_text("utf-8"))

    def call(
        self, handler: Any, keys: Sequence[object] = (), args: Sequence[object] = ()
    ) -> Deferred[Any]:
        """Run the script on `handler` (a txredisapi connection or pool): `EVALSHA`, and
        on NOSCRIPT (Redis has not seen it, or forgot it) `EVAL`, which also keeps it in
        Redis for the `EVALSHA`s after. Not bounded: `RedisClient.run` is."""
        keys, args = list(keys), list(args)

        def load(failure: Failure) -> Deferred[Any]:
            import txredisapi

            failure.trap(txredisapi.ScriptDoesNotExist)
            # EVAL itself: txredisapi's eval() would try EVALSHA once more first.
            return maybeDeferred(
                handler.execute_command, "EVAL", self.source, len(keys), *keys, *args
            )

        return maybeDeferred(handler.evalsha, self.sha1, keys, args).addErrback(load)



def milliseconds(seconds: float) -> int:
    """Seconds as Redis's PX and PEXPIRE take them: whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))

@define
class RedisClient:
    """One process's connection pool to Redis, its key prefix and its call deadline."""

    handler: Any  # a txredisapi ConnectionHandler
    clock: IReactorTime
    settings: RedisSettings
    # Redis's clock as this process knows it, for the deadlines of calls (vinom.cluster.clock);
    # the pool gives up on a reply after `timeout`, whoever calls.
    redis_clock: RedisClock = field(
        default=attrs.Factory(
            lambda self: RedisClock(self.clock, self.settings.timeout), takes_self=True
        )
    )

    @classmethod
    def open(cls, settings: RedisSettings, clock: IReactorTime) -> RedisClient:
        return cls(connect(settings), clock, settings)

    def key(self, *parts: str) -> str:
        """The prefixed key `<prefix><part>:<part>...`."""
        return self.settings.key_prefix + ":".join(parts)

    def bounded(self, call: Deferred[Any]) -> Deferred[Any]:
        """`call` (a txredisapi call), failing with BackendUnavailable if Redis is down or
        has not answered within the timeout."""
        timeout = self.settings.timeout

        def unavailable(failure: Failure) -> Failure:
            import txredisapi

            # A caller's own cancel() stays a CancelledError.
            if failure.check(TimeoutError):
                raise BackendUnavailable(
                    f"Redis at {self.settings.url} did not answer within {timeout:g} s"
                )
            if failure.check(txredisapi.ConnectionError):
                raise BackendUnavailable(
                    f"Redis at {self.settings.url} is unreachable: {failure.getErrorMessage()}"
                )
            return failure

        call.addTimeout(timeout, self.clock)
        return call.addErrback(unavailable)

    def run(
        self, script: Script, keys: Sequence[object] = (), args: Sequence[object] = ()
    ) -> Deferred[Any]:
        """`script.call(...)` on the pool, bounded as `bounded()` bounds a call."""
        return self.bounded(script.call(self.handler, keys, args))

    def deadline(self) -> str:
        """The deadline, on Redis's clock, for a script called now to check: a script run
        after it refuses to act, since `bounded()` will have given up on the call by then
        (vinom.cluster.clock)."""
        return self.redis_clock.deadline(self.settings.timeout)

    def disconnect(self) -> Deferred[None]:
        """Close the pool's connections and stop reconnecting."""
        d: Deferred[None] = self.handler.disconnect()
        return d


def client_endpoint(settings: RedisSettings, reactor: Any) -> Any:
    """A TCP (TLS for `rediss://`) client endpoint to the Redis of `settings` (for a
    pub/sub connection)."""
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    tcp = HostnameEndpoint(reactor, settings.host, settings.port, timeout=settings.timeout)
    tls = settings.tls_options()
    return tcp if tls is None else wrapClientTLS(tls, tcp)


class RedisSubscription:
    """One pub/sub connection that hears `channel` and hands each message to `on_message`.

    A subscribed connection can do nothing else, so it is not one of the
    pool's. It reconnects by itself (0.1 s, backing off to 2 s) and subscribes
    again each time, then awaits `catch_up()` if given (a user that keeps a
    log in Redis reads what it missed there); messages published while it was
    cut off are otherwise lost, so a user must not depend on hearing every one
    (each vinom user has a key to read or a timeout to fall back on).
    `start()` and `stop()` bound it.

    The subscribing is done by the connection itself once it is up, not by
    `ClientService`'s `prepareConnection`: a connection lost or a service
    stopped while that is under way puts `ClientService` (Twisted 26.10) in a
    state with no way out, and it raises when the connection closes later. A
    subscription that fails closes its connection, and `ClientService`
    reconnects as after any other loss.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: Any,
        channel: str,
        on_message: Callable[[str], object],
        clock: IReactorTime,
        password: str | None = None,
        catch_up: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        from twisted.application.internet import ClientService, backoffPolicy

        self.channel = channel
        self._on_message = on_message
        self._catch_up = catch_up
        self.password = password
        self._subscribed = False
        self._waiters: list[Deferred[None]] = []
        self._service = ClientService(
            endpoint,
            _SubscriberFactory(self),
            retryPolicy=backoffPolicy(initialDelay=0.1, maxDelay=2.0),
            clock=clock,
        )

    def connected(self, protocol: Any) -> None:
        """Subscribe on a new connection whose AUTH (if any) has been accepted."""

        async def subscribe() -> None:
            await protocol.subscribe(self.channel)
            if self._catch_up is not None:
                await self._catch_up()

        def subscribed(_: object) -> None:
            if not protocol.connected:
                return
            self._subscribed = True
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

        def failed(failure: Failure) -> None:
            if protocol.connected:
                self.log.warn("Redis channel {channel}: could not subscribe: {error}",
                              channel=self.channel, error=failure.getErrorMessage())  # fmt: skip
                protocol.transport.loseConnection()

        Deferred.fromCoroutine(subscribe()).addCallbacks(subscribed, failed)

    def disconnected(self) -> None:
        self._subscribed = False

    def heard(self, message: object) -> None:
        text = message.decode() if isinstance(message, bytes) else str(message)
        self._on_message(text)

    def start(self) -> None:
        self._service.startService()

    def when_subscribed(self) -> Deferred[None]:
        """Fires once a connection is subscribed (and caught up)."""
        if self._subscribed:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def stop(self) -> Deferred[None]:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(CancelledError())
        d: Deferred[None] = self._service.stopService()
        return d


@functools.cache
def _subscriber_protocol() -> type:
    import txredisapi

    class _Protocol(txredisapi.SubscriberProtocol):
        subscription: RedisSubscription

        def connectionMade(self) -> Deferred[None]:
            d: Deferred[None] = super().connectionMade()

            def ready(_: object) -> None:
                # txredisapi closes a connection whose AUTH was refused.
                if self.connected and not self.transport.disconnecting:
                    self.subscription.connected(self)

            return d.addCallback(ready)

        def connectionLost(self, why: object) -> None:
            self.subscription.disconnected()
            super().connectionLost(why)

        def messageReceived(self, pattern: object, channel: object, message: object) -> None:
            self.subscription.heard(message)

    return _Protocol


class _SubscriberFactory(Factory):
    """Builds the subscriber; txredisapi's protocol calls the last two on a refused AUTH."""

    isLazy = True

    def __init__(self, subscription: RedisSubscription) -> None:
        self.subscription = subscription

    def buildProtocol(self, addr: object) -> Any:
        protocol = _subscriber_protocol()(password=self.subscription.password)
        protocol.factory = self
        protocol.subscription = self.subscription
        return protocol

    def stopTrying(self) -> None:
        pass

    def connectionError(self, why: str) -> None:
        RedisSubscription.log.error(
            "Redis channel {channel}: {why}", channel=self.subscription.channel, why=why
        )
