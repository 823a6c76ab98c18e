"""Several lobby addresses: which to try next, how long to wait first, when to give up.

A client given several lobbies (the lobbies of one cluster, on one Redis) keeps
to one of them while it works. When that connection is lost (closed, reset, a
TLS failure, a connection that cannot be made, a lobby silent for too long) or
the lobby turns the client away (`server_draining`, `too_many_connections`,
`unavailable`, ...), the client moves to the next address, round robin, after
a short random wait: the players of a lobby that died all lose their
connections at the same instant, and the wait spreads them out instead of
sending them to the next lobby at once. docs/client.md ("Several lobbies")
gives the numbers.

`LobbyRotation` is the rule, without I/O: which address is current, the wait
before the next attempt (`Backoff`), and when to give up. `LobbyPlayer` walks a
player through the lobbies with it: `hello` and `queue` to a `match_found`
(`find_match`), and `reconnect` with the player's id and secret after a lost
game session or a lost lobby connection (`rejoin`). A lost connection while
queued is followed by `reconnect` (a match may have formed meanwhile) and, if
the player has no match, by `requeue`.

Each lobby connection is opened by `connect_lobby`, or by the `connect`
function given to `LobbyPlayer` (`LobbyConnect`): a client that must open
its connections otherwise (from a source address of its own, through a
proxy, with its own protocol) passes one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field, frozen
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import (
    ConnectionClosed,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.task import deferLater

from vinom.client.lobby import (
    Auth,
    LobbyAddress,
    LobbyClient,
    LobbyError,
    MatchFound,
    QueuedCallback,
    Welcome,
    connect_lobby,
)

# The lobby turned this client away, or cannot serve it now: another lobby may.
MOVE_ON_CODES = frozenset(
    {
        "server_draining",
        "too_many_connections",
        "too_many_errors",
        "unavailable",
        "internal_error",
        "timeout",
        "session_replaced",
    }
)
# Answers to `reconnect` that no other lobby would change: the player has no match.
NO_MATCH_CODES = frozenset({"bad_secret", "no_active_match"})

# Opens a lobby connection: (the address, the seconds the attempt may take) to the
# `LobbyClient`, as `connect_lobby` does (the default).
LobbyConnect = Callable[[LobbyAddress, float], Deferred[LobbyClient]]


class NoLobbyAvailable(Exception):
    """Every lobby address failed, for longer than the rotation's `give_up_after`."""

    def __init__(self, errors: Sequence[tuple[LobbyAddress, str]], waited: float) -> None:
        self.errors = tuple(errors)
        self.waited = waited
        described = "; ".join(f"{address}: {error}" for address, error in self.errors)
        super().__init__(f"no lobby could be reached for {waited:.0f} s ({described})")


@frozen
class Backoff:
    """The wait before the next attempt after `failures` attempts failed in a row.

    The ceiling doubles from `first` up to `most`; the wait is drawn uniformly
    between half the ceiling and the ceiling, so clients that failed together
    come back spread over an interval rather than all at once.
    """

    first: float = 0.5
    factor: float = 2.0
    most: float = 5.0

    def ceiling(self, failures: int) -> float:
        return float(min(self.most, self.first * self.factor ** max(0, failures)))

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = self.ceiling(failures)
        return rng.uniform(ceiling / 2, ceiling)


@frozen
class FailoverPolicy:
    """The timings of a client moving between lobbies (docs/client.md, "Several lobbies")."""

    backoff: Backoff = Backoff()
    # Give up once this long has passed since the first of a run of failures
    # and every address has failed at least once.
    give_up_after: float = 30.0
    # Connecting, TLS, and the lobby's first frame must all be done within this.
    attempt_timeout: float = 5.0
    # A lobby silent this long while the client waits on it (queued, or matched
    # and waiting for a game server) is pinged; silent as long again, it is left.
    keepalive: float = 5.0


DEFAULT_POLICY = FailoverPolicy()


