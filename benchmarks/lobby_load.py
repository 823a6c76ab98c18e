"""Load through a real lobby: bots and match clients over the vinom client library.

Everything here uses `vinom.client` exactly as a game would: TLS to the
lobby (`connect_lobby`, `hello`, `queue`), then the UDP session
(`connect_game`) and the game's `IBot` driven by `vinom.client.bots.BotDriver`.
It runs in one process on one reactor; `python -m benchmarks.load` and the bench's match
and soak scenarios share it.

- `Fleet` keeps `bots` bots playing games back to back until a deadline,
  counting matches, moves (actions the server applied, seen in the `i` of a
  state) and their latency (from sending the action to the first state that
  shows it applied), and errors by kind.
- `match_client` takes one client from connecting to the lobby to the first
  state of its full room, then leaves the match.

`install_client_loss` simulates a lossy network on the client side: every
datagram a game client sends or receives is dropped with a probability.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.task import deferLater

from benchmarks.loadgen import Latencies
from vinom.client.bots import BotDriver, LobbyAddress
from vinom.client.game import ENDED_PHASES, GameSession, connect_game
from vinom.client.lobby import (
    Auth,
    LobbyClient,
    LobbyClientProtocol,
    LobbyError,
    client_tls_options,
)
from vinom.games.interfaces import IGame

#: Phases in which every seat of a room is taken (the room left `waiting`).
FULL_ROOM_PHASES = ("countdown", "playing")


_TLS_OPTIONS: dict[tuple[str | None, str], Any] = {}


def connect_lobby(
    reactor: Any, lobby: LobbyAddress, timeout: float = 30.0
) -> Deferred[LobbyClient]:
    """`vinom.client.lobby.connect_lobby`, with one TLS context for every connection.

    `connect_lobby` builds fresh TLS options (a new OpenSSL context, the trusted
    certificate read from disk) per call: right for a game that connects once,
    but about a tenth of the load generator's CPU per client when thousands of
    clients share one process. A real client's handshake is unchanged: a full
    TLS handshake with certificate verification, no session resumption.
    """
    hostname = "localhost" if lobby.host in ("127.0.0.1", "::1") else lobby.host
    key = (lobby.trust, hostname)
    tls = _TLS_OPTIONS.get(key)
    if tls is None:
        tls = _TLS_OPTIONS[key] = client_tls_options(lobby.trust, hostname)
    endpoint = wrapClientTLS(tls, TCP4ClientEndpoint(reactor, lobby.host, lobby.port, timeout))
    d = connectProtocol(endpoint, LobbyClientProtocol())
    return d.addCallback(LobbyClient)


class LossStats:
    """Datagrams the simulated network dropped."""

    def __init__(self) -> None:
        self.dropped_in = 0
        self.dropped_out = 0


def install_client_loss(probability: float, rng: random.Random) -> LossStats:
    """Drop each datagram a game client sends or receives with `probability` (this process)."""
    from vinom.client import udp

    stats = LossStats()
    if probability <= 0:
        return stats
    protocol_class = udp.GameClientProtocol
    receive = protocol_class.datagramReceived
    start = protocol_class.startProtocol

    def lossy_receive(self: Any, data: bytes, addr: Any) -> None:
        if rng.random() < probability:
            stats.dropped_in += 1
            return
        receive(self, data, addr)

    def lossy_start(self: Any) -> None:
        transport = self.transport
        if transport is not None:
            write = transport.write

            def lossy_write(datagram: bytes, addr: Any = None) -> Any:
                if rng.random() < probability:
                    stats.dropped_out += 1
                    return None
                return write(datagram, addr)

            transport.write = lossy_write
        start(self)

    protocol_class.datagramReceived = lossy_receive  # type: ignore[method-assign]
    protocol_class.startProtocol = lossy_start  # type: ignore[method-assign]
    return stats


class MoveTimer:
    """Times a session's actions: from `send_action` to the first state whose `i` covers it."""

    def __init__(self, session: GameSession, fleet: Fleet) -> None:
        self.fleet = fleet
        self.sent: dict[int, float] = {}
        send_action = session.send_action

        def timed_send(action: Any) -> int:
            action_id = send_action(action)
            self.sent[action_id] = time.perf_counter()
            return action_id

        session.send_action = timed_send  # type: ignore[method-assign]

    def on_state(self, state: dict[str, Any]) -> None:
        applied = state.get("i")
        if applied is None or not self.sent:
            return
        now = time.perf_counter()
        for action_id in [a for a in self.sent if a <= applied]:
            self.fleet.move_applied(now - self.sent.pop(action_id))

    def on_error(self, message: dict[str, Any]) -> None:
        action_id = message.get("i")
        if action_id in self.sent:
            del self.sent[action_id]
        self.fleet.count_error(f"rejected_{message.get('code')}")


