"""The lobby's requests as they arrive: one record per frame `type` (`Hello`, `Queue`,
...), the limits of their fields, and the reading of each from its frame's JSON object
(`PARSERS`, which raise `FieldError`). Splitting the stream into frames, their JSON and
`id`, and writing frames is vinom.lobby.codec's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import field, frozen

from vinom.lobby import errors
from vinom.lobby.names import MAX_NAME_LENGTH, normalize_name
from vinom.protocol.wire import GAME_PROTOCOL as GAME_PROTOCOL

# GAME_PROTOCOL: the game protocol this lobby's game hosts speak, told in `welcome`: a
# client must speak it to be handed a connect token (docs/lobby.md, "Protocol").
# What a `hello` or `reconnect` without "protocol" speaks: clients from before the key
# existed spoke protocol 1.
UNSTATED_PROTOCOL: Final = 1
# The largest "protocol" accepted: the request packet carries the version as a u32.
MAX_PROTOCOL: Final = 2**32 - 1

RequestId = str | int | None

MAX_ID_LENGTH = 64
MAX_GAME_LENGTH = 64
MAX_PLAYER_ID_LENGTH = 64
MAX_SECRET_LENGTH = 128
# A rating is a finite number within +-MAX_RATING (docs/lobby.md).
MAX_RATING = 1e9
MAX_QUEUE_LENGTH = 32
MAX_ROOM_ID_LENGTH = 32
MAX_ROOM_SIZE = 64
# `get_room_list` pages start at most this far into the list.
MAX_ROOM_LIST_OFFSET = 1_000_000


@frozen
class Previous:
    """The identity a returning player had before (from an earlier `welcome`), in `hello`.

    The secret is left out of the repr: requests are logged when serving them fails.
    """

    player_id: str
    secret: str = field(repr=False)


# The `auth` object of `hello` and `reconnect`: at most this many keys, and this many
# characters in its keys and string values together (a JWT of a few kilobytes fits).
MAX_AUTH_KEYS = 8
MAX_AUTH_CHARS = 3072
MAX_AUTH_KIND_LENGTH = 32


@frozen
class BadAuth:
    """An `auth` object refused before any authenticator sees it, with the
    `auth_failed` reason: `too_large` or `malformed`."""

    reason: str
    message: str


# The credentials of a `hello` or `reconnect`: an object of scalars with a string
# `kind`, one refused as it was read, or none (an old client, or a guest).
Auth = Mapping[str, Any] | BadAuth | None


@frozen
class Hello:
    """`hello`: the first frame of a new player; `name` is shown to other players.

    `previous`: the player's earlier identity, if they had one (their lobby
    connection was lost): a ticket it left queued is withdrawn. `protocol`:
    the game protocol the client speaks (`UNSTATED_PROTOCOL` when it did not
    say); a client of another protocol than `GAME_PROTOCOL` is refused any
    request that would hand it a connect token.
    """

    request_id: RequestId
    name: str
    previous: Previous | None = None
    protocol: int = UNSTATED_PROTOCOL
    # Left out of the repr: it holds a bearer token.
    auth: Auth = field(default=None, repr=False)


@frozen
class Queue:
    """`queue`: put the player in `game`'s `queue` ("normal" or "ranked"), claiming `rating`."""

    request_id: RequestId
    game: str
    rating: float | None
    queue: str = "normal"


@frozen
class Cancel:
    """`cancel`: leave the queue."""

    request_id: RequestId


@frozen
class Ping:
    """`ping`: liveness check, answered with `pong`."""

    request_id: RequestId


@frozen
class Reconnect:
    """`reconnect`: a player of a running match asks for a fresh connect token.

    It is a connection's first request, in place of `hello`, so it says the
    `protocol` the client speaks too. The secret is left out of the repr:
    requests are logged when serving them fails.
    """

    request_id: RequestId
    player_id: str
    secret: str = field(repr=False)
    protocol: int = UNSTATED_PROTOCOL
    auth: Auth = field(default=None, repr=False)


@frozen
class GetRoomList:
    """`get_room_list`: the public open rooms waiting for players (of `game`, if given),
    a page of them from the `offset`th on."""

    request_id: RequestId
    game: str | None
    offset: int = 0


