"""vinom's one door to txredisapi: the pools, the pub/sub connection, scripts and errors,
and every use of the library that leans on more than its documented calls.

Only this module imports txredisapi (tests/test_private_reach.py asserts it). The
rest of the Redis wing builds its pools here and calls Redis commands on them
(txredisapi's command methods: `get`, `evalsha`, `execute_command`, ...), and
asks this module whether a failure is an outage or an error reply. An upgrade of
txredisapi is checked here: the workarounds below were written for txredisapi
`TXREDISAPI_VERSION` (the installed version is pinned by a test that names
them), and tests/cluster/test_txredisapi_adapter.py shows each one working on a
real Redis, so that an upgrade that breaks one fails there.

1. **Imported late** (`imported_late`). txredisapi imports
   `twisted.internet.reactor` at its top, which installs the default reactor
   (in 1.6.0 it needs it for its reply timeouts, its reconnection backoff and
   the hand-over of a new connection to its pool). Imported while `twistd
   --reactor` is still choosing one, it would fix the choice, or make
   `twistd` fail with `ReactorAlreadyInstalledError`; and library code never
   imports the global reactor. So this module, and so vinom, imports
   txredisapi only inside the functions below, which run once a reactor runs.
2. **Pools on vinom's endpoint** (`pools_on_our_endpoint`). `lazyConnectionPool`
   makes its own `HostnameEndpoint` on the global reactor (TLS only from an
   old-style context factory). vinom connects through the endpoint it builds
   (TLS for `rediss://`, its connect timeout, the master the sentinels name at
   each connection), so a pool is a `RedisFactory` made here, with
   `reconnect = True`, started with `startConnecting(endpoint)` (1.6.0 calls it
   "the only supported way of connecting a factory"), and its `handler`. A lazy
   factory still makes a Deferred of its first connection (`deferred`) that
   nobody holds: one refused at its AUTH or SELECT fails it, and it would be
   reported as an unhandled error when collected; it is given an errback here
   (the refusal is logged: workaround 7).
3. **The Sentinel master's pool** (`master_pool_checks_role`). txredisapi's
   `SentinelConnectionFactory` checks with `ROLE` that the server reached is a
   master (the sentinels' news can be a moment old) and closes the connection
   otherwise. Its pool is used, but on vinom's endpoint (`SentinelMaster` in
   vinom.cluster.client asks the sentinels), not txredisapi's `Sentinel`,
   whose `discover_master` waits out its whole timeout (10 s) when every
   sentinel says the master is down, on the global reactor, and leaves its
   timer running when cancelled; so its `sentinel_manager` is None (only
   txredisapi's own endpoint reads it). A lost connection is made again at
   most 2 s apart (`MASTER_MAX_DELAY`, an attribute of the factory), not 10 s:
   asking the sentinels again is cheap and the promoted replica is worth
   reaching soon. A sentinel's answer is judged by `master_is_up`,
   txredisapi's own rule (`Sentinel.check_master_state`) on the flags its
   `sentinel_masters()` parses.
4. **Scripts by SHA1** (`script_sent_whole_once`). `run_script` sends `EVALSHA`,
   and on NOSCRIPT (txredisapi's `ScriptDoesNotExist`) `EVAL` itself:
   txredisapi's `eval()` would send `EVALSHA` once more first on a
   connection of the pool that remembers the script.
5. **The pub/sub connection** (`subscriber_on_our_service`). A
   `SubscriberProtocol` subclass (txredisapi's documented way to hear
   messages), run by Twisted's `ClientService` on vinom's endpoint and clock
   (vinom.cluster.client.RedisSubscription) instead of txredisapi's
   `SubscriberFactory` pool. The factory here stands in for the
   `RedisFactory` the protocol calls on a refused AUTH or SELECT (`isLazy`,
   `stopTrying()`, `connectionError(why)`, in 1.6.0's
   `BaseRedisProtocol.connectionMade`), and the subscriber is told its
   connection is ready when the Deferred `connectionMade` returns fires, after
   AUTH.

6. **A waiting read off the pool's turn** (`blocking_read_off_the_turn`). A
   pool hands its calls to its connections in turn (1.6.0: `getConnection(peek
   =True)` leaves the connection in `connectionQueue`), except for the
   commands it marks blocking (`BLPOP`, `BRPOP`, ...), which take their
   connection out of the queue until they are answered. Its `execute_command`
   is never marked so: an `XREADGROUP ... BLOCK` sent through it would hold
   every call given to its connection meanwhile. `blocking_command` takes the
   connection out as txredisapi does for its own blocking commands (the
   factory's `getConnection(peek=False)`, `connectionQueue.put()` once
   answered; the factory of each pool made here is kept beside it, the
   handler holding it only privately), so the placement streams' waiting
   reads hold one connection of the pool and no other call.
7. **A handshake lost is not refused** (`handshake_lost_keeps_trying`). 1.6.0's
   `connectionMade` stops the whole pool for good (`factory.stopTrying()`) on
   any failure of its AUTH or SELECT (and the Sentinel protocol's ROLE): a
   connection lost or timed out there, as when Redis restarts or a failover
   kills the master meanwhile, left the pool with no connection and calls
   waiting for ever. The pools made here use `_handshake_protocol()`, which
   runs the same steps and stops the pool only when Redis refused one (an
   error reply: a wrong password, a database out of range); any other
   failure closes the connection, and the pool makes it again with its
   backoff.

Whatever endpoint it is given, txredisapi runs its own timers on the global
reactor (`replyTimeout`, the backoff). vinom bounds every call itself, on the
clock it is given (vinom.cluster.client.RedisClient.bounded), and the
reactor that clock is in production is the global one, where txredisapi's run.
That bound cancels a call at its deadline, which relies on one more thing of
txredisapi's (tested too, `PoolTests`): a call cancelled while it waits for a
connection (Redis down) leaves the pool usable once Redis is back.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

# The txredisapi release the workarounds above were written for and tested with.
TXREDISAPI_VERSION = "1.6.0"

# Each workaround of the module docstring by its short name: what to re-check (and the
# test that pins it, tests/cluster/test_txredisapi_adapter.py) when txredisapi changes.
WORKAROUNDS: dict[str, str] = {
    "imported_late": "txredisapi installs the global reactor when imported; "
    "vinom imports it only inside this module's functions",
    "pools_on_our_endpoint": "RedisFactory + reconnect + startConnecting(endpoint) + handler, "
    "its first-connection Deferred handled",
    "master_pool_checks_role": "SentinelConnectionFactory on vinom's endpoint (no txredisapi "
    "Sentinel), its ROLE check, maxDelay 2 s, Sentinel.check_master_state",
    "script_sent_whole_once": "evalsha, ScriptDoesNotExist on NOSCRIPT, then EVAL "
    "by execute_command",
    "subscriber_on_our_service": "a SubscriberProtocol subclass under ClientService; the "
    "factory's isLazy/stopTrying/connectionError; connectionMade's Deferred fires after AUTH",
    "blocking_read_off_the_turn": "the factory's getConnection(peek=False) and "
    "connectionQueue.put, as txredisapi's blocking commands take a connection",
    "handshake_lost_keeps_trying": "connectionMade's AUTH/ROLE/SELECT rewritten: stopTrying "
    "only on a ResponseError; the protocol's connected, _ready and _waiting_for_connect",
}

# Seconds at most between two attempts of the Sentinel master's pool to reconnect.
MASTER_MAX_DELAY = 2.0

# A txredisapi ConnectionHandler: a pool, on which Redis commands are methods.
Pool = Any

_log = Logger()

# The factory of each pool made here, by its handler (`_start`).
_FACTORIES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def installed_version() -> str:
    """The version of the txredisapi that is installed (imports it)."""
    import txredisapi

    return str(txredisapi.__version__)


def pool(
    endpoint: Any, *, name: str, db: int, size: int, password: str | None, timeout: float,
    username: str | None = None,
) -> Pool:
    """A lazy pool of `size` connections to the Redis `endpoint` reaches, usable at once
    (calls wait for a connection), that reconnects with txredisapi's backoff (about
    1 s, then up to 10 s apart). `name` is the pool's label (host:port); `db` is
    selected on each connection but 0; `timeout` is txredisapi's reply timeout; each
    connection sends AUTH [username] password first when `password` is given.
    Replies are the strings stored (txredisapi's number conversion is off)."""
    import txredisapi

    factory = txredisapi.RedisFactory(
        uuid=name,
        # Database 0 is where a connection starts: no SELECT for it.
        dbid=db or None,
        poolsize=size,
        isLazy=True,
        password=password,
        username=username,
        replyTimeout=timeout,
        # Strings stay strings: an id such as "42" must not come back as a number.
        convertNumbers=False,
    )
    factory.protocol = _handshake_protocol(master=False)
    return _start(factory, endpoint)


def master_factory(*, name: str, db: int, size: int, password: str | None,
                   timeout: float, username: str | None = None) -> Any:  # fmt: skip
    """The factory of a pool to the Sentinel master `name` (`master_pool` starts it):
    each connection checks with ROLE that it reached a master, and is closed if not."""
    import txredisapi

    factory = txredisapi.SentinelConnectionFactory(
        sentinel_manager=None, service_name=name, is_master=True,
        uuid=None, dbid=db or None, poolsize=size, isLazy=True,
        password=password, replyTimeout=timeout, convertNumbers=False, username=username,
    )  # fmt: skip
    factory.maxDelay = MASTER_MAX_DELAY
    factory.protocol = _handshake_protocol(master=True)
    return factory


def master_pool(
    endpoint: Any, *, name: str, db: int, size: int, password: str | None, timeout: float,
    username: str | None = None,
) -> Pool:
    """A lazy pool of `size` connections to the master `endpoint` reaches (one that asks
    the sentinels at each connection), as `pool()` makes to one Redis."""
    factory = master_factory(name=name, db=db, size=size, password=password, timeout=timeout,
                             username=username)  # fmt: skip
    return _start(factory, endpoint)


def _start(factory: Any, endpoint: Any) -> Pool:
    factory.reconnect = True
    first = factory.deferred
    if isinstance(first, Deferred):
        first.addErrback(lambda _: None)
    factory.startConnecting(endpoint)
    handler = factory.handler
    # The pool's factory, for `blocking_command` (the handler keeps it only privately).
    _FACTORIES[handler] = factory
    return handler


@functools.cache
def _handshake_protocol(*, master: bool) -> type:
    """txredisapi's protocol of a pool (of the Sentinel master's with `master`) whose
    failed handshake stops the pool only when Redis refused it (workaround 7)."""
    import txredisapi

    base = txredisapi.SentinelRedisProtocol if master else txredisapi.RedisProtocol

    class _Protocol(base):  # type: ignore[misc, valid-type]
        # txredisapi's: who waits for the connection to be usable.
        _waiting_for_connect: list[Deferred[Any]]

        def connectionMade(self) -> Deferred[None]:
            return Deferred.fromCoroutine(self._handshake())

        async def _handshake(self) -> None:
            step = "auth"
            try:
                if self.password is not None:
                    _refused(await self.auth(self.password, self.username))
                step = "check the role"
                if master and (await self.role())[0] != "master":
                    # The sentinels' news was a moment old: made again at once.
                    self.transport.loseConnection()
                    return
                step = f"set dbid={self.dbid}"
                if self.dbid is not None:
                    _refused(await self.select(self.dbid))
            except txredisapi.ResponseError as refusal:
                # As txredisapi: the pool stops, its callers hear why, and it is logged.
                self.factory.stopTrying()
                self.transport.loseConnection()
                why = f"Redis error: could not {step}: {refusal}"
                self.factory.connectionError(why)
                if self.factory.isLazy:
                    _log.info("{why}", why=why)
                return
            except Exception:
                # Lost or timed out: not Redis's answer, so the pool makes it again.
                self.transport.loseConnection()
                return
            self.connected = 1
            self._ready = True
            waiting: list[Deferred[Any]] = self._waiting_for_connect
            self._waiting_for_connect = []
            for d in waiting:
                d.callback(self)

    return _Protocol


def _refused(reply: object) -> None:
    """Raise the error Redis replied (txredisapi hands some back as the result)."""
    import txredisapi

    if isinstance(reply, txredisapi.ResponseError):
        raise reply


def master_is_up(state: object) -> bool:
    """Whether a sentinel's account of a master (a value of the dict
    `sentinel_masters()` answers) says it is a master that none of them thinks down."""
    import txredisapi

    return isinstance(state, dict) and bool(txredisapi.Sentinel([]).check_master_state(state))


def master_not_found(why: str) -> Exception:
    """The error of a Sentinel master no sentinel names (a txredisapi ConnectionError)."""
    import txredisapi

    error: Exception = txredisapi.MasterNotFoundError(why)
    return error


def is_connection_error(failure: Failure) -> bool:
    """Whether `failure` is txredisapi's word for no connection (not connected, lost,
    its reply timeout, no master found)."""
    import txredisapi

    return failure.check(txredisapi.ConnectionError) is not None


def is_error_reply(failure: Failure) -> bool:
    """Whether `failure` is an error Redis replied (`-ERR ...`, `-WRONGTYPE ...`)."""
    import txredisapi

    return failure.check(txredisapi.ResponseError) is not None


def run_script(
    pool: Pool, source: str, sha1: str, keys: Sequence[object], args: Sequence[object]
) -> Deferred[Any]:
    """Run the Lua `source` (whose SHA1 is `sha1`) on `pool`: `EVALSHA`, and on NOSCRIPT
    (Redis has not seen it, or forgot it) `EVAL`, which also keeps it in Redis for
    the `EVALSHA`s after."""
    keys, args = list(keys), list(args)

    def load(failure: Failure) -> Deferred[Any]:
        import txredisapi

        failure.trap(txredisapi.ScriptDoesNotExist)
        # EVAL itself: txredisapi's eval() would try EVALSHA once more first.
        return maybeDeferred(pool.execute_command, "EVAL", source, len(keys), *keys, *args)

    d: Deferred[Any] = maybeDeferred(pool.evalsha, sha1, keys, args)
    return d.addErrback(load)


def blocking_command(pool: Pool, *args: object) -> Deferred[Any]:
    """`execute_command(*args)` on a connection of `pool` (one made here) taken out of its
    turn until answered, for a command that waits (`XREADGROUP ... BLOCK`: workaround 6)."""
    factory = _FACTORIES[pool]
    connecting: Deferred[Any] = factory.getConnection(peek=False)

    def run(connection: Any) -> Deferred[Any]:
        def put_back(result: object) -> object:
            factory.connectionQueue.put(connection)
            return result

        try:
            call: Deferred[Any] = connection.execute_command(*args)
        except Exception:
            factory.connectionQueue.put(connection)
            raise
        return call.addBoth(put_back)

    return connecting.addCallback(run)


class Subscriber(Protocol):
    """What a pub/sub connection of `subscriber_factory` tells."""

    def connected(self, connection: Any) -> None:
        """A new connection is up and its AUTH (if any) accepted: subscribe on it
        (`connection.subscribe(channel)`, a Deferred)."""

    def disconnected(self) -> None:
        """The connection is lost."""

    def heard(self, message: object) -> None:
        """A message published on a channel subscribed."""

    def refused(self, why: str) -> None:
        """Redis refused the connection's AUTH (or SELECT); it is closed."""


def subscriber_factory(subscriber: Subscriber, password: str | None,
                       username: str | None = None) -> Factory:  # fmt: skip
    """A protocol factory of pub/sub connections (for a `ClientService`) that tell
    `subscriber`, each sending AUTH first when `password` is given."""
    return _SubscriberFactory(subscriber, password, username)


class _SubscriberFactory(Factory):
    """Builds the subscriber; txredisapi's protocol calls the last two on a refused AUTH."""

    isLazy = True

    def __init__(self, subscriber: Subscriber, password: str | None,
                 username: str | None = None) -> None:  # fmt: skip
        self.subscriber = subscriber
        self.password = password
        self.username = username

    def buildProtocol(self, addr: object) -> Any:
        protocol = _subscriber_protocol()(password=self.password, username=self.username)
        protocol.factory = self
        protocol.subscriber = self.subscriber
        return protocol

    def stopTrying(self) -> None:
        pass

    def connectionError(self, why: str) -> None:
        self.subscriber.refused(why)


@functools.cache
def _subscriber_protocol() -> type:
    # Defined on first use: txredisapi is imported late (workaround 1).
    import txredisapi

    class _Protocol(txredisapi.SubscriberProtocol):
        subscriber: Subscriber

        def connectionMade(self) -> Deferred[None]:
            d: Deferred[None] = super().connectionMade()

            def ready(_: object) -> None:
                # txredisapi closes a connection whose AUTH was refused.
                if self.connected and not self.transport.disconnecting:
                    self.subscriber.connected(self)

            return d.addCallback(ready)

        def connectionLost(self, why: object) -> None:
            self.subscriber.disconnected()
            super().connectionLost(why)

        def messageReceived(self, pattern: object, channel: object, message: object) -> None:
            self.subscriber.heard(message)

    return _Protocol
