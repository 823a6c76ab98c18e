"""A room's deadlines: when its host must wake it next, and what is due then.

`RoomSchedule` is a part a `Room` (vinom.rooms.room) makes and holds (`schedule`).
It owns the current phase's end and the room's wake-up, the earliest of that and
of its other parts' deadlines (the next tick, the periodic state, reconnection
windows, the idle rule, bots' turns), as the room's owner in the host's
`TimerQueue`. When the time comes it does what is due, earliest first, through
the part whose deadline it is; the room moves on at a phase's end
(`ScheduledMatch`). Sans-I/O: times in, a deadline out.
"""

from __future__ import annotations

import math
from typing import Protocol

from attrs import define

from vinom.rooms.acting import RoomActions
from vinom.rooms.member import Member
from vinom.rooms.seating import Seating
from vinom.rooms.sending import RoomSending
from vinom.rooms.timers import TimerQueue

_INF = math.inf

# The room's deadlines, as `RoomSchedule._earliest` names the one that comes first.
_PHASE_ENDS, _TICK_DUE, _STATE_DUE, _GRACE_ENDS, _IDLE_DUE, _BOT_DUE = range(6)


class ScheduledMatch(Protocol):
    """What `RoomSchedule` asks of its room: whether it ended, and to move on when
    the current phase's end comes."""

    @property
    def ended(self) -> bool: ...

    def phase_deadline(self, now: float) -> None: ...


@define(eq=False)
class RoomSchedule:
    """The deadlines of a `Room` (module docstring)."""

    match: ScheduledMatch
    timers: TimerQueue
    # The parts whose deadlines it wakes the room for.
    seating: Seating
    sending: RoomSending
    actions: RoomActions
    # The end of the current phase (None: it has none).
    phase_ends: float | None = None
    # The earliest of all its deadlines (inf: none); see `TimerQueue`.
    wake: float = _INF

    def remaining(self, now: float) -> float | None:
        """Seconds left in the current phase at `now`, or None if it has no end."""
        ends = self.phase_ends
        return None if ends is None else max(0.0, ends - now)

    def next_timer(self) -> float | None:
        """When the room next needs `handle_timer`, or None (an ended room: never)."""
        wake = self.wake
        return None if wake == _INF else wake

    def handle_timer(self, now: float) -> None:
        """Do what is due by `now` (earliest first), then hand `timers` the next deadline."""
        match, seating = self.match, self.seating
        while not match.ended:
            due, which, member = self._earliest()
            if due > now:
                break
            if which == _PHASE_ENDS:
                ends = self.phase_ends
                match.phase_deadline(now)
                if self.phase_ends == ends:
                    self.phase_ends = None  # never the same deadline twice
            elif which == _TICK_DUE:
                loop = self.actions.loop
                assert loop is not None
                # No snapshot when the game ended on the way (`RoomActions.run_ticks`).
                if self.actions.run_ticks(loop, now) and loop.snapshot_now(now):
                    self.sending.send_states(now)
            elif which == _STATE_DUE:
                self.sending.send_states(now)
            elif which == _GRACE_ENDS:
                assert member is not None
                member.grace_ends = None
                seating.leave(member, now)
            elif which == _IDLE_DUE:
                seating.time_out(now)
                if not match.ended:
                    seating.track_idle(None, now)
            else:
                assert member is not None
                self.actions.bot_acts(member, now)
        self.rewake()

    def _earliest(self) -> tuple[float, int, Member | None]:
        """The earliest deadline: when (inf: none), which (`_PHASE_ENDS` ...) and
        whose, for a seat's (a reconnection window, a bot's turn).

        Ties go to the phase first: a time limit ends the match before the tick
        or the grace lapse due at the same moment.
        """
        ends = self.phase_ends
        due = _INF if ends is None else ends
        which = _PHASE_ENDS
        whose = None
        loop = self.actions.loop
        if loop is not None and loop.tick_due < due:
            due, which = loop.tick_due, _TICK_DUE
        state_due = self.sending.due
        if state_due < due:
            due, which = state_due, _STATE_DUE
        for member in self.seating.order:
            grace_ends = member.grace_ends
            if grace_ends is not None and grace_ends < due:
                due, which, whose = grace_ends, _GRACE_ENDS, member
        idle = self.seating.idle
        if idle is not None and idle.due < due:
            due, which = idle.due, _IDLE_DUE
        bots = self.actions.bots
        if bots is not None:
            bot_due, bot = bots.earliest()
            if bot_due < due:
                due, which, whose = bot_due, _BOT_DUE, bot
        return due, which, whose

    def rewake(self) -> None:
        """Recompute `wake`; a new value goes to the timer queue (the old entry goes stale)."""
        wake = self._earliest()[0]
        if wake != self.wake:
            self.wake = wake
            if wake != _INF:
                self.timers.schedule(wake, self)

    def wake_bots(self, now: float) -> None:
        """The state changed at `now`: each bot still in the game looks at it after
        its think time (`RoomBots.wake`)."""
        bots = self.actions.bots
        if bots is not None and bots.wake(now) < self.wake:
            self.rewake()

    def stop(self) -> None:
        """The match ended: no deadline is left, its own nor its parts' (`wake`: inf)."""
        self.phase_ends = None
        self.sending.due = _INF
        loop = self.actions.loop
        if loop is not None:
            loop.stop()
        idle = self.seating.idle
        if idle is not None:
            idle.due = _INF
        for member in self.seating.order:
            member.grace_ends = None
            member.bot_due = _INF
        self.rewake()
