"""A room's actions: a player's action checked and applied, the players' real-time
inputs applied at their tick, and the bots' turns.

`RoomActions` is a part of `Room` (vinom.rooms.room), which inherits it: its
methods read and change the room's own attributes (vinom.rooms.base).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vinom.games.interfaces import IllegalAction, Outcome
from vinom.rooms.base import RoomBase
from vinom.rooms.bots import RoomBots
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase
from vinom.rooms.realtime import INPUT_NOTICE_INTERVAL, NO_HISTORY, RealTimeLoop, SeatFeed

_PLAYING = Phase.PLAYING
_INF = math.inf


class RoomActions(RoomBase):
    """The actions of a `Room`: its players', their inputs' and its bots'."""

    if not TYPE_CHECKING:
        __slots__ = ()  # as RoomBase's

    def handle_action(
        self, player_id: str, action: Mapping[str, Any], action_id: int | None, now: float
    ) -> bool:
        """Apply one action of this seated player; True if applied.

        A rejected action (wrong phase, stale, illegal) changes nothing and is
        answered with an `error` to its sender only.
        """
        member = self._members[player_id]
        send_error = self.sending.views.send_error
        if self.phase is not _PLAYING:
            send_error(member, "not_playing", f"the game is {self.phase}", action_id)
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
            self._game_error("apply_action")
            send_error(member, "internal_error", "the game failed on this action", action_id)
            return False
        member.last_action_id = action_id
        self._acted(member, outcome, now)
        return True

    def _game_action(
        self, member: Member, action: Mapping[str, Any], seen: float | None = None
    ) -> Outcome:
        """The game's outcome of this player's action or input (raises what it raises):
        through `apply_action_at` with the tick history when the game has one, its
        `seen` the moment the player saw when giving this input, if it says."""
        apply_at = self._apply_action_at
        if self.recorder is not None:
            # Only `apply_action_at` reads `seen`: a game without it replays without.
            self.recorder.act(member.seat, action, self.state, self.tick_number,
                              self.version, None if apply_at is None else seen)  # fmt: skip
        if apply_at is None:
            return self.game.apply_action(self.state, member.seat, action, self.rng)
        loop = self.realtime
        if loop is None:
            return apply_at(self.state, member.seat, action, self.rng, NO_HISTORY)
        history = loop.history
        history.seen = seen
        try:
            return apply_at(self.state, member.seat, action, self.rng, history)
        finally:
            history.seen = None

    def _acted(self, member: Member, outcome: Outcome, now: float) -> None:
        """Adopt an applied action's or input's outcome: a new version, its events,
        then the end of the game or the states (and the player's idle clock)."""
        self.state = state = outcome.state
        self.version += 1
        for event in outcome.events:
            self.sending.send_event(event)
        if self.game.is_finished(state):
            self._finish(now)
        else:
            if self._idle is not None:
                self._track_idle(member, now)
            self.sending.broadcast_state(now)

    def handle_inputs(
        self,
        player_id: str,
        ack: int | None,
        inputs: tuple[tuple[int, Mapping[str, Any]], ...],
        now: float,
        drawn: Mapping[int, float] | None = None,
        reads: int = 0,
    ) -> None:
        """An ``input`` message of this seated player: `ack` is the newest snapshot
        tick they applied (their delta baseline), `inputs` the (tick, input) pairs
        it carries, each held for its tick (`RealTimeLoop.offer`); `drawn`, by tick,
        the moment the player saw when giving each input that says so; `reads`: what
        they read of the snaps (vinom.rooms.messages, `READS_PACKED`). A room without a tick
        takes none (the seat router drops them before they come here)."""
        loop = self.realtime
        if loop is not None:
            playing = self.phase is _PLAYING and not self._members[player_id].left
            loop.offer(player_id, ack, inputs, playing, drawn, reads)

    def _apply_inputs(self, loop: RealTimeLoop, tick: int, now: float) -> None:
        """Before the game runs `tick`: each player's inputs for it (and any late
        ones), in seat order, each player's in tick order (`RealTimeLoop.take`)."""
        for feed in loop.feeds.values():
            for k, value in loop.take(feed, tick):
                buffer = feed.inputs
                seen = None if buffer is None else buffer.drawn_of(k)
                self._apply_input(loop, feed, value, now, seen)
                if self.phase is not _PLAYING:
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
                self.sending.views.send_error(member, e.code, e.message, None)
            return
        except Exception:
            counts["rejected"] += 1
            self._game_error("apply_action")
            return
        counts["applied"] += 1
        self._acted(member, outcome, now)

    def _wake_bots(self, bots: RoomBots, now: float) -> None:
        """The state changed: each bot still in the game looks at it after its think time."""
        if bots.wake(now) < self.wake:
            self._rewake()

    def _bot_acts(self, member: Member, now: float) -> None:
        member.bot_due = _INF
        if member.left or self.phase is not _PLAYING:
            return
        assert member.bot is not None
        try:
            action = member.bot.choose_action(self.game.view(self.state, member.seat.player_id))
        except Exception:
            self._game_error("bot")
            return
        if action is not None and not self.handle_action(member.seat.player_id, action, None, now):
            # Refused (the game moved on, or a bot bug): it looks again after a while.
            assert self._bots is not None
            member.bot_due = self._bots.retry_at(now)
