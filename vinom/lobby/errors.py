"""The stable, machine-readable error codes of the lobby protocol.

Every `error` frame carries one of these codes, a human `message` and the
request `id` (null when the request had none or could not be parsed). Clients
switch on the code, never on the message. docs/lobby.md lists them all.
"""

from __future__ import annotations

from typing import Final

# Frame-level errors: the bytes on the wire were not a valid request.
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_OBJECT: Final = "not_an_object"
UNKNOWN_TYPE: Final = "unknown_type"
MISSING_FIELD: Final = "missing_field"
INVALID_FIELD: Final = "invalid_field"
FRAME_TOO_LARGE: Final = "frame_too_large"

# Request errors: a well-formed request that cannot be served in this state.
HELLO_REQUIRED: Final = "hello_required"
ALREADY_HELLO: Final = "already_hello"
UNKNOWN_GAME: Final = "unknown_game"
UNKNOWN_QUEUE: Final = "unknown_queue"
RATING_REFUSED: Final = "rating_refused"
ALREADY_QUEUED: Final = "already_queued"
NOT_QUEUED: Final = "not_queued"
BAD_SECRET: Final = "bad_secret"
NO_ACTIVE_MATCH: Final = "no_active_match"
# `spectate` for a match that has ended (its room still lingers a moment).
MATCH_ENDED: Final = "match_ended"
UNKNOWN_ROOM: Final = "unknown_room"
ROOM_FULL: Final = "room_full"
ALREADY_IN_ROOM: Final = "already_in_room"
NOT_IN_ROOM: Final = "not_in_room"
NOT_ROOM_OWNER: Final = "not_room_owner"
UNKNOWN_PARTY: Final = "unknown_party"
ALREADY_IN_PARTY: Final = "already_in_party"
NOT_IN_PARTY: Final = "not_in_party"
PARTY_CHANGED: Final = "party_changed"
NOT_PARTY_LEADER: Final = "not_party_leader"
PARTY_TOO_LARGE: Final = "party_too_large"
# `hello` or `reconnect` whose `auth` the server's authenticator refused (its `reason`
# says why: docs/lobby.md, "Authentication"), or an account that is banned.
AUTH_FAILED: Final = "auth_failed"
# Leaderboards and histories (`leaderboard`, `history`).
BAD_REQUEST: Final = "bad_request"
NO_ACCOUNTS: Final = "no_accounts"
NOT_SIGNED_IN: Final = "not_signed_in"
BANNED: Final = "banned"
# The client speaks another game protocol than the server's: it must be updated to play.
PROTOCOL_OUTDATED: Final = "protocol_outdated"

# Limits and server conditions.
SERVER_DRAINING: Final = "server_draining"
RATE_LIMITED: Final = "rate_limited"
TOO_MANY_CONNECTIONS: Final = "too_many_connections"
TOO_MANY_ERRORS: Final = "too_many_errors"
TIMEOUT: Final = "timeout"
SESSION_REPLACED: Final = "session_replaced"
MATCH_FAILED: Final = "match_failed"
# The shared state (Redis, with --redis) did not answer in time: try again later.
UNAVAILABLE: Final = "unavailable"
INTERNAL_ERROR: Final = "internal_error"

ALL_CODES: Final = frozenset(
    {
        MALFORMED_JSON,
        NOT_AN_OBJECT,
        UNKNOWN_TYPE,
        MISSING_FIELD,
        INVALID_FIELD,
        FRAME_TOO_LARGE,
        HELLO_REQUIRED,
        ALREADY_HELLO,
        UNKNOWN_GAME,
        UNKNOWN_QUEUE,
        RATING_REFUSED,
        ALREADY_QUEUED,
        NOT_QUEUED,
        BAD_SECRET,
        NO_ACTIVE_MATCH,
        MATCH_ENDED,
        UNKNOWN_ROOM,
        ROOM_FULL,
        ALREADY_IN_ROOM,
        NOT_IN_ROOM,
        NOT_ROOM_OWNER,
        UNKNOWN_PARTY,
        ALREADY_IN_PARTY,
        NOT_IN_PARTY,
        PARTY_CHANGED,
        NOT_PARTY_LEADER,
        PARTY_TOO_LARGE,
        PROTOCOL_OUTDATED,
        AUTH_FAILED,
        BANNED,
        BAD_REQUEST,
        NO_ACCOUNTS,
        NOT_SIGNED_IN,
        SERVER_DRAINING,
        RATE_LIMITED,
        TOO_MANY_CONNECTIONS,
        TOO_MANY_ERRORS,
        TIMEOUT,
        SESSION_REPLACED,
        MATCH_FAILED,
        UNAVAILABLE,
        INTERNAL_ERROR,
    }
)

# Errors that do not count towards closing a connection: they follow from the
# server's state or from a race the client could not see (a cancel that
# crossed a match being formed), not from a misbehaving client.
NOT_COUNTED: Final = frozenset(
    {
        ALREADY_QUEUED,
        NOT_QUEUED,
        # A room may fill, start or close between the list a client saw and its request.
        UNKNOWN_ROOM,
        ROOM_FULL,
        ALREADY_IN_ROOM,
        NOT_IN_ROOM,
        # Other members change a party (join, leave, lead, queue) without the client seeing.
        UNKNOWN_PARTY,
        ALREADY_IN_PARTY,
        NOT_IN_PARTY,
        PARTY_CHANGED,
        NOT_PARTY_LEADER,
        PARTY_TOO_LARGE,
        # The server's rating source refused a ranked ticket: its policy, not a bad frame.
        RATING_REFUSED,
        # A match may end between the id a client saw and its `spectate`.
        MATCH_ENDED,
        # An old client asks again and again, as its player presses "play": each answer
        # says why, and closing the connection for it would only hide that.
        PROTOCOL_OUTDATED,
        # Refusals of credentials are limited per address instead (a client may try
        # again with a fresh token), and a banned account's connection is closed.
        AUTH_FAILED,
        BANNED,
        # What the server offers (no account database) and who asks (a guest): not
        # a misbehaving client.
        NO_ACCOUNTS,
        NOT_SIGNED_IN,
        SERVER_DRAINING,
        MATCH_FAILED,
        UNAVAILABLE,
        INTERNAL_ERROR,
        SESSION_REPLACED,
        TOO_MANY_CONNECTIONS,
        TOO_MANY_ERRORS,
        TIMEOUT,
    }
)
