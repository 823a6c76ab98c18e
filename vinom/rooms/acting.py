"""A room's actions: a player's action checked and applied, the players' real-time
inputs applied at their tick, and the bots' turns.

`RoomActions` is a part a `Room` (vinom.rooms.room) makes and holds (`actions`).
It runs a ticking room's fixed steps too (`run_ticks`). It is given the game
and what calling it takes (the room's random source, the
recorder, the loop's tick history), the seats, how to answer a player with an
error, and the room's bots; it reads the match through `ActingMatch`, the room,
which adopts an applied outcome (`acted`: a new version, the end of the game or
the states).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from attrs import define

from vinom.games.interfaces import IGame, IllegalAction, Outcome
from vinom.rooms.bots import RoomBots
from vinom.rooms.faults import GameFaults
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.realtime import INPUT_NOTICE_INTERVAL, NO_HISTORY, RealTimeLoop, SeatFeed
from vinom.rooms.record import MatchRecorder

_PLAYING = Phase.PLAYING
_INF = math.inf


class ActingMatch(Protocol):
    """What `RoomActions` reads of its room, and how it hands it an applied outcome."""

    state: Any
    version: int
    phase: Phase

    def acted(self, member: Member, outcome: Outcome, now: float) -> None: ...

    def adopt(self, outcome: Outcome) -> bool: ...

    def after_change(self, now: float) -> None: ...


@define(eq=False)
class RoomActions:
    """The actions of a `Room`: its players', their inputs' and its bots'."""

    match: ActingMatch
    game: IGame
    rng: random.Random
    members: Mapping[str, Member]
    # A ticking room's real-time loop (None: turn-based).
    loop: RealTimeLoop | None
    faults: GameFaults
    # Answers one player with an ``error`` (`RoomViews.send_error`).
    send_error: Callable[[Member, str, str, int | None], object]
    # Told every call into the game, before it is made (vinom.rooms.record).
    recorder: MatchRecorder | None
    # The seats the game's bots play (vinom.rooms.bots); None when there are none.
    bots: RoomBots | None
    # The game's `apply_action_at` (lag compensation), if it has one; its
    # `tick_at` is the real-time loop's.
    apply_action_at: Callable[..., Outcome] | None = None

    def __attrs_post_init__(self) -> None:
        self.apply_action_at = getattr(self.game, "apply_action_at", None)

    def handle_action(
        self, player_id: str, action: Mapping[str, Any], action_id: int | None, now: float
    ) -> bool:
        """Apply one action of this seated player; True if applied.

        A rejected action (wrong phase, stale, illegal) changes nothing and is
        answered with an `error` to its sender only.
        """
        member = self.members[player_id]
        send_error, phase = self.send_error, self.match.phase
        if phase is not _PLAYING:
            send_error(member, "not_playing", f"the game is {phase}", action_id)
            return False
        if member.left:
            send_error(member, "not_seated", "you are out of this game", action_id)
            return False
        try:
            outcome = self._game_action(member, action)
        except IllegalAction as e:
            send_error(member, e.code, e.message, action_id)
            return False
        except Exception:
            # A game bug or an input the game did not expect: the state is
            # immutable, so nothing changed; only the sender hears of it.
            self.faults.failed("apply_action")
            send_error(member, "internal_error", "the game failed on this action", action_id)
            return False
        member.last_action_id = action_id
        self.match.acted(member, outcome, now)
        return True

    def _game_action(
        self, member: Member, action: Mapping[str, Any], seen: float | None = None
    ) -> Outcome:
        """The game's outcome of this player's action or input (raises what it raises):
        through `apply_action_at` with the tick history when the game has one, its
        `seen` the moment the player saw when giving this input, if it says."""
        apply_at, state, loop = self.apply_action_at, self.match.state, self.loop
        if self.recorder is not None:
            # Only `apply_action_at` reads `seen`: a game without it replays without.
            tick = 0 if loop is None else loop.tick_number
            self.recorder.act(member.seat, action, state, tick, self.match.version,
                              None if apply_at is None else seen)  # fmt: skip
        if apply_at is None:
            return self.game.apply_action(state, member.seat, action, self.rng)
        if loop is None:
            return apply_at(state, member.seat, action, self.rng, NO_HISTORY)
        history = loop.history
        history.seen = seen
        try:
            return apply_at(state, member.seat, action, self.rng, history)
        finally:
            history.seen = None

    def handle_inputs(
        self,
        player_id: str,
        ack: int | None,
        inputs: tuple[tuple[int, Mapping[str, Any]], ...],
        now: float,
        drawn: Mapping[int, float] | None = None,
    ) -> None:
        """An ``input`` message of this seated player: `ack` is the newest snapshot
        tick they applied (their delta baseline), `inputs` the (tick, input) pairs
        it carries, each held for its tick (`RealTimeLoop.offer`); `drawn`, by tick,
        the moment the player saw when giving each input that says so. A room without
        a tick takes none (the seat router drops them before they come here)."""
        loop = self.loop
        if loop is not None:
            playing = self.match.phase is _PLAYING and not self.members[player_id].left
            loop.offer(player_id, ack, inputs, playing, drawn)

    def apply_inputs(self, loop: RealTimeLoop, tick: int, now: float) -> None:
        """Before the game runs `tick`: each player's inputs for it (and any late
        ones), in seat order, each player's in tick order (`RealTimeLoop.take`)."""
        match = self.match
        for feed in loop.feeds.values():
            for k, value in loop.take(feed, tick):
                buffer = feed.inputs
                seen = None if buffer is None else buffer.drawn_of(k)
                self._apply_input(loop, feed, value, now, seen)
                if match.phase is not _PLAYING:
                    return

    def _apply_input(
        self,
        loop: RealTimeLoop,
        feed: SeatFeed,
        value: Mapping[str, Any],
        now: float,
        seen: float | None = None,
    ) -> None:
        member = feed.member
        counts = loop.input_counts
        if member.left:
            counts["not_playing"] += 1
            return
        try:
            outcome = self._game_action(member, value, seen)
        except IllegalAction as e:
            counts["rejected"] += 1
            # Inputs come many a second: one error a second tells enough.
            if now - feed.input_noticed_at >= INPUT_NOTICE_INTERVAL:
                feed.input_noticed_at = now
                self.send_error(member, e.code, e.message, None)
            return
        except Exception:
            counts["rejected"] += 1
            self.faults.failed("apply_action")
            return
        counts["applied"] += 1
        self.match.acted(member, outcome, now)

    def run_ticks(self, loop: RealTimeLoop, now: float) -> bool:
        """Run the fixed steps due by `now` (`RealTimeLoop.catch_up`): each tick's
        inputs, then the game's `tick` (`tick_at` with the tick history, if it has
        one), each outcome handed to the room (`adopt`, `after_change`). False if
        the game ended on the way (no snapshot follows)."""
        match, game, recorder, rng = self.match, self.game, self.recorder, self.rng
        history, interval, tick_at = loop.history, loop.interval, loop.tick_at
        for _ in range(loop.catch_up(now)):
            tick = loop.tick_number = loop.tick_number + 1
            self.apply_inputs(loop, tick, now)
            if match.phase is not _PLAYING:
                return False  # an input ended the game
            if recorder is not None:
                recorder.tick(tick)
            try:
                if tick_at is None:
                    outcome = game.tick(match.state, interval, rng)
                else:
                    outcome = tick_at(match.state, interval, rng, history)
            except Exception:
                self.faults.failed("tick")
            else:
                if match.adopt(outcome):
                    match.after_change(now)
            if match.phase is not _PLAYING:
                return False  # the tick ended the game (the room's end stopped the ticks)
            history.record(tick, match.state)
            if recorder is not None:
                recorder.ticked(tick, match.state, match.version)
        loop.schedule_next()
        return True

    def bot_acts(self, member: Member, now: float) -> None:
        """This bot's turn has come: it chooses an action from its view, if still playing."""
        member.bot_due = _INF
        if member.left or self.match.phase is not _PLAYING:
            return
        assert member.bot is not None
        try:
            view = self.game.view(self.match.state, member.seat.player_id)
            action = member.bot.choose_action(view)
        except Exception:
            self.faults.failed("bot")
            return
        if action is not None and not self.handle_action(member.seat.player_id, action, None, now):
            # Refused (the game moved on, or a bot bug): it looks again after a while.
            assert self.bots is not None
            member.bot_due = self.bots.retry_at(now)
