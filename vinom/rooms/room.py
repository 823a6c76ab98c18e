"""A room: one match of one game, played by the sessions of its seated players.

The game's state is immutable; the room is the mutable service around it. It
owns the match lifecycle (connect deadline, countdown, play until the time
limit or a result, finished or aborted), the state version, the seats and
their sessions, the reconnection window, and its deadlines. It is sans-I/O:
it reads no clock (every call takes `now`), runs no timer of its own and
calls nothing outside the game host. Its deadlines (connect deadline,
countdown, ticks, time limit, periodic state, reconnection windows) are kept
as times, the earliest in `wake`, which it hands to the host's `TimerQueue`;
the host calls `handle_timer(now)` when that time comes. What it sends goes
to an `Outbox` (in a game host, the endpoint's per-session queues). The seat
router tells it which session belongs to which seat.

States: when they go is `RoomSending`'s (vinom.rooms.sending).

The room keeps the phases, its deadlines and the calls into the game; the rest
are parts it makes and holds, each a class of its own (no mixins): its seats and
sessions (`seating`, `Seating`, vinom.rooms.seating), its actions, inputs and
bots' turns (`actions`, `RoomActions`, vinom.rooms.acting, with the `RoomBots`
of a game that has bots), what it sends and the periodic state (`sending`,
`RoomSending`, vinom.rooms.sending), and for a game with a tick its fixed step,
per-seat input and snapshot buffers, snapshot schedule and tick history
(`realtime`, `RealTimeLoop`, vinom.rooms.realtime; None in a turn-based room).
Each part reads the room through a narrow interface (`SeatedMatch`,
`ActingMatch`, `MatchNow`), never its attributes. A game's idle rule is an
`IdleRule` (vinom.rooms.idle) its seating holds, and the parts share one
`GameFaults` (vinom.rooms.faults), which counts and logs what the game raises.

Version rule: the version grows by exactly one for every applied action,
every phase change, and every hook (join, leave, reconnect, tick, time up)
that returned a new state object. A rejected action changes nothing.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from attrs import define, field
from twisted.logger import Logger

from vinom.games.interfaces import IGame, Outcome, Seat
from vinom.games.registry import check_game_once
from vinom.games.rules import rules_of
from vinom.match import Match
from vinom.protocol.interfaces import Admission
from vinom.rooms.acting import RoomActions
from vinom.rooms.bots import RoomBots
from vinom.rooms.config import CHECK_VIEWS_ENV, RoomConfig, check_views_from_env
from vinom.rooms.delta import quantisation_of
from vinom.rooms.faults import GameFaults
from vinom.rooms.idle import IdleRule
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase, encode_phase
from vinom.rooms.outbox import Outbox
from vinom.rooms.realtime import INPUT_NOTICE_INTERVAL, MAX_CATCH_UP_TICKS, RealTimeLoop
from vinom.rooms.record import MatchRecorder
from vinom.rooms.schema import schema_of
from vinom.rooms.seating import Seating
from vinom.rooms.sending import RoomSending
from vinom.rooms.timers import TimerQueue
from vinom.rooms.views import RoomViews

log = Logger()

_PLAYING = Phase.PLAYING
_INF = math.inf

# Also importable from here, as they were before their modules were split off.
__all__ = ["CHECK_VIEWS_ENV", "INPUT_NOTICE_INTERVAL", "MAX_CATCH_UP_TICKS", "Room"]
__all__ += ["RoomConfig", "SharedViewMismatch", "check_views_from_env"]

# The room's deadlines, as `Room._earliest` names the one that comes first.
_PHASE_ENDS, _TICK_DUE, _STATE_DUE, _GRACE_ENDS, _IDLE_DUE, _BOT_DUE = range(6)


class SharedViewMismatch(Exception):
    """A game says `shared_view = True`, yet `view(state, p)` differs between seats:
    found by the debug check (`RoomConfig.check_views`), logged, and every player
    gets their own view from then on."""


@define(eq=False, repr=False)
class Room:
    """One match: seats from the `Match`, the game's immutable state and its version.

    Call `start(now)` once; then the seat router reports connections
    (`player_connected`, `player_disconnected`, `player_left`) and actions
    (`handle_action`), and the host calls `handle_timer(now)` when `timers`
    says the room's `wake` has come. `on_end(room)` is called once when the
    room finishes or is aborted (at `ended_at`); the room keeps its sessions
    until its owner removes it, so the final messages can still be delivered.
    """

    match: Match
    game: IGame
    outbox: Outbox
    timers: TimerQueue
    config: RoomConfig = field(factory=RoomConfig)
    rng: random.Random = field(factory=random.Random)
    on_end: Callable[[Room], object] | None = None
    # Told every call into the game, before it is made (vinom.rooms.record).
    recorder: MatchRecorder | None = None

    state: Any = field(init=False)
    version: int = field(init=False, default=0)
    phase: Phase = field(init=False, default=Phase.WAITING)
    # The game's result once finished; the reason once aborted.
    result: Mapping[str, Any] | None = field(init=False, default=None)
    abort_reason: str | None = field(init=False, default=None)
    # When the room finished or was aborted.
    ended_at: float | None = field(init=False, default=None)
    # The earliest of the deadlines below (inf: none); see `TimerQueue`.
    wake: float = field(init=False, default=_INF)

    # Its seats and their sessions (vinom.rooms.seating).
    seating: Seating = field(init=False)
    # The end of the current phase (connect deadline, countdown, time limit):
    # also the deadline that moves the room on.
    _phase_ends: float | None = field(init=False, default=None)
    # What it sends, and the periodic state (vinom.rooms.sending).
    sending: RoomSending = field(init=False)
    # Its players' actions and inputs, and its bots' turns (vinom.rooms.acting).
    actions: RoomActions = field(init=False)

    def __attrs_post_init__(self) -> None:
        # Games from the registry were checked as plugins; one passed directly
        # (to a SeatRouter or here) is checked now, before it runs.
        check_game_once(self.game)
        rules = rules_of(self.game)
        quantisation = quantisation_of(self.game)
        schema = schema_of(self.game)
        checksums = self.config.snapshot_checksums
        faults = GameFaults(self.game.name, self.match.match_id, log)
        seats = tuple(
            Seat(player_id=t.player_id, name=t.name, index=i)
            for i, t in enumerate(self.match.players)
        )
        order = tuple(Member(seat) for seat in seats)
        members = {m.seat.player_id: m for m in order}
        loop = RealTimeLoop.of(
            rules, quantisation, checksums, getattr(self.game, "tick_at", None), schema
        )
        if loop is not None:
            loop.seat(order)
        self.state = self.game.create(seats, self.config.options, self.rng)
        bots = RoomBots.seat(
            self.game, order, self.match.players, self.rng, self.config.bot_think_time
        )
        views = RoomViews(
            self.game,
            self.outbox,
            quantisation,
            shared=rules.shared_view,
            checksums=checksums,
            check=rules.shared_view and self.config.check_views,
        )
        wake_bots = None if bots is None else partial(self._wake_bots, bots)
        interval, check = self.config.state_interval, self._check_shared_view
        self.sending = RoomSending(self, views, members, order, loop, faults, interval, check,
                                   wake_bots)  # fmt: skip
        self.actions = RoomActions(self, self.game, self.rng, members, loop, faults,
                                   views.send_error, self.recorder, bots)  # fmt: skip
        self.seating = Seating(self, self.match.match_id, order, self.outbox, self.sending, loop,
                               faults, self.config.reconnect_grace,
                               IdleRule.of(rules.idle_timeout))  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"<Room {self.match.match_id} {self.game.name} {self.phase} v{self.version}"
            f" sessions={self.session_ids()}>"
        )

    # -- queries ------------------------------------------------------------

    @property
    def match_id(self) -> str:
        return self.match.match_id

    @property
    def seats(self) -> tuple[Seat, ...]:
        """The seats, in match order."""
        return self.seating.seats

    # -- its seats and sessions (vinom.rooms.seating, `Seating`'s documented there) --

    def session_ids(self) -> list[int]:
        return self.seating.session_ids()

    def seat_of(self, player_id: str) -> Seat | None:
        return self.seating.seat_of(player_id)

    def session_of(self, player_id: str) -> int | None:
        return self.seating.session_of(player_id)

    def in_grace(self, player_id: str) -> bool:
        return self.seating.in_grace(player_id)

    def joined_players(self) -> tuple[str, ...]:
        return self.seating.joined_players()

    def has_left(self, player_id: str) -> bool:
        return self.seating.has_left(player_id)

    def admission(self, player_id: str) -> Admission:
        return self.seating.check_admission(player_id)[0]

    def check_admission(self, player_id: str) -> tuple[Admission, str | None]:
        return self.seating.check_admission(player_id)

    def player_connected(self, player_id: str, session_id: int, now: float) -> bool:
        return self.seating.player_connected(player_id, session_id, now)

    def player_disconnected(self, player_id: str, session_id: int, now: float) -> None:
        self.seating.player_disconnected(player_id, session_id, now)

    def player_left(self, player_id: str, now: float) -> None:
        self.seating.player_left(player_id, now)

    @property
    def action_rate(self) -> float:
        """The game's actions per second per player (0: unlimited)."""
        return rules_of(self.game).action_rate

    @property
    def realtime(self) -> RealTimeLoop | None:
        """A game with a tick: its fixed step, inputs, snapshots and tick history
        (vinom.rooms.realtime, held by `actions`). None for a game without a tick."""
        return self.actions.loop

    @property
    def tick_rate(self) -> float:
        """The game's ticks per second (0: a game without a tick)."""
        return 0.0 if self.realtime is None else self.realtime.rate

    @property
    def snapshot_rate(self) -> float:
        """States per second per player while playing (0: after every change; see
        vinom.rooms.sending), from the game's `snapshot_rate`."""
        return 0.0 if self.realtime is None else self.realtime.snapshot_rate

    @property
    def tick_number(self) -> int:
        """Game ticks run so far (every state carries it, with the room's time)."""
        return 0 if self.realtime is None else self.realtime.tick_number

    @property
    def dropped_ticks(self) -> int:
        """Fixed steps never run: the lag beyond `MAX_CATCH_UP_TICKS` a wake-up dropped."""
        return 0 if self.realtime is None else self.realtime.dropped_ticks

    @property
    def input_counts(self) -> Counter[str]:
        """What became of the players' real-time inputs (`RealTimeLoop.input_counts`;
        a new empty count for a game without a tick, which takes no inputs)."""
        return Counter() if self.realtime is None else self.realtime.input_counts

    @property
    def ended(self) -> bool:
        """True once finished or aborted."""
        return self.phase is Phase.FINISHED or self.phase is Phase.ABORTED

    def remaining(self, now: float) -> float | None:
        """Seconds left in the current phase at `now`, or None if it has no end."""
        ends = self._phase_ends
        if ends is None:
            return None
        return max(0.0, ends - now)

    def next_timer(self) -> float | None:
        """When the room next needs `handle_timer`, or None (an ended room: never)."""
        wake = self.wake
        return None if wake == _INF else wake

    # -- lifecycle ----------------------------------------------------------

    def start(self, now: float) -> None:
        """Open the room: the connect deadline and the periodic state start at `now`."""
        self.sending.start(now)
        self._phase_ends = now + self.config.connect_deadline
        # Bots sit down at once; the match starts when the people have come.
        bots = self.actions.bots
        if bots is not None:
            for member in bots.members:
                outcome = self.hook("join", self.game.join, self.state, member.seat)
                if outcome is not None:
                    self.adopt(outcome)
            self.maybe_start(now)  # every seat a bot's
        self.rewake()

    def abort(self, reason: str, now: float) -> None:
        """End the room without a result, telling the connected players why."""
        if not self.ended:
            self.abort_reason = reason
            self._end(Phase.ABORTED, now)

    def handle_timer(self, now: float) -> None:
        """Do what is due by `now` (earliest first), then hand `timers` the next deadline."""
        while not self.ended:
            due, which, member = self._earliest()
            if due > now:
                break
            if which == _PHASE_ENDS:
                ends = self._phase_ends
                self._phase_deadline(now)
                if self._phase_ends == ends:
                    self._phase_ends = None  # never the same deadline twice
            elif which == _TICK_DUE:
                self._tick(now)
            elif which == _STATE_DUE:
                self.sending.send_states(now)
            elif which == _GRACE_ENDS:
                assert member is not None
                member.grace_ends = None
                self.seating.leave(member, now)
            elif which == _IDLE_DUE:
                self.seating.time_out(now)
                if not self.ended:
                    self._track_idle(None, now)
            else:
                assert member is not None
                self.actions.bot_acts(member, now)
        self.rewake()

    def _earliest(self) -> tuple[float, int, Member | None]:
        """The room's earliest deadline: when (inf: none), which (`_PHASE_ENDS` ...)
        and whose, for a seat's (a reconnection window, a bot's turn).

        Ties go to the phase first: a time limit ends the match before the tick
        or the grace lapse due at the same moment.
        """
        ends = self._phase_ends
        due = _INF if ends is None else ends
        which = _PHASE_ENDS
        whose = None
        loop = self.realtime
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

    def _phase_deadline(self, now: float) -> None:
        phase = self.phase
        if phase is Phase.WAITING:
            self.abort("players_missing", now)
        elif phase is Phase.COUNTDOWN:
            self._start_play(now)
        elif phase is _PLAYING:
            outcome = self.hook("time_up", self.game.time_up, self.state)
            if outcome is not None:
                self.adopt(outcome)
            self.finish(now)

    def maybe_start(self, now: float) -> None:
        if self.phase is not Phase.WAITING:
            return
        for member in self.seating.order:
            if member.session_id is None and member.bot is None:
                return
        countdown = self.game.countdown
        if countdown and countdown > 0:
            self._enter(Phase.COUNTDOWN, countdown, now)
            self.sending.broadcast_state(now)
        else:
            self._start_play(now)
        self.rewake()

    def _start_play(self, now: float) -> None:
        limit = self.game.time_limit
        has_limit = bool(limit and limit > 0)
        self._enter(Phase.PLAYING, limit if has_limit else None, now)
        loop = self.realtime
        if loop is not None:
            loop.start(now, self.state)
            if self.recorder is not None:
                self.recorder.play(self.state, self.version)
        self._track_idle(None, now)
        self.sending.send_states(now)

    def _tick(self, now: float) -> None:
        """Run the fixed steps due by `now` (`RoomActions.run_ticks`), then send the
        snapshot if one is due."""
        loop = self.realtime
        assert loop is not None
        if self.actions.run_ticks(loop, now) and loop.snapshot_now(now):
            self.sending.send_states(now)

    def finish(self, now: float) -> None:
        try:
            result = dict(self.game.result(self.state))
            # A result no room message can carry (an integer past 64 bits, say) is
            # the game's error too: found here, not while the end is being sent.
            encode_phase(Phase.FINISHED, self.version, None, result=result)
            self.result = result
        except Exception:
            self._game_error("result")
            self.result = {"winners": [], "reason": "error"}
        self._end(Phase.FINISHED, now)

    def _enter(self, phase: Phase, duration: float | None, now: float) -> None:
        self.phase = phase
        self.version += 1
        self._phase_ends = None if duration is None else now + duration
        self.sending.send_all(encode_phase(phase, self.version, self.remaining(now)))

    def _end(self, phase: Phase, now: float) -> None:
        self.phase = phase
        self.version += 1
        self.ended_at = now
        self._phase_ends = None
        self.sending.due = _INF
        if self.realtime is not None:
            self.realtime.stop()
        if self.seating.idle is not None:
            self.seating.idle.due = _INF
        for member in self.seating.order:
            member.grace_ends = None
            member.bot_due = _INF
        self.rewake()
        if self.recorder is not None:
            self.recorder.end(phase.value, self.result, self.state, self.tick_number, self.version)
        self.sending.send_all(
            encode_phase(phase, self.version, None, result=self.result, reason=self.abort_reason)
        )
        # The final state goes on the reliable channel so that it is not lost.
        for member in self.seating.order:
            if member.session_id is not None:
                self.sending.send_state_reliably(member, now)
        if self.on_end is not None:
            self.on_end(self)

    def close(self, now: float) -> None:
        """The owner removes the room: it ends as aborted if still running."""
        self.abort("closed", now)

    # -- internals ----------------------------------------------------------

    def adopt(self, outcome: Outcome) -> bool:
        """Adopt a hook's outcome and send its events; True if the state changed."""
        changed = outcome.state is not self.state
        if changed:
            self.state = outcome.state
            self.version += 1
        for event in outcome.events:
            self.sending.send_event(event)
        return changed

    def acted(self, member: Member, outcome: Outcome, now: float) -> None:
        """Adopt an applied action's or input's outcome (`RoomActions`): a new version,
        its events, then the end of the game or the states (and the player's idle clock)."""
        self.state = state = outcome.state
        self.version += 1
        for event in outcome.events:
            self.sending.send_event(event)
        if self.game.is_finished(state):
            self.finish(now)
        else:
            if self.seating.idle is not None:
                self._track_idle(member, now)
            self.sending.broadcast_state(now)

    def _wake_bots(self, bots: RoomBots, now: float) -> None:
        """The state changed: each bot still in the game looks at it after its think time."""
        if bots.wake(now) < self.wake:
            self.rewake()

    def after_change(self, now: float) -> None:
        if self.phase is not Phase.WAITING and self.game.is_finished(self.state):
            self.finish(now)
        else:
            if self.seating.idle is not None and self.phase is _PLAYING:
                self._track_idle(None, now)
            self.sending.broadcast_state(now)

    # -- the game's idle rule ---------------------------------------------------

    def _track_idle(self, actor: Member | None, now: float) -> None:
        """After a change: `actor` just acted; players the game newly awaits start
        counting now (`IdleRule.track`)."""
        idle = self.seating.idle
        if idle is None or self.phase is not _PLAYING:
            return
        try:
            awaited = frozenset(self.game.idle_players(self.state))  # type: ignore[attr-defined]
        except Exception:
            self.sending.faults.failed("idle_players")
            awaited = frozenset()
        if idle.track(self.seating.order, awaited, actor, now) < self.wake:
            self.rewake()

    def _check_shared_view(self, state: Any, version: int) -> None:
        """The debug check of `shared_view`: every seat's view must be the same.

        On the first difference the room logs a `SharedViewMismatch` naming the
        game, two players and the version, and gives each player their own
        view from then on, so that nothing hidden is shown to another player.
        """
        difference = self.sending.views.shared_view_difference(state, self.seating.order)
        if difference is None:
            return
        first, other = difference
        self.sending.views.shared = self.sending.views.check = False
        self.sending.faults.shared_view_differs(
            SharedViewMismatch(
                f"game {self.game.name!r}: view(state, {first!r}) != "
                f"view(state, {other!r}) at version {version}"
            ),
            first,
            other,
            version,
        )

    def hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None:
        if self.recorder is not None:
            seat = args[1] if len(args) > 1 else None
            self.recorder.hook(name, seat, self.state, self.tick_number, self.version)
        try:
            return hook(*args)
        except Exception:
            self._game_error(name)
            return None

    def _game_error(self, where: str) -> None:
        # Call from an `except` block: the log shows the game's traceback.
        self.sending.faults.failed(where)

    def handle_action(
        self, player_id: str, action: Mapping[str, Any], action_id: int | None, now: float
    ) -> bool:
        """Apply one action of this seated player; True if applied (`RoomActions`)."""
        return self.actions.handle_action(player_id, action, action_id, now)

    def handle_inputs(
        self,
        player_id: str,
        ack: int | None,
        inputs: tuple[tuple[int, Mapping[str, Any]], ...],
        now: float,
        drawn: Mapping[int, float] | None = None,
    ) -> None:
        """An ``input`` message of this seated player (`RoomActions.handle_inputs`)."""
        self.actions.handle_inputs(player_id, ack, inputs, now, drawn)

    def send_error(
        self, player_id: str, code: str, message: str, action_id: int | None = None
    ) -> None:
        """Send an ``error`` to this player's session, if connected (see `handle_action`)."""
        self.sending.send_error(player_id, code, message, action_id)

    def send_state(self, player_id: str, now: float) -> None:
        """Send the current state to this player on the reliable channel (`sync`)."""
        self.sending.send_state(player_id, now)

    @property
    def entity_counts(self) -> Mapping[str, int]:
        """A game with a snapshot budget: the changed entities sent and ``deferred``."""
        return self.sending.views.entity_counts

    def server_time(self, now: float) -> int:
        """The room's time at `now` as a state's ``ts`` says it (the spectators' too)."""
        return self.sending.views.server_time(now)

    @property
    def game_errors(self) -> int:
        """How many times the game's code raised (other than `IllegalAction`)."""
        return self.sending.faults.count

    def rewake(self) -> None:
        """Recompute `wake`; a new value goes to the timer queue (the old entry goes stale)."""
        wake = self._earliest()[0]
        if wake != self.wake:
            self.wake = wake
            if wake != _INF:
                self.timers.schedule(wake, self)