class Fleet:
    """`bots` bots playing `game` through the lobby until `stop_at` (reactor seconds)."""

    def __init__(
        self,
        reactor: Any,
        lobby: LobbyAddress,
        game: IGame,
        bots: int,
        *,
        think_time: float = 0.0,
        lobby_slots: int = 32,
        seed: int | None = None,
        match_timeout: float = 600.0,
        queue: str = "normal",
        auths: Sequence[Auth | None] | None = None,
    ) -> None:
        self.reactor = reactor
        # The queue the bots join, and bot i's sign-in (None: guests).
        self.queue = queue
        self.auths = auths
        self.lobby = lobby
        self.game = game
        self.bots = bots
        self.think_time = think_time
        self.lobby_slots = DeferredSemaphore(lobby_slots)
        self.rng = random.Random(seed)
        self.match_timeout = match_timeout
        self.stop_at = float("inf")
        self.latencies = Latencies()
        self.counting = True
        self.moves = 0
        self.matches_started = 0
        self.matches_finished = 0
        self.matches_aborted = 0
        self.finished_games: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.active: set[GameSession] = set()
        self.lobbies: set[LobbyClient] = set()
        self.in_lobby = 0
        self.stopped_bots = 0

    # -- figures --------------------------------------------------------------

    def reset(self) -> None:
        """Start counting afresh (the measured window begins)."""
        self.latencies.clear()
        self.moves = 0
        self.matches_started = 0
        self.matches_finished = 0
        self.matches_aborted = 0
        self.finished_games.clear()
        self.errors.clear()

    def move_applied(self, seconds: float) -> None:
        if self.counting:
            self.moves += 1
            self.latencies.record(int(seconds * 1e6))

    def count_error(self, kind: str) -> None:
        if self.counting:
            self.errors[kind] += 1

    @property
    def error_count(self) -> int:
        # Rejected actions are part of playing (a bot's move can go stale); they
        # are reported but are not failures of the server.
        return sum(n for kind, n in self.errors.items() if not kind.startswith("rejected_"))

    def snapshot(self) -> dict[str, Any]:
        return {
            "moves": self.moves,
            "matches_started": self.matches_started,
            "matches_finished": self.matches_finished,
            "games": len(self.finished_games),
            "matches_aborted": self.matches_aborted,
            "errors": self.error_count,
            "playing": len(self.active),
            "in_lobby": self.in_lobby,
        }

    # -- running --------------------------------------------------------------

    def run(self, stop_at: float) -> Deferred[None]:
        """Run every bot until `stop_at`; fires once all have stopped."""
        self.stop_at = stop_at
        bots = [
            Deferred.fromCoroutine(self._bot(f"load{i}", random.Random(self.rng.random()),
                                             None if self.auths is None else self.auths[i]))
            for i in range(self.bots)
        ]  # fmt: skip
        done: Deferred[None] = Deferred()
        remaining = [len(bots)]

        def one_done(_: object) -> None:
            self.stopped_bots += 1
            remaining[0] -= 1
            if remaining[0] == 0:
                done.callback(None)

        for d in bots:
            d.addBoth(one_done)
        if not bots:
            done.callback(None)
        return done

    def stop_now(self) -> None:
        """End the run: bots stop after their current step; sessions leave."""
        self.stop_at = 0.0
        # Bots waiting in a queue would wait for a partner forever: hang up.
        for lobby in list(self.lobbies):
            lobby.close()
        for session in list(self.active):
            if not session.finished.called:
                session.finished.callback({"p": "stopped"})

    async def _bot(self, name: str, rng: random.Random, auth: Auth | None = None) -> None:
        while not self.stopping():
            try:
                await self._one_match(name, rng, auth)
            except LobbyError as e:
                if auth is not None and e.code == "already_queued":
                    # A signed-in bot keeps its account: queueing again at once, it
                    # can beat the game host's report of its last match's end to the
                    # lobby, which still has it in that match. It waits, as a player
                    # would, and is not an error.
                    await deferLater(self.reactor, 0.2, lambda: None)
                    continue
                self.count_error(error_kind(e))
                await deferLater(self.reactor, 0.5 + rng.random(), lambda: None)
            except Exception as e:  # one bot's failure must not stop the fleet
                self.count_error(error_kind(e))
                # Back off a little so a server in trouble is not hammered.
                await deferLater(self.reactor, 0.5 + rng.random(), lambda: None)

    def stopping(self) -> bool:
        return self.reactor.seconds() >= self.stop_at

    async def _one_match(self, name: str, rng: random.Random, auth: Auth | None = None) -> None:
        await self.lobby_slots.acquire()
        self.in_lobby += 1
        try:
            if self.stopping():
                return
            lobby = await connect_lobby(self.reactor, self.lobby)
            self.lobbies.add(lobby)
            try:
                welcome = await lobby.hello(name, auth=auth)
                # A bot queueing after the others stopped would wait for a partner
                # forever (stop_now hangs up only the lobbies it can see).
                if self.stopping():
                    return
                found = await lobby.queue(self.game.name, queue=self.queue)
            finally:
                self.lobbies.discard(lobby)
                lobby.close()
        finally:
            self.in_lobby -= 1
            self.lobby_slots.release()
        if self.stopping():
            return
        session = await connect_game(self.reactor, found)
        if self.counting:
            self.matches_started += 1
        self.active.add(session)
        # A session can end without a final phase (timed out, closed by the
        # host): `finished` would never fire, and the bot would act on a closed
        # connection.
        assert session.protocol is not None
        session.protocol.closed.addCallback(
            lambda reason: _finish(session, {"p": "closed", "reason": reason})
        )
        try:
            driver = BotDriver(
                session, self.game.make_bot(welcome.player_id, rng), self.think_time, self.reactor
            )
            driver.attach()
            timer = MoveTimer(session, self)
            _chain(session, "on_state", timer.on_state)
            _chain(session, "on_error", timer.on_error)
            timeout = self.reactor.callLater(
                self.match_timeout, _finish, session, {"p": "timeout"}
            )
            if self.stopping():  # connected after stop_now looked at the sessions
                _finish(session, {"p": "stopped"})
            final = await session.finished
            if timeout.active():
                timeout.cancel()
            driver.cancel()
            phase = final.get("p")
            if phase == "finished":
                if self.counting:
                    self.matches_finished += 1
                    self.finished_games.add(found.game_id)
            elif phase == "aborted":
                if self.counting:
                    self.matches_aborted += 1
                self.count_error(f"aborted_{final.get('reason')}")
            elif phase == "timeout":
                self.count_error("match_timeout")
            elif phase == "closed" and not self.stopping():
                self.count_error(f"session_closed_{final.get('reason')}")
            # Out of the session's message handler first (see match_client).
            await deferLater(self.reactor, 0, lambda: None)
            if phase in ENDED_PHASES or phase == "closed":
                await session.disconnect()
            else:
                await session.leave()
        finally:
            self.active.discard(session)


