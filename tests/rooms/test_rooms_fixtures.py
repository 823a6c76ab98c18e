"""Shared fixtures for the room and seat router tests (this module holds no tests).

`SeqGame` is a tiny game defined here so these tests do not depend on the
built-in games: each player sends ``{"seq": n}`` with n one more than their
last (a per-player version, like the maze's position), and a few other
actions exercise events, hidden information, results and game bugs.
`RecordingOutbox` is an outbox that records what the room sends, each
message decoded with the client-side decoder (so every message is also checked
against the schema). `Timeline` is the time of a test: `now`, and the timer
queue whose due deadlines it runs as time advances, as a game host core does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import evolve, frozen
from zope.interface import implementer

from vinom.games.interfaces import GameEvent, IBot, IGame, IllegalAction, Outcome, Seat
from vinom.match import Match, Ticket
from vinom.protocol.events import UNRELIABLE
from vinom.rooms.delta import Quantisation, SnapshotReceiver
from vinom.rooms.message_reading import decode_server_message, resolve_kept, state_of_snap
from vinom.rooms.messages import SnapFields
from vinom.rooms.schema import ViewSchema
from vinom.rooms.timers import TimerQueue


@frozen
class SeqState:
    players: tuple[str, ...]
    seqs: tuple[int, ...]
    secrets: tuple[str, ...]
    hooks: tuple[tuple[str, str], ...] = ()
    ticks: int = 0
    elapsed: float = 0.0
    winner: str | None = None
    reason: str | None = None


@implementer(IGame)
class SeqGame:
    """Players count up their own sequence numbers; see the module docstring."""

    description = "count up, one step at a time"
    version = "1"
    min_players = 2
    max_players = 4
    match_size = 2

    def __init__(
        self,
        countdown: float = 0.0,
        time_limit: float = 60.0,
        tick_rate: float = 0.0,
        finish_on_leave: bool = False,
        tick_changes: bool = True,
        join_rejects: str | None = None,
        action_rate: float | None = None,
    ) -> None:
        self.name = "seq"
        # Without `action_rate` the game has no such attribute: the default applies.
        if action_rate is not None:
            self.action_rate = action_rate
        self.countdown = countdown
        self.time_limit = time_limit
        self.tick_rate = tick_rate
        self.finish_on_leave = finish_on_leave
        self.tick_changes = tick_changes
        self.join_rejects = join_rejects

    def create(
        self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random
    ) -> SeqState:
        return SeqState(
            players=tuple(s.player_id for s in seats),
            seqs=tuple(0 for _ in seats),
            secrets=tuple(f"secret-{s.player_id}" for s in seats),
        )

    def check_join(self, state: SeqState, seat: Seat) -> str | None:
        return self.join_rejects

    def _hook(self, state: SeqState, name: str, seat: Seat) -> Outcome:
        return Outcome(
            evolve(state, hooks=(*state.hooks, (name, seat.player_id))),
            (GameEvent(name, {"player": seat.player_id}),),
        )

    def join(self, state: SeqState, seat: Seat) -> Outcome:
        return self._hook(state, "join", seat)

    def reconnect(self, state: SeqState, seat: Seat) -> Outcome:
        return self._hook(state, "reconnect", seat)

    def leave(self, state: SeqState, seat: Seat) -> Outcome:
        outcome = self._hook(state, "leave", seat)
        if self.finish_on_leave:
            others = [p for p in state.players if p != seat.player_id]
            return evolve(outcome, state=evolve(outcome.state, winner=others[0], reason="left"))
        return outcome

    def apply_action(
        self, state: SeqState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        if "boom" in action:
            raise RuntimeError("a bug in the game")
        if "whisper" in action:
            # An event for the acting player only, and one for everyone.
            return Outcome(
                state,
                (
                    GameEvent("whisper", {"text": action["whisper"]}, to=(seat.player_id,)),
                    GameEvent("shout", {"from": seat.player_id}),
                ),
            )
        if action.get("win") is True:
            return Outcome(evolve(state, winner=seat.player_id, reason="won"))
        seq = action.get("seq")
        if type(seq) is not int:
            raise IllegalAction("bad_action", "seq must be an integer")
        index = seat.index
        if seq != state.seqs[index] + 1:
            raise IllegalAction("stale", f"expected seq {state.seqs[index] + 1}")
        seqs = list(state.seqs)
        seqs[index] = seq
        return Outcome(evolve(state, seqs=tuple(seqs)))

    def tick(self, state: SeqState, dt: float, rng: random.Random) -> Outcome:
        if not self.tick_changes:
            return Outcome(state)
        return Outcome(evolve(state, ticks=state.ticks + 1, elapsed=state.elapsed + dt))

    def time_up(self, state: SeqState) -> Outcome:
        best = max(range(len(state.players)), key=lambda i: state.seqs[i])
        return Outcome(
            evolve(state, winner=state.players[best], reason="time"), (GameEvent("time_up"),)
        )

    def view(self, state: SeqState, player_id: str | None) -> Mapping[str, Any]:
        mine = None
        if player_id in state.players:
            mine = state.secrets[state.players.index(player_id)]
        return {"seqs": list(state.seqs), "ticks": state.ticks, "mine": mine}

    def is_finished(self, state: SeqState) -> bool:
        return state.winner is not None

    def result(self, state: SeqState) -> Mapping[str, Any]:
        return {"winners": [state.winner] if state.winner else [], "reason": state.reason}

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        raise NotImplementedError


class Timeline:
    """A test's time: `now`, and the `timers` whose deadlines run as it advances."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.timers = TimerQueue()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.timers.run_due(self.now)

    def pump(self, steps: list[float]) -> None:
        for seconds in steps:
            self.advance(seconds)

    def next_timer(self) -> float | None:
        """When the next deadline is due (None: nothing is pending)."""
        return self.timers.next_time()


