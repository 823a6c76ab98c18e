"""A room: one match of one game, played by the sessions of its seated players.

The game's state is immutable; the room is the mutable service around it. It
owns the match lifecycle (connect deadline, countdown, play until the time
limit or a result, finished or aborted), the state version, the seats and
their sessions, the reconnection window, and its deadlines. It is sans-I/O:
it reads no clock (every call takes `now`), runs no timer of its own and
calls nothing outside the game host. What it sends goes to an `Outbox` (in a
game host, the endpoint's per-session queues). The seat router tells it which
session belongs to which seat.

The room keeps the phases, the state and its version, and the calls into the
game; the rest are parts it makes and holds, each a class of its own (no mixins):
its seats and sessions (`seating`, `Seating`, vinom.rooms.seating, with the
game's `IdleRule`), its actions, inputs and bots' turns (`actions`, `RoomActions`,
vinom.rooms.acting), what it sends and when states go (`sending`, `RoomSending`,
vinom.rooms.sending), its deadlines, the earliest of which goes to the host's
`TimerQueue` (`schedule`, `RoomSchedule`, vinom.rooms.schedule), the end of its
match (`ending`, `MatchEnd`, vinom.rooms.ending), and a ticking game's fixed step
(`realtime`, `RealTimeLoop`, vinom.rooms.realtime; None in a turn-based room).
Each part reads the room through a narrow interface (`SeatedMatch`, `ActingMatch`,
`MatchNow`, `ScheduledMatch`, `EndingMatch`), never its attributes; they share
one `GameFaults` (vinom.rooms.faults), which counts and logs what the game raises.

Version rule: the version grows by exactly one for every applied action,
every phase change, and every hook (join, leave, reconnect, tick, time up)
that returned a new state object. A rejected action changes nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
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
from vinom.rooms.ending import MatchEnd
from vinom.rooms.faults import GameFaults, SharedViewMismatch
from vinom.rooms.idle import IdleRule
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase, encode_phase
from vinom.rooms.outbox import Outbox
from vinom.rooms.realtime import INPUT_NOTICE_INTERVAL, MAX_CATCH_UP_TICKS, RealTimeLoop
from vinom.rooms.record import MatchRecorder
from vinom.rooms.schedule import RoomSchedule
from vinom.rooms.schema import schema_of
from vinom.rooms.seating import Seating
from vinom.rooms.sending import RoomSending
from vinom.rooms.timers import TimerQueue
from vinom.rooms.views import RoomViews

log = Logger()

_PLAYING = Phase.PLAYING

# Also importable from here, as they were before their modules were split off.
__all__ = ["CHECK_VIEWS_ENV", "INPUT_NOTICE_INTERVAL", "MAX_CATCH_UP_TICKS", "Room"]
__all__ += ["RoomConfig", "SharedViewMismatch", "check_views_from_env"]


@define(eq=False, repr=False, init=False)
class Room:
    """One match: seats from the `Match`, the game's immutable state and its version.

    Call `start(now)` once; then the seat router reports connections
    (`player_connected`, `player_disconnected`, `player_left`) and actions
    (`handle_action`), and `timers` calls its `schedule` when the room's wake-up
    has come. `on_end(room)` is called once when the room finishes or is aborted
    (`ending`); the room keeps its sessions until its owner removes it, so the
    final messages can still be delivered.
    """

    match: Match
    game: IGame
    config: RoomConfig
    # Told every call into the game, before it is made (vinom.rooms.record).
    recorder: MatchRecorder | None

    state: Any = field(init=False)
    version: int = field(init=False, default=0)
    phase: Phase = field(init=False, default=Phase.WAITING)

    # Its seats and their sessions (vinom.rooms.seating).
    seating: Seating = field(init=False)
    # What it sends, and the periodic state (vinom.rooms.sending).
    sending: RoomSending = field(init=False)
    # Its players' actions and inputs, and its bots' turns (vinom.rooms.acting).
    actions: RoomActions = field(init=False)
    # Its deadlines and its wake-up in `timers` (vinom.rooms.schedule).
    schedule: RoomSchedule = field(init=False)
    # The end of its match: result or reason, and when (vinom.rooms.ending).
    ending: MatchEnd = field(init=False)

    # What only its parts use after this (the outbox, the timer queue, the random
    # source, the owner's `on_end`) the room hands to them rather than keeping it.
    def __init__(self, match: Match, game: IGame, outbox: Outbox, timers: TimerQueue,
                 config: RoomConfig | None = None, rng: random.Random | None = None,
                 on_end: Callable[[Room], object] | None = None,
                 recorder: MatchRecorder | None = None) -> None:  # fmt: skip
        config = RoomConfig() if config is None else config
        rng = random.Random() if rng is None else rng
        self.__attrs_init__(match, game, config, recorder)
        # Games from the registry were checked as plugins; one passed directly
        # (to a SeatRouter or here) is checked now, before it runs.
        check_game_once(game)
        rules = rules_of(game)
        quantisation = quantisation_of(game)
        schema = schema_of(game)
        checksums = config.snapshot_checksums
        faults = GameFaults(game.name, match.match_id, log)
        seats = tuple(
            Seat(player_id=t.player_id, name=t.name, index=i) for i, t in enumerate(match.players)
        )
        order = tuple(Member(seat) for seat in seats)
        members = {m.seat.player_id: m for m in order}
        tick_at = getattr(game, "tick_at", None)
        loop = RealTimeLoop.of(rules, quantisation, checksums, tick_at, schema)
        if loop is not None:
            loop.seat(order)
        self.state = game.create(seats, config.options, rng)
        bots = RoomBots.seat(game, order, match.players, rng, config.bot_think_time)
        views = RoomViews(game, outbox, quantisation, shared=rules.shared_view, checksums=checksums,
                          check=rules.shared_view and config.check_views)  # fmt: skip
        # The bots are woken through the schedule, which is made last (it reads the
        # other parts' deadlines): so a call made later, not its method now.
        wake_bots = None if bots is None else (lambda now: self.schedule.wake_bots(now))
        self.sending = RoomSending(self, views, members, order, loop, faults,
                                   config.state_interval, wake_bots)  # fmt: skip
        self.actions = RoomActions(self, game, rng, members, loop, faults, views.send_error,
                                   recorder, bots)  # fmt: skip
        self.seating = Seating(self, match.match_id, order, outbox, self.sending, loop, faults,
                               config.reconnect_grace, IdleRule.of(rules.idle_timeout))  # fmt: skip
        self.ending = MatchEnd(self, game, self.sending, loop, recorder, on_end)
        self.schedule = RoomSchedule(self, timers, self.seating, self.sending, self.actions)

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
        return self.schedule.remaining(now)

    # -- lifecycle ----------------------------------------------------------

    def start(self, now: float) -> None:
        """Open the room: the connect deadline and the periodic state start at `now`."""
        self.sending.start(now)
        self.schedule.phase_ends = now + self.config.connect_deadline
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
        """End the room without a result, telling the connected players why (`MatchEnd`)."""
        self.ending.abort(reason, now)

    def finish(self, now: float) -> None:
        """End the room with the game's result (`MatchEnd`)."""
        self.ending.finish(now)

    def close(self, now: float) -> None:
        """The owner removes the room: it ends as aborted if still running."""
        self.abort("closed", now)

    def phase_deadline(self, now: float) -> None:
        """The current phase's end came (`RoomSchedule`): the room moves on."""
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
        self.seating.track_idle(None, now)
        self.sending.send_states(now)

    def _enter(self, phase: Phase, duration: float | None, now: float) -> None:
        self.phase = phase
        self.version += 1
        self.schedule.phase_ends = None if duration is None else now + duration
        self.sending.send_all(encode_phase(phase, self.version, self.remaining(now)))

    def end_in(self, phase: Phase) -> None:
        """The match ends in `phase`, finished or aborted (`MatchEnd`): a new version,
        and no deadline is left."""
        self.phase = phase
        self.version += 1
        self.schedule.stop()

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
            if self.seating.idle is not None:  # a call saved on every input of a ticking game
                self.seating.track_idle(member, now)
            self.sending.broadcast_state(now)

    def after_change(self, now: float) -> None:
        if self.phase is not Phase.WAITING and self.game.is_finished(self.state):
            self.finish(now)
        else:
            self.seating.track_idle(None, now)
            self.sending.broadcast_state(now)

    def hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None:
        if self.recorder is not None:
            seat = args[1] if len(args) > 1 else None
            self.recorder.hook(name, seat, self.state, self.tick_number, self.version)
        try:
            return hook(*args)
        except Exception:
            self.sending.faults.failed(name)
            return None

    def handle_action(
        self, player_id: str, action: Mapping[str, Any], action_id: int | None, now: float
    ) -> bool:
        """Apply one action of this seated player; True if applied (`RoomActions`)."""
        return self.actions.handle_action(player_id, action, action_id, now)

    def handle_inputs(self, player_id: str, ack: int | None,
                      inputs: tuple[tuple[int, Mapping[str, Any]], ...], now: float,
                      drawn: Mapping[int, float] | None = None) -> None:  # fmt: skip
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
        """A deadline moved: the schedule recomputes the room's wake-up (`RoomSchedule`)."""
        self.schedule.rewake()