@define
class LobbyRotation:
    """Which lobby to try, how long to wait before trying it, when to give up (no I/O)."""

    addresses: tuple[LobbyAddress, ...]
    policy: FailoverPolicy = DEFAULT_POLICY
    index: int = 0
    failures: int = 0
    failing_since: float | None = None
    # The last error of each address that failed in the current run of failures.
    _errors: dict[int, str] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("at least one lobby address is needed")
        self.index %= len(self.addresses)

    @property
    def current(self) -> LobbyAddress:
        return self.addresses[self.index]

    def succeeded(self) -> None:
        """The current lobby answered: the run of failures, if any, is over."""
        self.failures = 0
        self.failing_since = None
        self._errors.clear()

    def failed(self, now: float, error: str, rng: random.Random) -> float | None:
        """The current lobby failed (`error` says how): move to the next address.

        Returns how long to wait before trying it, or None to give up: `give_up_after`
        has passed since this run of failures began and every address has failed.
        """
        self._errors[self.index] = error
        if self.failing_since is None:
            self.failing_since = now
        self.index = (self.index + 1) % len(self.addresses)
        if now - self.failing_since >= self.policy.give_up_after and len(self._errors) == len(
            self.addresses
        ):
            return None
        delay = self.policy.backoff.delay(self.failures, rng)
        self.failures += 1
        return delay

    def give_up(self, now: float) -> NoLobbyAvailable:
        """The error to raise once `failed` said to give up."""
        errors = [(self.addresses[i], text) for i, text in sorted(self._errors.items())]
        since = now if self.failing_since is None else self.failing_since
        return NoLobbyAvailable(errors, now - since)


def describe_error(error: BaseException) -> str:
    """A few words for what went wrong with one lobby (for NoLobbyAvailable)."""
    if isinstance(error, LobbyError):
        return f"{error.code}: {error.message}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TCPTimedOutError | TimeoutError | defer.TimeoutError | _Silent):
        return "timed out"
    if isinstance(error, DNSLookupError):
        return "no such host"
    if isinstance(error, ConnectionClosed):
        return "connection lost"
    text = str(error)
    if "certificate" in text.lower() or type(error).__name__ == "Error":
        return f"TLS failed: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Silent(Exception):
    """The lobby did not answer in time (no first frame, or no answer to a ping)."""


