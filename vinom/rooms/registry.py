"""The rooms of one game host, by match id.

An ended (finished or aborted) room stays a short while (`linger`) so its
final messages are delivered on the reliable channel, then goes; there is no
periodic scan over all rooms. Rooms end in time order and all linger equally
long, so the lingering rooms wait in one queue, oldest first, and the registry
keeps a single deadline for them in the host's `TimerQueue`. End and removal
listeners (the seat router, the game host core) hear of each room as it ends
and once it is gone.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterator

from attrs import define, field

from vinom.games.interfaces import IGame
from vinom.match import Match
from vinom.rooms.outbox import Outbox
from vinom.rooms.record import MatchRecorder
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.timers import TimerQueue

RoomListener = Callable[[Room], object]

#: The generator of the rooms of every registry made without one of its own.
SHARED_RNG = random.Random()


class RoomExists(Exception):
    """A room for this match id is hosted already."""


@define
class RoomRegistry:
    """Create, look up and remove rooms; ended rooms go `linger` seconds after they end.

    `timers` is the host's timer queue, shared by every room created here.
    """

    timers: TimerQueue
    linger: float = 3.0
    # The generator of every room created without one of its own: by default
    # the process's one (`SHARED_RNG`). A Mersenne Twister holds 2.5 KB of state
    # and takes about 15 us to seed from the OS: too much per room, and per
    # registry too, as each match gets a game host (and registry) of its own.
    rng: random.Random = field(default=SHARED_RNG, repr=False)
    # When the oldest lingering room goes (inf: none lingers); see TimerQueue.
    wake: float = field(init=False, default=math.inf, repr=False)
    _rooms: dict[str, Room] = field(init=False, factory=dict, repr=False)
    # Ended rooms, by the time they go; a room removed early stays here until
    # it reaches the head, ignored.
    _lingering: deque[tuple[float, Room]] = field(init=False, factory=deque, repr=False)
    _end_listeners: list[RoomListener] = field(init=False, factory=list, repr=False)
    _listeners: list[RoomListener] = field(init=False, factory=list, repr=False)

    def create(
        self,
        match: Match,
        game: IGame,
        outbox: Outbox,
        now: float,
        config: RoomConfig | None = None,
        rng: random.Random | None = None,
        recorder: MatchRecorder | None = None,
    ) -> Room:
        """A room for `match`, started at `now`; raises `RoomExists` if its id is taken.

        Without `rng` the room uses the registry's generator (shared by such
        rooms); pass a seeded one to replay a room exactly, with the `recorder`
        that writes its record (vinom.rooms.record).
        """
        if match.match_id in self._rooms:
            raise RoomExists(match.match_id)
        room = Room(
            match=match,
            game=game,
            outbox=outbox,
            timers=self.timers,
            config=config if config is not None else RoomConfig(),
            rng=rng if rng is not None else self.rng,
            on_end=self._room_ended,
            recorder=recorder,
        )
        self._rooms[match.match_id] = room
        room.start(now)
        return room

    def get(self, match_id: str) -> Room | None:
        return self._rooms.get(match_id)

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, match_id: object) -> bool:
        return match_id in self._rooms

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def add_end_listener(self, listener: RoomListener) -> None:
        """Call `listener(room)` when a room finishes or is aborted, from now on."""
        self._end_listeners.append(listener)

    def add_removal_listener(self, listener: RoomListener) -> None:
        """Call `listener(room)` after every room removed from now on."""
        self._listeners.append(listener)

    def remove(self, match_id: str, now: float) -> Room | None:
        """Remove the room now (aborting it if it still runs); None if there is none."""
        room = self._rooms.pop(match_id, None)
        if room is None:
            return None
        room.close(now)
        self._rewake()
        for listener in list(self._listeners):
            listener(room)
        return room

    def next_timer(self) -> float | None:
        """When the oldest lingering room goes, or None."""
        return None if self.wake == math.inf else self.wake

    def handle_timer(self, now: float) -> None:
        """Remove the rooms whose linger is over by `now`."""
        lingering = self._lingering
        while lingering and lingering[0][0] <= now:
            _, room = lingering.popleft()
            if self._rooms.get(room.match_id) is room:
                self.remove(room.match_id, now)
        self._rewake()

    def _room_ended(self, room: Room) -> None:
        ended_at = room.ending.ended_at
        assert ended_at is not None
        self._lingering.append((ended_at + self.linger, room))
        if len(self._lingering) == 1:
            self._rewake()
        for listener in list(self._end_listeners):
            listener(room)

    def _rewake(self) -> None:
        lingering = self._lingering
        rooms = self._rooms
        while lingering and rooms.get(lingering[0][1].match_id) is not lingering[0][1]:
            lingering.popleft()  # removed early
        wake = lingering[0][0] if lingering else math.inf
        if wake != self.wake:
            self.wake = wake
            if wake != math.inf:
                self.timers.schedule(wake, self)