class RecordingOutbox:
    """Records sends as (session id, channel, decoded message) and closed sessions.

    A ``snap`` is decoded as a client does (a `SnapshotReceiver` per session,
    the welcome's quantisation, checksums verified) and recorded as the
    ``state`` it stands for, with its bytes under ``"snap"``; `snaps` keeps the
    raw ones. No client acknowledges here, so every snap is a full one unless
    a test calls the room's `handle_inputs` with an ack.

    With `on_close` set, closing a session calls it with the session id, as
    the endpoint reports the session closed. Snaps are read as `GameSession` reads
    them: each one's numbers against those of its baseline's snap.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, dict[str, Any]]] = []
        self.closed: list[int] = []
        self.ack_delays: dict[int, tuple[float, float]] = {}
        self.on_close: Callable[[int], object] | None = None
        self.receivers: dict[int, SnapshotReceiver] = {}
        self.snaps: list[tuple[int, dict[str, Any]]] = []
        self.fields: dict[int, dict[int, SnapFields]] = {}

    def send_message(self, session_id: int, channel: int, data: bytes) -> None:
        message = decode_server_message(data)
        assert message is not None, f"the server sent an invalid message: {data!r}"
        kind = message["t"]
        if kind == "welcome":
            schema = None if "vs" not in message else ViewSchema(message["vs"])
            self.receivers[session_id] = SnapshotReceiver(
                Quantisation(message.get("q", ())), schema=schema
            )
        elif kind == "snap":
            assert channel == UNRELIABLE, "a snap travels unreliable"
            self.snaps.append((session_id, message))
            snapshot = self.receivers[session_id].receive(message["d"])
            assert snapshot is not None, self.receivers[session_id].drops
            known = self.fields.setdefault(session_id, {})
            assert resolve_kept(known, message, snapshot.tick, snapshot.baseline_tick)
            message = state_of_snap(message, snapshot.tick, snapshot.view)
            message["snap"] = data
        self.sent.append((session_id, channel, message))

    def close_session(self, session_id: int) -> None:
        self.closed.append(session_id)
        if self.on_close is not None:
            self.on_close(session_id)

    def set_ack_delays(self, session_id: int, own_s: float, peer_s: float) -> bool:
        self.ack_delays[session_id] = (own_s, peer_s)
        return True

    def to(
        self, session_id: int, kind: str | None = None, channel: int | None = None
    ) -> list[dict[str, Any]]:
        """Messages sent to one session, optionally of one type and channel."""
        return [
            m
            for s, c, m in self.sent
            if s == session_id
            and (kind is None or m["t"] == kind)
            and (channel is None or c == channel)
        ]

    def clear(self) -> None:
        del self.sent[:]


def make_match(
    match_id: str = "m-1", players: Sequence[str] = ("p-a", "p-b"), game: str = "seq"
) -> Match:
    return Match(
        match_id=match_id,
        game=game,
        players=tuple(
            Ticket(player_id=p, name=p.upper(), game=game, rating=None, queued_at=0.0)
            for p in players
        ),
        formed_at=0.0,
    )