class LobbyPlayer:
    """One player's way through several lobbies (see the module docstring).

    `lobbies` is one address or several; `start` is the index of the one to try
    first (spread many clients over the lobbies by giving each another start).
    `on_queued` sees every `Queued` frame, whichever lobby sent it. `connect`
    opens each lobby connection instead of `connect_lobby` (`LobbyConnect`).
    """

    def __init__(
        self,
        reactor: Any,
        lobbies: LobbyAddress | Sequence[LobbyAddress],
        name: str,
        *,
        start: int = 0,
        policy: FailoverPolicy = DEFAULT_POLICY,
        rng: random.Random | None = None,
        on_queued: QueuedCallback | None = None,
        connect: LobbyConnect | None = None,
        auth: Auth | None = None,
    ) -> None:
        addresses = (lobbies,) if isinstance(lobbies, LobbyAddress) else tuple(lobbies)
        # The player's credentials, sent with every hello and reconnect (None: a guest).
        self.auth = auth
        self.reactor = reactor
        self.name = name
        self.rotation = LobbyRotation(addresses, policy, index=start)
        self.on_queued = on_queued
        self._connect = connect or self._connect_lobby
        self.welcome: Welcome | None = None
        # How many times a lobby failed and the player moved to the next address.
        self.lobby_changes = 0
        self._rng = rng or random.Random()
        self._wanted: tuple[str, float | None, str] | None = None

    @property
    def lobby(self) -> LobbyAddress:
        """The address in use (or to be tried next)."""
        return self.rotation.current

    def _connect_lobby(self, address: LobbyAddress, timeout: float) -> Deferred[LobbyClient]:
        return connect_lobby(
            self.reactor, address.host, address.port, trust=address.trust, timeout=timeout
        )

    def find_match(
        self, game: str, rating: float | None = None, *, queue: str = "normal"
    ) -> Deferred[MatchFound]:
        """`hello` and `queue` through the lobbies, to the `match_found` of a match."""
        self._wanted = (game, rating, queue)
        return Deferred.fromCoroutine(self._through_lobbies(self._queue_or_recover))

    def rejoin(self) -> Deferred[MatchFound]:
        """`reconnect` through the lobbies with the player's id and secret: a fresh token
        for the seat of a running match, or the next match after a place kept at the
        head of the queue. Fails with `LobbyError` `no_active_match` or `bad_secret`
        when the player has no match any more."""
        return Deferred.fromCoroutine(self._through_lobbies(self._reconnect))

    async def requeue(self, client: LobbyClient) -> MatchFound:
        """Queue again on `client` after the lobby that held this player's ticket was
        lost and the player has no match: a new `hello` naming the earlier identity
        (`previous`: the server withdraws the ticket it left queued, so nobody is
        matched with it) and the same `queue` request as before.
        """
        assert self._wanted is not None
        self.welcome = await client.hello(self.name, previous=self.welcome, auth=self.auth)
        game, rating, queue = self._wanted
        return await client.queue(game, rating, queue=queue, on_queued=self.on_queued)

    async def _queue_or_recover(self, client: LobbyClient) -> MatchFound:
        if self.welcome is None:
            self.welcome = await client.hello(self.name, auth=self.auth)
            assert self._wanted is not None
            game, rating, queue = self._wanted
            return await client.queue(game, rating, queue=queue, on_queued=self.on_queued)
        # The connection was lost after hello: a match may have formed since.
        try:
            return await self._reconnect(client)
        except LobbyError as e:
            if e.code not in NO_MATCH_CODES:
                raise
        return await self.requeue(client)

    async def _reconnect(self, client: LobbyClient) -> MatchFound:
        assert self.welcome is not None
        return await client.reconnect(
            self.welcome.player_id, self.welcome.secret, on_queued=self.on_queued, auth=self.auth
        )

    async def _through_lobbies(self, step: Callable[[LobbyClient], Any]) -> MatchFound:
        while True:
            address = self.rotation.current
            client: LobbyClient | None = None
            watch = _Watch(self.reactor, self.rotation.policy)
            try:
                timeout = self.rotation.policy.attempt_timeout
                client = await self._connect(address, timeout).addTimeout(timeout, self.reactor)
                client.protocol.served.addCallback(lambda _: self.rotation.succeeded())
                watch.start(client)
                found: MatchFound = await step(client)
                client = None  # the lobby closes the connection after match_found
                return found
            except LobbyError as e:
                if e.code not in MOVE_ON_CODES:
                    raise
                error = describe_error(e)
            except CancelledError:
                raise
            except Exception as e:  # refused, reset, TLS, timed out: another lobby may do
                error = describe_error(_Silent() if watch.expired else e)
            finally:
                watch.stop()
                if client is not None and not client.protocol.closed.called:
                    # Left without a match_found (which the lobby follows by closing):
                    # drop the connection at once, a failed lobby may never finish a
                    # TLS close.
                    transport: Any = client.protocol.transport
                    transport.abortConnection()
                    await client.protocol.closed
            now = self.reactor.seconds()
            delay = self.rotation.failed(now, error, self._rng)
            if delay is None:
                raise self.rotation.give_up(now)
            self.lobby_changes += 1
            await deferLater(self.reactor, delay, lambda: None)


class _Watch:
    """Drops a lobby connection whose lobby stays silent: no first frame within the
    attempt timeout, or no frame at all for two keepalive periods (a ping is sent
    after the first)."""

    def __init__(self, reactor: Any, policy: FailoverPolicy) -> None:
        self.reactor = reactor
        self.policy = policy
        self.expired = False
        self._call: Any = None
        self._client: LobbyClient | None = None
        self._seen = 0
        self._pinged = False

    def start(self, client: LobbyClient) -> None:
        self._client = client
        self._call = self.reactor.callLater(self.policy.attempt_timeout, self._first)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _first(self) -> None:
        assert self._client is not None
        if self._client.protocol.frames_received == 0:
            self._drop()
            return
        self._seen = self._client.protocol.frames_received
        self._call = self.reactor.callLater(self.policy.keepalive, self._check)

    def _check(self) -> None:
        assert self._client is not None
        protocol = self._client.protocol
        if protocol.frames_received != self._seen:
            self._seen = protocol.frames_received
            self._pinged = False
        elif self._pinged:
            self._drop()
            return
        else:
            self._pinged = True
            protocol.request({"type": "ping"}).addErrback(lambda _: None)
        self._call = self.reactor.callLater(self.policy.keepalive, self._check)

    def _drop(self) -> None:
        self._call = None
        self.expired = True
        transport: Any = self._client.protocol.transport if self._client is not None else None
        if transport is not None:
            transport.abortConnection()