@frozen
class CreateRoom:
    """`create_room`: open a room of `game`, public or `private` (found by its code)."""

    request_id: RequestId
    game: str
    private: bool
    size: int | None
    # A private room: its match may be watched by its join code (`spectate`).
    spectators: bool = False


@frozen
class JoinRoom:
    """`join_room`: take a seat in an open room, by its `room_id` or its join `code`."""

    request_id: RequestId
    room_id: str | None
    code: str | None


@frozen
class LeaveRoom:
    """`leave_room`: give up the seat in the open room."""

    request_id: RequestId


@frozen
class AddBot:
    """`add_bot`: the room's owner fills its next seat with the game's bot."""

    request_id: RequestId


@frozen
class PartyCreate:
    """`party_create`: start a party, led by the player; answered with its join code."""

    request_id: RequestId


@frozen
class PartyJoin:
    """`party_join`: join a friend's party by its join `code`."""

    request_id: RequestId
    code: str


@frozen
class PartyLeave:
    """`party_leave`: leave the party (a queued party's ticket is withdrawn)."""

    request_id: RequestId


@frozen
class Spectate:
    """`spectate`: watch a running match (read-only), by its id (`match_found`'s `game_id`)
    or by the join `code` of the private room it began as, if its owner allowed it."""

    request_id: RequestId
    match_id: str | None
    code: str | None = None


@frozen
class GetLeaderboard:
    """`leaderboard`: a game's queue's leaderboard, its top `limit` rows or (`around`)
    the page around the asking player."""

    request_id: RequestId
    game: str
    queue: str = "ranked"
    limit: int = 10
    around: bool = False


@frozen
class GetHistory:
    """`history`: the signed-in player's last `limit` rated matches."""

    request_id: RequestId
    limit: int = 10


Request = (
    Hello | Queue | Cancel | Ping | Reconnect | GetRoomList | CreateRoom | JoinRoom | LeaveRoom
    | AddBot | PartyCreate | PartyJoin | PartyLeave | Spectate | GetLeaderboard | GetHistory
)

# The rows of one `leaderboard` page and of one `history` at most, and by default.
MAX_LEADERBOARD_LIMIT = 100
MAX_HISTORY_LIMIT = 50
DEFAULT_PAGE = 10


class FieldError(Exception):
    """A request's field refused (a `PARSERS` reader's): vinom.lobby.codec answers it as a
    `FrameError` with this `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_unicode_text(value: str) -> bool:
    """Whether `value` is text UTF-8 can carry: JSON's `\\ud800` escapes give Python
    strings with lone surrogates, which no store, log or peer can encode."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string(obj: Mapping[str, Any], name: str, max_length: int) -> str:
    if name not in obj:
        raise FieldError(errors.MISSING_FIELD, f"'{obj['type']}' needs a '{name}'")
    value = obj[name]
    if (
        not isinstance(value, str)
        or not value
        or len(value) > max_length
        or not is_unicode_text(value)
    ):
        raise FieldError(
            errors.INVALID_FIELD,
            f"'{name}' must be a non-empty string of at most {max_length} characters"
            " (Unicode text: no lone surrogates)",
        )
    return value


