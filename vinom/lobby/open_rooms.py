"""Open rooms: matches that players gather for by hand, before they start on a game host.

Beside the queue (the matchmaker picks who plays whom), players can open a
room (`create_room`), public (listed by `get_room_list`) or private (found
only by its short join code), let friends `join_room` by id or code, and the
room's owner may fill seats with the game's bot (`add_bot`). Once every seat
is taken the room becomes a match: it leaves this directory and is placed on
a game host like any match the matchmaker forms. A room whose people have
all left is removed; when its owner leaves, the longest-seated person left
owns it.

This module is the directory alone, sans-I/O: it keeps the rooms and their
seats and answers what changed; the lobby's request handlers
(vinom.lobby.requests) do the talking.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from attrs import define, field, frozen

from vinom.codes import new_join_code, normal_code


@frozen
class RoomSeat:
    """A seat taken in an open room: a person, or the game's bot (`bot`)."""

    player_id: str
    name: str
    bot: bool = False


class RoomError(Exception):
    """A room request that cannot be served: `code` is the lobby error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@define(eq=False)
class OpenRoom:
    """A room waiting for its seats to fill. `seats` are in joining order (seat order)."""

    room_id: str
    game: str
    size: int
    private: bool
    code: str
    owner: str
    created_at: float
    seats: list[RoomSeat] = field(factory=list)
    # A private room's owner let its match be watched by its code (`spectate`).
    spectators: bool = False

    @property
    def full(self) -> bool:
        return len(self.seats) >= self.size

    @property
    def people(self) -> list[RoomSeat]:
        return [seat for seat in self.seats if not seat.bot]

    def listing(self) -> dict[str, Any]:
        """How `get_room_list` shows a public room."""
        owner = next((s.name for s in self.seats if s.player_id == self.owner), "")
        return {
            "room_id": self.room_id,
            "game": self.game,
            "seats": self.size,
            "taken": len(self.seats),
            "owner": owner,
        }

    def describe(self) -> dict[str, Any]:
        """How the room's members see it (the join code included)."""
        return {
            **self.listing(),
            "private": self.private,
            "code": self.code,
            "spectators": self.spectators,
            "players": [
                {"name": s.name, "bot": s.bot, "owner": s.player_id == self.owner}
                for s in self.seats
            ],
        }


class OpenRooms:
    """Every open room of one lobby, by id, by join code and by member."""

    def __init__(
        self, *, max_rooms: int = 10000, token: Callable[[int], str] = secrets.token_hex
    ) -> None:
        self.max_rooms = max_rooms
        self._token = token
        self._rooms: dict[str, OpenRoom] = {}
        self._by_code: dict[str, OpenRoom] = {}
        self._by_player: dict[str, OpenRoom] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def create(
        self, owner: RoomSeat, game: str, size: int, *, private: bool, now: float,
        spectators: bool = False,
    ) -> OpenRoom:
        if len(self._rooms) >= self.max_rooms:
            raise RoomError("rate_limited", "too many open rooms on this server; try later")
        self._check_free(owner.player_id)
        room_id = f"r-{self._token(8)}"
        while room_id in self._rooms:
            room_id = f"r-{self._token(8)}"
        code = self._new_code()
        room = OpenRoom(room_id, game, size, private, code, owner.player_id, now, [owner],
                        spectators)  # fmt: skip
        self._rooms[room_id] = room
        self._by_code[code] = room
        self._by_player[owner.player_id] = room
        return room

    def find(self, *, room_id: str | None = None, code: str | None = None) -> OpenRoom:
        """The room with this id (public rooms only) or join code (any room)."""
        room = None
        if code is not None:
            room = self._by_code.get(normal_code(code))
        elif room_id is not None:
            found = self._rooms.get(room_id)
            room = None if found is None or found.private else found
        if room is None:
            raise RoomError("unknown_room", "no open room with that id or code")
        return room

    def room_of(self, player_id: str) -> OpenRoom | None:
        return self._by_player.get(player_id)

    def join(self, room: OpenRoom, seat: RoomSeat) -> None:
        self._check_free(seat.player_id)
        if room.full or room.room_id not in self._rooms:
            raise RoomError("room_full", "every seat of that room is taken")
        room.seats.append(seat)
        self._by_player[seat.player_id] = room

    def add_bot(self, player_id: str, seat: RoomSeat) -> OpenRoom:
        """The owner `player_id` fills the next seat of their room with a bot."""
        room = self._by_player.get(player_id)
        if room is None:
            raise RoomError("not_in_room", "you are not in an open room")
        if room.owner != player_id:
            raise RoomError("not_room_owner", "only the room's owner can add a bot")
        if room.full:
            raise RoomError("room_full", "every seat of the room is taken")
        room.seats.append(seat)
        return room

    def leave(self, player_id: str) -> OpenRoom | None:
        """The player leaves their room; the room as it is now (None if it is gone)."""
        room = self._by_player.pop(player_id, None)
        if room is None:
            return None
        room.seats = [s for s in room.seats if s.player_id != player_id]
        people = room.people
        if not people:
            self.remove(room)
            return None
        if room.owner == player_id:
            room.owner = people[0].player_id
        return room

    def remove(self, room: OpenRoom) -> None:
        """Take the room out (it became a match, or the server drains)."""
        self._rooms.pop(room.room_id, None)
        self._by_code.pop(room.code, None)
        for seat in room.seats:
            if self._by_player.get(seat.player_id) is room:
                del self._by_player[seat.player_id]

    def public(self, game: str | None = None) -> list[OpenRoom]:
        """Public rooms with a free seat, oldest first (of one game, if given)."""
        return [
            room
            for room in self._rooms.values()
            if not room.private and not room.full and (game is None or room.game == game)
        ]

    def rooms(self) -> list[OpenRoom]:
        return list(self._rooms.values())

    def _check_free(self, player_id: str) -> None:
        if player_id in self._by_player:
            raise RoomError("already_in_room", "you are in an open room already; leave it first")

    def _new_code(self) -> str:
        while True:
            code = new_join_code()
            if code not in self._by_code:
                return code
