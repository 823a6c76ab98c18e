"""Connecting to Redis: settings from a `redis://`, `rediss://` (TLS) or
`redis+sentinel://` (Redis Sentinel) URL, a txredisapi pool, bounded calls.

The Redis player store and host registry (and whatever else vinom keeps in
Redis) share one `RedisClient` per process: a txredisapi connection pool
that reconnects by itself, the key prefix every vinom key starts with, and
`bounded()`, which gives every call a deadline and turns a Redis that is down
or silent into one clear error, `BackendUnavailable`. Every Lua script of the
wing is a `Script`, run by its SHA1 (`EVALSHA`) and sent whole (`EVAL`) only
when Redis does not have it yet (first use, `SCRIPT FLUSH`, a restart, a
failover). With Sentinel, `SentinelMaster` asks the sentinels where the master
is before every connection (the pool's and the pub/sub channels'), so that a
process follows a failover by itself.

Every use of txredisapi itself is in vinom.cluster.txredisapi_adapter (the
pools, the pub/sub protocol, scripts, its errors, and the workarounds each
needs, with the version they are for); this module is vinom's own code over
it. txredisapi takes no reactor and installs the global one when imported, so
the adapter imports it only when a pool is made, and the deadlines vinom adds
run on the clock the caller passes in.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import attrs
from attrs import define, field, frozen
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.cluster import txredisapi_adapter
from vinom.cluster.clock import RedisClock
from vinom.cluster.settings import DEFAULT_PORT, DEFAULT_SENTINEL_PORT, RedisSettings
from vinom.errors import BackendUnavailable


def parse_redis_url(url: str) -> RedisSettings:
    """`redis://[:password@]host[:port][/db]` -> RedisSettings (port 6379 and db 0 by default);
    `rediss://` is the same over TLS; `redis+sentinel://[:password@]host[:port][,host[:port]...]
    /master[/db]` names the sentinels (port 26379 by default) and the master they watch.

    Raises ValueError saying what is wrong with the URL.
    """
    text = url.strip()
    scheme = text.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        return _parse_sentinel_url(text, scheme)
    try:
        parts = urlsplit(text)
    except ValueError as error:
        raise ValueError(f"bad Redis URL {url!r}: {error}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(
            "a Redis URL starts with redis:// (or rediss:// for TLS, redis+sentinel:// for "
            f"Redis Sentinel), not {parts.scheme or url!r}"
        )
    if not parts.hostname:
        raise ValueError(f"the Redis URL {url!r} names no host")
    if parts.username:
        raise ValueError(
            "the Redis URL names a user, which vinom does not support: use redis://:password@host"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"the Redis URL {url!r} takes no query or fragment")
    port = _port(parts, DEFAULT_PORT)
    if port is None:
        raise ValueError(f"the Redis port must be a number from 1 to 65535, in {url!r}")
    path = parts.path.strip("/")
    password = None if parts.password is None else unquote(parts.password)
    return RedisSettings(
        parts.hostname, port, _database(path), password, tls=parts.scheme == "rediss"
    )


# `rediss+sentinel` is recognised only to be refused in words (see _parse_sentinel_url).
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_SENTINEL_FORM = "redis+sentinel://host[:port][,host[:port]...]/master-name[/db]"


def _port(parts: SplitResult, default: int) -> int | None:
    """The port of `parts` (`default` when it names none); None when it is not 1-65535."""
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        return default
    return port if 1 <= port <= 65535 else None


def _database(path: str) -> int:
    if path and not (path.isdigit() and path.isascii()):
        raise ValueError(f"the Redis database must be a number like /0, not /{path}")
    return int(path or 0)


def _parse_sentinel_url(url: str, scheme: str) -> RedisSettings:
    if scheme == "rediss+sentinel":
        raise ValueError(
            "rediss+sentinel:// (TLS through Sentinel) is not supported: use "
            "redis+sentinel:// on a private network, or rediss:// to one Redis"
        )
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ValueError(f"bad Redis Sentinel URL {url!r}: {error}") from None
    if parts.query or parts.fragment:
        raise ValueError(f"the Redis Sentinel URL {url!r} takes no query or fragment")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        if user or not colon:
            raise ValueError(
                "the Redis Sentinel URL names a user, which vinom does not support: use "
                "redis+sentinel://:password@host..."
            )
        password = unquote(secret)
    if not hosts.strip():
        raise ValueError(f"the Redis Sentinel URL {url!r} names no sentinel: {_SENTINEL_FORM}")
    sentinels = []
    for each in hosts.split(","):
        try:
            address = urlsplit("//" + each.strip())
        except ValueError:
            address = urlsplit("//")
        port = _port(address, DEFAULT_SENTINEL_PORT)
        if not address.hostname or port is None:
            raise ValueError(
                f"{each.strip()!r} is not a sentinel's host[:port] (a port from 1 to 65535), "
                f"in {url!r}; the form is {_SENTINEL_FORM}"
            )
        sentinels.append((address.hostname, port))
    path = parts.path.strip("/").split("/", 1)
    name = unquote(path[0])
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"the Redis Sentinel URL {url!r} names no master: {_SENTINEL_FORM}")
    return RedisSettings(
        db=_database(path[1] if len(path) > 1 else ""),
        password=password,
        sentinels=tuple(dict.fromkeys(sentinels)),
        master_name=name,
    )


def connect(settings: RedisSettings, reactor: Any) -> txredisapi_adapter.Pool:
    """A lazy txredisapi connection pool for `settings` (a txredisapi ConnectionHandler), to
    the one Redis it names (`SentinelMaster.pool` is the pool of a `redis+sentinel://` URL).

    It is usable at once: calls wait for a connection. Lost connections are
    reestablished with txredisapi's backoff (at most 10 s apart), so Redis may
    start after vinom and may restart under it. Replies are the strings stored
    (txredisapi's number conversion is off); integer replies stay integers.
    """
    # (TLS for rediss://, and the connect timeout, are client_endpoint's.)
    return txredisapi_adapter.pool(
        client_endpoint(settings, reactor), name=f"{settings.host}:{settings.port}",
        db=settings.db, size=settings.pool_size, password=settings.password,
        timeout=settings.timeout, username=settings.username,
    )  # fmt: skip


# Seconds between two questions to the sentinels while all is well (SentinelMaster.watch).
WATCH_EVERY = 1.0


class SentinelMaster:
    """The sentinels of a `redis+sentinel://` URL, and the master they name now.

    It keeps one connection to each sentinel (each reconnects by itself) and
    asks them all (`SENTINEL MASTERS`) for a master that none of them thinks
    down. Every connection the process makes to
    Redis, the pool's and each pub/sub channel's, goes through `endpoint()`,
    which asks before connecting: a connection lost in a failover is made
    again to the replica the sentinels promoted, by the pool's and the
    channels' own reconnecting. The pool (`txredisapi_adapter.master_pool`)
    also checks with `ROLE` that the server reached is a master (the
    sentinels' news can be a moment old). `watch()`
    asks again every second. When the answer changes, every connection made to
    the former master is closed: a former master that is still up (a manual
    failover, a partition) is, or is about to be, a replica, and a channel left
    on it would hear nothing more.
    """

    log = Logger()

    def __init__(self, settings: RedisSettings, reactor: Any) -> None:
        if not settings.sentinels or settings.master_name is None:
            raise ValueError(f"{settings.url} names no sentinels")
        self.settings = settings
        self.name = settings.master_name
        self._reactor = reactor
        # One connection to each sentinel.
        self.sentinels = [self._sentinel_connection(host, port)
                          for host, port in settings.sentinels]  # fmt: skip
        self._watch: Any = None
        # Where the master is, as the sentinels last said (None before the first answer).
        self.address: tuple[str, int] | None = None
        # The transports of the connections made to the master, to close when it moves.
        self._transports: weakref.WeakSet[Any] = weakref.WeakSet()
        self._moved_listeners: list[Callable[[], object]] = []

    def _sentinel_connection(self, host: str, port: int) -> txredisapi_adapter.Pool:
        from twisted.internet.endpoints import HostnameEndpoint

        settings = self.settings
        endpoint = HostnameEndpoint(self._reactor, host, port, timeout=settings.timeout)
        return txredisapi_adapter.pool(
            endpoint, name=f"{host}:{port}", db=0, size=1,
            password=settings.sentinel_password, timeout=settings.timeout,
        )  # fmt: skip

    def watch(self, every: float = WATCH_EVERY) -> None:
        """Ask the sentinels where the master is every `every` seconds, not only when a
        connection is lost: in a failover with the master up (`SENTINEL FAILOVER`, or
        sentinels that lost sight of it), the former master keeps its connections and
        takes writes for seconds before the sentinels demote it, and those writes
        would be lost. Stopped by `disconnect()`."""
        from twisted.internet.task import LoopingCall

        def look() -> Deferred[object]:
            # Nothing to log when no sentinel names a master: the connections say it.
            return self.discover().addErrback(lambda _: None)

        self._watch = LoopingCall(look)
        self._watch.clock = self._reactor
        self._watch.start(every, now=False)

    def when_moved(self, listener: Callable[[], object]) -> None:
        """Call `listener` each time the sentinels name another master than before (a
        failover), once the connections to the former one are closed."""
        self._moved_listeners.append(listener)

    def discover(self) -> Deferred[tuple[str, int]]:
        """The master's address, from the first sentinel that names one none of them thinks
        down; fails with txredisapi's `MasterNotFoundError` (a `ConnectionError`) when
        every sentinel has answered without one (during a failover) or none has named
        one within the timeout (the sentinels down or cut off).

        txredisapi's `Sentinel.discover_master` asks the same question, but waits
        out its whole timeout (10 s) when every sentinel says the master is down,
        on the global reactor, and leaves its timer running when cancelled.
        """
        handlers = list(self.sentinels)
        pending = len(handlers)

        def settle(address: tuple[str, int] | None) -> None:
            if result.called:
                return
            if address is None:
                why = f"no sentinel of {self.settings.url} names a master {self.name} that is up"
                result.errback(txredisapi_adapter.master_not_found(why))
            else:
                result.callback(address)
            stop()

        def stop() -> None:
            if timer.active():
                timer.cancel()
            # A question to a sentinel not connected waits for its connection: it is
            # not to be sent then, once answered elsewhere.
            for ask in asks:
                if not ask.called:
                    ask.cancel()

        def answered(masters: object) -> None:
            state = masters.get(self.name) if isinstance(masters, dict) else None
            if state and txredisapi_adapter.master_is_up(state):
                settle((str(state["ip"]), int(str(state["port"]))))
            else:
                one_less()

        def one_less(_: object = None) -> None:
            nonlocal pending
            pending -= 1
            if pending == 0:
                settle(None)

        result: Deferred[tuple[str, int]] = Deferred(lambda _: stop())
        timer = self._reactor.callLater(self.settings.timeout, settle, None)
        asks: list[Deferred[Any]] = []
        for handler in handlers:
            asks.append(handler.sentinel_masters())
            asks[-1].addCallbacks(answered, one_less)
        return result.addCallback(self._moved)

    def _moved(self, address: tuple[str, int]) -> tuple[str, int]:
        former, self.address = self.address, address
        if former is None or former == address:
            return address
        self.log.warn(
            "Redis Sentinel: master {name} is now at {new} (was {old}); reconnecting to it",
            name=self.name, new=_host_port(address), old=_host_port(former),
        )  # fmt: skip
        for transport in list(self._transports):
            transport.loseConnection()
        for listener in self._moved_listeners:
            maybeDeferred(listener).addErrback(lambda f: self.log.failure("after a failover", f))
        return address

    def endpoint(self) -> Any:
        """A client endpoint that connects to the master the sentinels name at each
        connection (an IStreamClientEndpoint)."""
        return _MasterEndpoint(self)

    def connect_master(self, address: tuple[str, int], factory: Any) -> Deferred[Any]:
        from twisted.internet.endpoints import HostnameEndpoint

        host, port = address
        endpoint = HostnameEndpoint(self._reactor, host, port, timeout=self.settings.timeout)

        def made(protocol: Any) -> Any:
            self._transports.add(protocol.transport)
            return protocol

        d: Deferred[Any] = endpoint.connect(factory)
        return d.addCallback(made)

    def pool(self) -> txredisapi_adapter.Pool:
        """A lazy pool of `settings.pool_size` connections to the master, as `connect()`
        makes to one Redis, that follows the master from one server to another (a
        lost connection is made again at most 2 s apart, not 10 s: asking the
        sentinels again is cheap, and the promoted replica is worth reaching soon)."""
        settings = self.settings
        return txredisapi_adapter.master_pool(
            self.endpoint(), name=self.name, db=settings.db, size=settings.pool_size,
            password=settings.password, timeout=settings.timeout, username=settings.username,
        )  # fmt: skip

    def disconnect(self) -> Deferred[object]:
        """Stop watching and close the connections to the sentinels."""
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        d = gatherResults([sentinel.disconnect() for sentinel in self.sentinels],
                          consumeErrors=True)  # fmt: skip
        return d.addCallback(lambda _: None)


def _host_port(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(IStreamClientEndpoint)
class _MasterEndpoint:
    """Connects to the master the sentinels name at the moment of connecting."""

    def __init__(self, master: SentinelMaster) -> None:
        self.master = master

    def connect(self, factory: Any) -> Deferred[Any]:
        d = self.master.discover()
        return d.addCallback(self.master.connect_master, factory)

    def __repr__(self) -> str:
        return f"<Redis Sentinel master {self.master.name}>"


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
        d = txredisapi_adapter.run_script(handler, self.source, self.sha1, keys, args)
        return d.addErrback(_refused_for_now)


# The error replies of a Redis that takes no writes for now, though nothing is wrong
# with the call: a replica (a master just demoted in a failover, before the
# sentinels close its connections), a master short of replicas in reach
# (min-replicas-to-write), a replica cut off from its master, one loading its
# data set. A script's write meets them inside it: "ERR Error running script
# (...): ... -READONLY You can't write ...".
_NOT_NOW = re.compile(r"(?:^|-)(READONLY|NOREPLICAS|MASTERDOWN|LOADING) ")


def _refused_for_now(failure: Failure) -> Failure:
    """A failure of a call Redis refused for now (`_NOT_NOW`) as `BackendUnavailable`: the
    call did nothing, and may be sent again; any other failure as it is."""
    if txredisapi_adapter.is_error_reply(failure):
        text = failure.getErrorMessage()
        found = _NOT_NOW.search(text)
        if found is not None:
            raise BackendUnavailable(f"Redis refused the call for now: {text[found.start(1) :]}")
    return failure


def milliseconds(seconds: float) -> int:
    """Seconds as Redis's PX and PEXPIRE take them: whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))


@define
class RedisClient:
    """One process's connection pool to Redis, its key prefix and its call deadline."""

    handler: txredisapi_adapter.Pool
    clock: IReactorTime
    settings: RedisSettings
    # Redis's clock as this process knows it, for the deadlines of calls (vinom.cluster.clock);
    # the pool gives up on a reply after `timeout`, whoever calls.
    redis_clock: RedisClock = field(
        default=attrs.Factory(
            lambda self: RedisClock(self.clock, self.settings.timeout), takes_self=True
        )
    )

    # With Redis Sentinel, the sentinels the pool and `endpoint()` ask where the master is.
    sentinel: SentinelMaster | None = None

    @classmethod
    def open(cls, settings: RedisSettings, clock: Any) -> RedisClient:
        """The pool of `settings`; `clock` is the reactor (Sentinel's connections need one)."""
        if settings.sentinels:
            master = SentinelMaster(settings, clock)
            client = cls(master.pool(), clock, settings, sentinel=master)
            # The promoted replica's clock is its own: estimated anew from its answers.
            master.when_moved(client.redis_clock.forget)
            master.watch()
            return client
        return cls(connect(settings, clock), clock, settings)

    def on_master_moved(self, listener: Callable[[], object]) -> None:
        """Call `listener` after a failover, when the process first learns that another
        server is the master (Sentinel only: one Redis has no failover)."""
        if self.sentinel is not None:
            self.sentinel.when_moved(listener)

    def endpoint(self, reactor: Any) -> Any:
        """A client endpoint to Redis for a connection of its own (a pub/sub channel's):
        with Sentinel, to the master the sentinels name at each connection."""
        if self.sentinel is not None:
            return self.sentinel.endpoint()
        return client_endpoint(self.settings, reactor)

    def key(self, *parts: str) -> str:
        """The prefixed key `<prefix><part>:<part>...`."""
        return self.settings.key_prefix + ":".join(parts)

    def bounded(self, call: Deferred[Any]) -> Deferred[Any]:
        """`call` (a txredisapi call), failing with BackendUnavailable if Redis is down or
        has not answered within the timeout."""
        timeout = self.settings.timeout

        def unavailable(failure: Failure) -> Failure:
            # A caller's own cancel() stays a CancelledError.
            if failure.check(TimeoutError):
                raise BackendUnavailable(
                    f"Redis at {self.settings.url} did not answer within {timeout:g} s"
                )
            if txredisapi_adapter.is_connection_error(failure):
                raise BackendUnavailable(
                    f"Redis at {self.settings.url} is unreachable: {failure.getErrorMessage()}"
                )
            return _refused_for_now(failure)

        call.addTimeout(timeout, self.clock)
        return call.addErrback(unavailable)

    def blocking(self, *command: object) -> Deferred[Any]:
        """A command that waits in Redis (`XREADGROUP ... BLOCK`) on a connection of the
        pool that no other call is given meanwhile (txredisapi_adapter, workaround 6),
        bounded as `bounded()` bounds a call: its wait must be shorter than `timeout`."""
        return self.bounded(txredisapi_adapter.blocking_command(self.handler, *command))

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
        """Close the pool's connections (and the sentinels') and stop reconnecting."""
        d: Deferred[None] = self.handler.disconnect()
        if self.sentinel is not None:
            sentinel = self.sentinel
            d.addBoth(lambda result: sentinel.disconnect().addBoth(lambda _: result))
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
        username: str | None = None,
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
            txredisapi_adapter.subscriber_factory(self, password, username),
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

    def refused(self, why: str) -> None:
        self.log.error("Redis channel {channel}: {why}", channel=self.channel, why=why)

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