def _parse_hello(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    name = normalize_name(_string(obj, "name", MAX_NAME_LENGTH * 4))
    if name is None:
        raise FieldError(
            errors.INVALID_FIELD,
            f"'name' must be 1 to {MAX_NAME_LENGTH} visible characters on one line"
            " (docs/lobby.md, Names)",
        )
    protocol = _protocol(obj)
    auth = _auth(obj)
    previous = obj.get("previous")
    if previous is None:
        return Hello(request_id, name, protocol=protocol, auth=auth)
    if not isinstance(previous, dict):
        raise FieldError(
            errors.INVALID_FIELD,
            "'previous' must be an object with the 'player_id' and 'secret' of an earlier"
            " welcome, or null",
        )
    # (named in the errors of _string: "'previous' needs a 'secret'")
    previous = {**previous, "type": "previous"}
    return Hello(
        request_id,
        name,
        Previous(
            _string(previous, "player_id", MAX_PLAYER_ID_LENGTH),
            _string(previous, "secret", MAX_SECRET_LENGTH),
        ),
        protocol,
        auth,
    )


def _protocol(obj: Mapping[str, Any]) -> int:
    """The "protocol" of a `hello` or `reconnect`: absent or null speaks 1 (the clients
    from before the key); otherwise a whole number from 1 to `MAX_PROTOCOL`."""
    protocol = obj.get("protocol")
    if protocol is None:
        return UNSTATED_PROTOCOL
    if isinstance(protocol, bool) or not isinstance(protocol, int) or not (
        1 <= protocol <= MAX_PROTOCOL
    ):
        raise FieldError(
            errors.INVALID_FIELD,
            f"'protocol' must be a whole number from 1 to {MAX_PROTOCOL} (the game protocol"
            " the client speaks), or null",
        )
    return protocol


def _parse_queue(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    game = _string(obj, "game", MAX_GAME_LENGTH)
    rating = obj.get("rating")
    if rating is not None:
        # Bounds first: math.isfinite of a 400-digit integer raises OverflowError.
        if (
            isinstance(rating, bool)
            or not isinstance(rating, int | float)
            or not -MAX_RATING <= rating <= MAX_RATING
            or not math.isfinite(rating)
        ):
            raise FieldError(
                errors.INVALID_FIELD,
                f"'rating' must be a finite number from {-MAX_RATING:.0f} to {MAX_RATING:.0f},"
                " or null",
            )
        rating = float(rating)
    queue = obj.get("queue")
    if queue is None:
        queue = "normal"
    elif (
        not isinstance(queue, str)
        or not queue
        or len(queue) > MAX_QUEUE_LENGTH
        or not is_unicode_text(queue)
    ):
        raise FieldError(
            errors.INVALID_FIELD,
            f"'queue' must be a non-empty string of at most {MAX_QUEUE_LENGTH} characters"
            " (\"normal\" or \"ranked\")",
        )
    return Queue(request_id, game, rating, queue)


def _parse_reconnect(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    player_id = _string(obj, "player_id", MAX_PLAYER_ID_LENGTH)
    secret = _string(obj, "secret", MAX_SECRET_LENGTH)
    return Reconnect(request_id, player_id, secret, _protocol(obj), _auth(obj))


def _auth(obj: Mapping[str, Any]) -> Auth:
    """The `auth` of a `hello` or `reconnect`: absent or null is None; an object of at
    most `MAX_AUTH_KEYS` keys whose strings hold at most `MAX_AUTH_CHARS` characters
    in all (else `too_large`), its values strings, numbers, booleans or null and its
    `kind` a string (else `malformed`). Refusals are answered `auth_failed`, by the
    lobby, after its limit on failures."""
    auth = obj.get("auth")
    if auth is None:
        return None
    if not isinstance(auth, dict):
        return BadAuth("malformed", "'auth' must be an object with a string 'kind', or null")
    chars = 0
    for key, value in auth.items():
        chars += len(key) + (len(value) if isinstance(value, str) else 0)
    if len(auth) > MAX_AUTH_KEYS or chars > MAX_AUTH_CHARS:
        return BadAuth(
            "too_large",
            f"'auth' may hold at most {MAX_AUTH_KEYS} keys and {MAX_AUTH_CHARS} characters",
        )
    for value in auth.values():
        if isinstance(value, dict | list) or (
            isinstance(value, str) and not is_unicode_text(value)
        ):
            return BadAuth("malformed", "the values of 'auth' must be strings, numbers, "
                           "booleans or null")  # fmt: skip
    kind = auth.get("kind")
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_AUTH_KIND_LENGTH:
        return BadAuth("malformed", f"'auth' needs a 'kind': a string of 1 to "
                       f"{MAX_AUTH_KIND_LENGTH} characters")  # fmt: skip
    return auth


def parse_auth(value: object) -> Auth:
    """An `auth` object given outside a frame (the web server's `Authorization:
    Vinom ...` header), checked as a frame's `auth` is."""
    return _auth({"auth": value})


def _either(
    obj: Mapping[str, Any], frame: str, first: tuple[str, int], second: tuple[str, int]
) -> tuple[str | None, str | None]:
    """Exactly one of two string fields (name, longest), for `frame`'s errors."""
    (a_name, a_max), (b_name, b_max) = first, second
    a = _string(obj, a_name, a_max) if a_name in obj else None
    b = _string(obj, b_name, b_max) if b_name in obj else None
    if a is None and b is None:
        raise FieldError(errors.MISSING_FIELD, f"'{frame}' needs a '{a_name}' or a '{b_name}'")
    if a is not None and b is not None:
        raise FieldError(
            errors.INVALID_FIELD, f"'{frame}' takes a '{a_name}' or a '{b_name}', not both"
        )
    return a, b


def _flag(obj: Mapping[str, Any], name: str) -> bool:
    """An optional boolean field, false when absent."""
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise FieldError(errors.INVALID_FIELD, f"'{name}' must be true or false")
    return value


def _parse_spectate(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    match_id, code = _either(
        obj, "spectate", ("match_id", MAX_ID_LENGTH), ("code", MAX_ROOM_ID_LENGTH)
    )
    return Spectate(request_id, match_id, code)


def _parse_get_room_list(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    game = _string(obj, "game", MAX_GAME_LENGTH) if obj.get("game") is not None else None
    offset = obj.get("offset")
    if offset is None:
        offset = 0
    elif (
        isinstance(offset, bool)
        or not isinstance(offset, int)
        or not 0 <= offset <= MAX_ROOM_LIST_OFFSET
    ):
        raise FieldError(
            errors.INVALID_FIELD,
            f"'offset' must be a whole number from 0 to {MAX_ROOM_LIST_OFFSET}, or null",
        )
    return GetRoomList(request_id, game, offset)


def _parse_create_room(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    game = _string(obj, "game", MAX_GAME_LENGTH)
    private = _flag(obj, "private")
    size = obj.get("size")
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_ROOM_SIZE
    ):
        raise FieldError(
            errors.INVALID_FIELD, f"'size' must be a whole number from 1 to {MAX_ROOM_SIZE}"
        )
    return CreateRoom(request_id, game, private, size, _flag(obj, "spectators"))


def _parse_join_room(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    room_id, code = _either(
        obj, "join_room", ("room_id", MAX_ROOM_ID_LENGTH), ("code", MAX_ROOM_ID_LENGTH)
    )
    return JoinRoom(request_id, room_id, code)


def _parse_party_join(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    return PartyJoin(request_id, _string(obj, "code", MAX_ROOM_ID_LENGTH))


def page_limit(value: object, most: int) -> int:
    """A `limit` of a leaderboard or a history: absent or null is `DEFAULT_PAGE`, else
    a whole number from 1 to `most` (ValueError otherwise, answered `bad_request`)."""
    if value is None:
        return DEFAULT_PAGE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"'limit' must be a whole number from 1 to {most}")
    return value


def _limit(obj: Mapping[str, Any], most: int) -> int:
    try:
        return page_limit(obj.get("limit"), most)
    except ValueError as e:
        raise FieldError(errors.BAD_REQUEST, str(e)) from None


def _parse_leaderboard(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    game = _string(obj, "game", MAX_GAME_LENGTH)
    queue = _string(obj, "queue", MAX_QUEUE_LENGTH) if obj.get("queue") is not None else None
    return GetLeaderboard(request_id, game, queue or "ranked",
                          _limit(obj, MAX_LEADERBOARD_LIMIT), _flag(obj, "around"))  # fmt: skip


def _parse_history(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    return GetHistory(request_id, _limit(obj, MAX_HISTORY_LIMIT))


def _id_only(
    record: Callable[[RequestId], Request],
) -> Callable[[Mapping[str, Any], RequestId], Request]:
    """The reader of a request with no field but its `id` (`cancel`, `ping`, ...)."""
    return lambda obj, request_id: record(request_id)


PARSERS: dict[str, Callable[[Mapping[str, Any], RequestId], Request]] = {
    "hello": _parse_hello,
    "queue": _parse_queue,
    "cancel": _id_only(Cancel),
    "ping": _id_only(Ping),
    "reconnect": _parse_reconnect,
    "spectate": _parse_spectate,
    "get_room_list": _parse_get_room_list,
    "create_room": _parse_create_room,
    "join_room": _parse_join_room,
    "leave_room": _id_only(LeaveRoom),
    "add_bot": _id_only(AddBot),
    "party_create": _id_only(PartyCreate),
    "party_join": _parse_party_join,
    "party_leave": _id_only(PartyLeave),
    "leaderboard": _parse_leaderboard,
    "history": _parse_history,
}

REQUEST_TYPES = frozenset(PARSERS)