def _finish(session: GameSession, message: dict[str, Any]) -> None:
    if not session.finished.called:
        session.finished.callback(message)


def _chain(session: GameSession, name: str, first: Callable[[dict[str, Any]], None]) -> None:
    """Call `first` before whatever handler the session has for `name`."""
    then = getattr(session, name)

    def both(message: dict[str, Any]) -> None:
        first(message)
        if then is not None:
            then(message)

    setattr(session, name, both)


def error_kind(e: BaseException) -> str:
    if isinstance(e, LobbyError):
        return f"lobby_{e.code}"
    name = type(e).__name__
    reason = getattr(e, "reason", None)
    return f"{name}_{reason}" if isinstance(reason, str) else name


async def match_client(
    reactor: Any, lobby: LobbyAddress, game: str, name: str, timeout: float = 60.0
) -> float:
    """Seconds from starting the lobby connection to the first state of the full room.

    Then leaves the match (so the room ends and its port returns to the pool).
    Raises on any failure or after `timeout` seconds.
    """
    started = time.perf_counter()
    client = await connect_lobby(reactor, lobby)
    try:
        await client.hello(name)
        found = await client.queue(game)
    finally:
        client.close()
    session = await connect_game(reactor, found)
    full: Deferred[float] = Deferred()

    def check(message: dict[str, Any]) -> None:
        if not full.called and message.get("p") in FULL_ROOM_PHASES:
            full.callback(time.perf_counter() - started)
        elif not full.called and message.get("p") in ENDED_PHASES:
            full.errback(RuntimeError(f"match ended before it was full: {message}"))

    session.on_state = check
    session.on_phase = check
    if session.phase in FULL_ROOM_PHASES:
        check({"p": session.phase})
    def expire() -> None:
        if not full.called:
            full.errback(TimeoutError("no full room"))

    expiry = reactor.callLater(timeout, expire)
    try:
        return await full
    finally:
        if expiry.active():
            expiry.cancel()
        # Not from inside the session's message handler: a ClientConnection closed
        # there drops the queued `leave` (only the disconnects go out), and the
        # seats would then be held for the reconnection window.
        await deferLater(reactor, 0, lambda: None)
        await session.leave()
