"""What the parts of `Room` may use of it, as the type checker sees it.

`Room` (vinom.rooms.room) keeps the phases, the deadlines and the calls into the
game; its seats and sessions (vinom.rooms.seating) are written in a class of
their own that `Room` inherits; its actions (`actions`, vinom.rooms.acting) and
what it sends (`sending`, vinom.rooms.sending) are parts it holds.
`RoomBase` declares, for the type checker alone, the attributes and methods each
part reads of the others; at run time it is an empty class with no slots.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vinom.games.interfaces import IGame, Outcome, Seat
    from vinom.match import Match
    from vinom.rooms.config import RoomConfig
    from vinom.rooms.faults import GameFaults
    from vinom.rooms.idle import IdleRule
    from vinom.rooms.member import Member
    from vinom.rooms.messages import Phase
    from vinom.rooms.outbox import Outbox
    from vinom.rooms.realtime import RealTimeLoop
    from vinom.rooms.record import MatchRecorder
    from vinom.rooms.sending import RoomSending
    from vinom.rooms.timers import TimerQueue


class RoomBase:
    """The room as its parts see it (its attributes are `Room`'s, documented there)."""

    # No slots of its own, and no __dict__: `Room` is a slotted attrs class. (The type
    # checker is not told, as the attributes it assigns are `Room`'s slots.)
    if not TYPE_CHECKING:
        __slots__ = ()

    if TYPE_CHECKING:
        match: Match
        game: IGame
        outbox: Outbox
        timers: TimerQueue
        config: RoomConfig
        rng: random.Random
        on_end: Callable[[Any], object] | None
        recorder: MatchRecorder | None
        state: Any
        version: int
        phase: Phase
        wake: float
        realtime: RealTimeLoop | None
        _members: dict[str, Member]
        _order: tuple[Member, ...]
        _phase_ends: float | None
        _faults: GameFaults
        _idle: IdleRule | None
        sending: RoomSending

        @property
        def seats(self) -> tuple[Seat, ...]: ...

        @property
        def tick_rate(self) -> float: ...

        @property
        def snapshot_rate(self) -> float: ...

        @property
        def tick_number(self) -> int: ...

        @property
        def ended(self) -> bool: ...

        def remaining(self, now: float) -> float | None: ...

        def abort(self, reason: str, now: float) -> None: ...

        def _maybe_start(self, now: float) -> None: ...

        def _finish(self, now: float) -> None: ...

        def _apply(self, outcome: Outcome) -> bool: ...

        def _after_change(self, now: float) -> None: ...

        def _track_idle(self, actor: Member | None, now: float) -> None: ...

        def _hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None: ...

        def _game_error(self, where: str) -> None: ...

        def _rewake(self) -> None: ...
