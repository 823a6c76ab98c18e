"""The rooms of one game host, by match id.

An ended (finished or aborted) room stays a short while (`linger`) so its
final messages are delivered on the reliable channel, then a timer of its own
removes it; there is no periodic scan over all rooms. Removal listeners (the
session manager) close the room's sessions and notice when no room is left.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from attrs import define, field
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from vinom.games.interfaces import IGame
from vinom.matchmaking.interfaces import Match
from vinom.protocol.interfaces import ISessionSender
from vinom.rooms.room import Room, RoomConfig

RoomListener = Callable[[Room], object]


class RoomExists(Exception):
    """A room for this match id is hosted already."""


@define
class RoomRegistry:
    """Create, look up and remove rooms; ended rooms go after `linger` seconds."""

    clock: IReactorTime
    linger: float = 3.0
    # The generator of every room created without one of its own: a
    # Mersenne Twister holds 2.5 KB of state, too much to keep per room.
    rng: random.Random = field(factory=random.Random, repr=False)
    _rooms: dict[str, Room] = field(init=False, factory=dict, repr=False)
    _removals: dict[str, IDelayedCall] = field(init=False, factory=dict, repr=False)
    _listeners: list[RoomListener] = field(init=False, factory=list, repr=False)

    def create(
        self,
        match: Match,
        game: IGame,
        sender: ISessionSender,
        config: RoomConfig | None = None,
        rng: random.Random | None = None,
    ) -> Room:
        """A started room for `match`; raises `RoomExists` if its id is taken.

        Without `rng` the room uses the registry's generator (shared by such
        rooms); pass a seeded one to replay a room exactly.
        """
        if match.match_id in self._rooms:
            raise RoomExists(match.match_id)
        room = Room(
            match=match,
            game=game,
            sender=sender,
            clock=self.clock,
            config=config if config is not None else RoomConfig(),
            rng=rng if rng is not None else self.rng,
            on_end=self._room_ended,
        )
        self._rooms[match.match_id] = room
        room.start()
        return room

    def get(self, match_id: str) -> Room | None:
        return self._rooms.get(match_id)

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, match_id: object) -> bool:
        return match_id in self._rooms

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def add_removal_listener(self, listener: RoomListener) -> None:
        """Call `listener(room)` after every room removed from now on."""
        self._listeners.append(listener)

    def remove(self, match_id: str) -> Room | None:
        """Remove the room now (aborting it if it still runs); None if there is none."""
        room = self._rooms.pop(match_id, None)
        if room is None:
            return None
        removal = self._removals.pop(match_id, None)
        if removal is not None and removal.active():
            removal.cancel()
        room.close()
        for listener in list(self._listeners):
            listener(room)
        return room

    def _room_ended(self, room: Room) -> None:
        match_id = room.match_id
        if self._rooms.get(match_id) is room and match_id not in self._removals:
            self._removals[match_id] = self.clock.callLater(
                self.linger, self._linger_over, match_id
            )

    def _linger_over(self, match_id: str) -> None:
        self._removals.pop(match_id, None)
        self.remove(match_id)
