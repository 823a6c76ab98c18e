"""The lobby's open-room requests: get_room_list, create_room, join_room, leave_room, add_bot.

A player who said hello and is not queued may open a room or take a seat in
one (vinom.lobby.open_rooms). Members are told of every change with a
`room_update` frame; when the last seat is taken the room becomes a match,
handed to the match placer exactly as a match the matchmaker formed, and its
people get `match_found`. Taking a seat counts against the player's address
like queueing does (`--limit max-pending-per-ip`, `--limit max-matches-per-ip`, the
queue rate). A room member who disconnects gives up the seat. A party's
members do not take seats (`already_in_party`): a party plays together, queued
by its leader.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from vinom.codes import normal_code
from vinom.errors import LobbyError
from vinom.games.rules import GameRules
from vinom.lobby import errors
from vinom.lobby.codec import quote_for_message
from vinom.lobby.connection import Frame, LobbyConnection, PlayerState
from vinom.lobby.limits import LobbyLimits
from vinom.lobby.open_rooms import OpenRoom, OpenRooms, RoomError, RoomSeat
from vinom.lobby.players import Players
from vinom.lobby.request_types import AddBot, CreateRoom, GetRoomList, JoinRoom, LeaveRoom
from vinom.match import Match, Ticket, new_match_id

# Rooms in one `room_list` reply, at most (docs/lobby.md, Rooms).
ROOM_LIST_PAGE = 50
# Private rooms' codes remembered for `spectate` by code, the newest kept.
REMEMBERED_MATCHES = 10_000


class RoomRequests:
    """Serves the open-room requests of every connection of one lobby."""

    log = Logger()

    def __init__(
        self,
        *,
        games: Mapping[str, GameRules],
        players: Players,
        limits: LobbyLimits,
        clock: IReactorTime,
        match_formed: Callable[[Match], object],
        draining: Callable[[], bool],
        rooms: OpenRooms | None = None,
        in_party: Callable[[str], bool] = lambda player_id: False,
    ) -> None:
        self._games = games
        self.rooms = rooms or OpenRooms()
        self._players = players
        self._limits = limits
        self._clock = clock
        self._match_formed = match_formed
        self._draining = draining
        self._in_party = in_party
        # Matches that began as rooms (for the operations endpoint).
        self.rooms_started = 0
        # The matches of private rooms whose owner let them be watched, by join code;
        # the newest `REMEMBERED_MATCHES`. (Whether a match may be watched at all is
        # its own `Match.spectators`, which every lobby reads from its placement.)
        self.watchable: OrderedDict[str, str] = OrderedDict()

    def room_list(self, connection: LobbyConnection, request: GetRoomList) -> None:
        self._said_hello(connection)
        if request.game is not None:
            self._known(request.game)
        listed = self.rooms.public(request.game)
        # A page at a time: one reply stays small however many rooms are open.
        page = listed[request.offset : request.offset + ROOM_LIST_PAGE]
        connection.reply(
            request,
            {
                "type": "room_list",
                "rooms": [room.listing() for room in page],
                "offset": request.offset,
                "more": request.offset + len(page) < len(listed),
            },
        )

    def create(self, connection: LobbyConnection, request: CreateRoom) -> None:
        player_id = self._may_sit(connection)
        self._known(request.game)
        size = self._size(request.game, request.size)
        self._limits.check_queue(connection.client, connection.peer_host)
        try:
            room = self.rooms.create(
                RoomSeat(player_id, connection.name), request.game, size,
                private=request.private, now=self._clock.seconds(),
                spectators=request.private and request.spectators,
            )
        except RoomError as e:
            raise LobbyError(e.code, e.message) from None
        self._limits.count_pending(player_id, connection.client)
        connection.entered_room(room.game)
        self.log.info("player {player_id} opened room {room_id} ({game}, {size} seats)",
                      player_id=player_id, room_id=room.room_id, game=room.game, size=size)
        connection.reply(request, _room_frame(room))
        self._maybe_start(room)

    def join(self, connection: LobbyConnection, request: JoinRoom) -> None:
        player_id = self._may_sit(connection)
        self._limits.check_queue(connection.client, connection.peer_host)
        try:
            room = self.rooms.find(room_id=request.room_id, code=request.code)
            self.rooms.join(room, RoomSeat(player_id, connection.name))
        except RoomError as e:
            raise LobbyError(e.code, e.message) from None
        self._limits.count_pending(player_id, connection.client)
        connection.entered_room(room.game)
        connection.reply(request, _room_frame(room))
        self._tell_others(room, player_id)
        self._maybe_start(room)

    def leave(self, connection: LobbyConnection, request: LeaveRoom) -> None:
        player_id = self._said_hello(connection)
        if connection.state is not PlayerState.IN_ROOM:
            raise LobbyError(errors.NOT_IN_ROOM, "you are not in an open room")
        room = self.rooms.room_of(player_id)
        self._gone(player_id)
        connection.left_room()
        connection.reply(request, {"type": "room_left", "room_id": room and room.room_id})

    def add_bot(self, connection: LobbyConnection, request: AddBot) -> None:
        player_id = self._said_hello(connection)
        if connection.state is not PlayerState.IN_ROOM:
            raise LobbyError(errors.NOT_IN_ROOM, "you are not in an open room")
        bot = RoomSeat(f"bot-{secrets.token_hex(8)}", "Bot", bot=True)
        try:
            room = self.rooms.add_bot(player_id, bot)
        except RoomError as e:
            raise LobbyError(e.code, e.message) from None
        connection.reply(request, _room_frame(room))
        self._tell_others(room, player_id)
        self._maybe_start(room)

    def player_gone(self, player_id: str) -> None:
        """A room member's connection is gone: their seat is given up."""
        self._gone(player_id)

    def close_all(self, reason: Frame) -> int:
        """Close every open room (the server drains): each person gets `reason` and is
        closed. Returns how many people were told."""
        told = 0
        for room in self.rooms.rooms():
            self.rooms.remove(room)
            for seat in room.people:
                self._limits.uncount_pending(seat.player_id)
                connection = self._players.connection_of(seat.player_id)
                if connection is not None and connection.state is PlayerState.IN_ROOM:
                    connection.left_room()
                    connection.push(dict(reason), final=True)
                    told += 1
        return told

    def _gone(self, player_id: str) -> None:
        room = self.rooms.leave(player_id)
        self._limits.uncount_pending(player_id)
        if room is not None:
            self._tell_others(room, player_id)

    def _said_hello(self, connection: LobbyConnection) -> str:
        player_id = connection.player_id
        if connection.state is PlayerState.NEW or player_id is None:
            raise LobbyError(errors.HELLO_REQUIRED, "say hello first")
        return player_id

    def _may_sit(self, connection: LobbyConnection) -> str:
        player_id = self._said_hello(connection)
        if connection.state is PlayerState.IN_ROOM:
            raise LobbyError(
                errors.ALREADY_IN_ROOM, "you are in an open room already; leave it first"
            )
        if connection.state is not PlayerState.IDLE:
            raise LobbyError(errors.ALREADY_QUEUED, "already queued or in a match")
        if self._in_party(player_id):
            # A party plays together: its leader queues it. A member alone in a room
            # would be seated twice once the leader queued the party.
            raise LobbyError(
                errors.ALREADY_IN_PARTY, "you are in a party; leave it to open or join a room"
            )
        if self._draining():
            raise LobbyError(
                errors.SERVER_DRAINING, "the server is shutting down and takes no new players"
            )
        return player_id

    def _known(self, game: str) -> None:
        if game not in self._games:
            raise LobbyError(errors.UNKNOWN_GAME, f"no game called {quote_for_message(game)}")

    def _size(self, game: str, size: int | None) -> int:
        rules = self._games[game]
        if size is None:
            return rules.match_size
        low, high = rules.player_range
        if not low <= size <= high:
            raise LobbyError(
                errors.INVALID_FIELD, f"a {game} room seats {low} to {high} players, not {size}"
            )
        return size

    def _tell_others(self, room: OpenRoom, player_id: str) -> None:
        frame = {"type": "room_update", "room": room.describe()}
        for seat in room.people:
            if seat.player_id != player_id:
                connection = self._players.connection_of(seat.player_id)
                if connection is not None:
                    connection.push(dict(frame))

    def _maybe_start(self, room: OpenRoom) -> None:
        if not room.full:
            return
        self.rooms.remove(room)
        now = self._clock.seconds()
        match = Match(
            match_id=new_match_id(),
            game=room.game,
            players=tuple(
                Ticket(s.player_id, s.name, room.game, None, room.created_at, bot=s.bot)
                for s in room.seats
            ),
            formed_at=now,
            # The room's policy goes with its match: every lobby and web server
            # decides by it (vinom.match.watch_refusal).
            spectators=not room.private or room.spectators,
        )
        self.rooms_started += 1
        if room.private and room.spectators:
            self.watchable[normal_code(room.code)] = match.match_id
            self.watchable.move_to_end(normal_code(room.code))
            while len(self.watchable) > REMEMBERED_MATCHES:
                self.watchable.popitem(last=False)
        self.log.info("room {room_id} is full: match {match_id}",
                      room_id=room.room_id, match_id=match.match_id)
        self._match_formed(match)


def _room_frame(room: OpenRoom) -> Frame:
    return {"type": "room", "room": room.describe()}

