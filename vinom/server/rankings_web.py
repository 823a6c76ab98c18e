"""`/leaderboard/<game>/<queue>` and `/history/<player id>`: leaderboards and match
histories as JSON on the public web server, with no sign-in (a player's ranked
history is public, as a leaderboard is).

The same rows as the lobby's `leaderboard` and `history` frames, from the same
`vinom.lobby.rankings.Rankings` (docs/web.md, "Leaderboards and history"):

    GET /leaderboard/tictactoe/ranked?limit=10  -> {"game", "queue", "entries": [...]}
    GET /history/a-5d0c9e1f2a3b4c6d?limit=10    -> {"player_id", "matches": [...]}

`limit` is optional (10 by default; 1 to 100 rows of a leaderboard, 1 to 50
matches of a history). Errors are JSON too, `{"error": code, "message": ...}`
with the lobby's codes: 404 `unknown_game`, `unknown_queue` or `no_accounts`
(the server keeps no accounts), 400 `bad_request` (a bad `limit`, a player id
longer than a player id is), 429 `rate_limited` (more than `RATE` requests a
second from one client address, after a burst of `BURST`: each is a database
read), 503 `unavailable` (the account database did not answer).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from vinom.errors import BackendUnavailable, LobbyError
from vinom.lobby import errors
from vinom.lobby.rankings import Rankings
from vinom.lobby.request_types import (
    MAX_HISTORY_LIMIT,
    MAX_LEADERBOARD_LIMIT,
    MAX_PLAYER_ID_LENGTH,
    page_limit,
)
from vinom.net.addresses import client_key
from vinom.net.limits import KeyedTokenBuckets

_STATUS = {errors.BAD_REQUEST: 400, errors.RATE_LIMITED: 429, errors.UNAVAILABLE: 503}

# Requests a second per client address (IPv6: its /64) after a burst, for both paths.
RATE = 5.0
BURST = 20


def _send(request: Request, status: int, body: dict[str, Any]) -> None:
    if request.finished:
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    request.write(json.dumps(body, separators=(",", ":")).encode("ascii"))
    request.finish()


def _error(request: Request, code: str, message: str) -> None:
    _send(request, _STATUS.get(code, 404), {"error": code, "message": message})


def _limit(request: Request, most: int) -> int | None:
    """The `limit` query argument (None, answered 400, when it is not one)."""
    given = (request.args or {}).get(b"limit")
    try:
        value = None if not given else int(given[0].decode("ascii"))
        return page_limit(value, most)
    except (ValueError, UnicodeDecodeError):
        _error(request, errors.BAD_REQUEST, f"'limit' must be a whole number from 1 to {most}")
        return None


def _answer(request: Request, d: Any) -> Any:
    # Fired when the client leaves before the answer (or once it is sent): nothing
    # more is written to a request that is gone.
    gone: list[object] = []
    request.notifyFinish().addBoth(gone.append)

    def sent(frame: dict[str, Any]) -> None:
        if not gone:
            _send(request, 200, {k: v for k, v in frame.items() if k != "type"})

    def failed(failure: Failure) -> None:
        if gone:
            return
        if failure.check(LobbyError):
            error = failure.value
            assert isinstance(error, LobbyError)
            _error(request, error.code, error.message)
        elif failure.check(BackendUnavailable):
            _error(request, errors.UNAVAILABLE, "the account database did not answer; "
                   "try again shortly")  # fmt: skip
        else:
            _error(request, errors.UNAVAILABLE, "the leaderboard could not be read")

    d.addCallbacks(sent, failed)
    return NOT_DONE_YET


class _Rankings(Resource):
    """A leaf over the rankings, reading the path below it, within its address's rate."""

    isLeaf = True

    def __init__(self, rankings: Rankings, limit: KeyedTokenBuckets) -> None:
        super().__init__()
        self._rankings = rankings
        self._limit = limit

    def path_of(self, request: Request) -> list[str] | None:
        """The path below, or None (answered 429) past the client address's rate."""
        address = request.getClientAddress()
        host = getattr(address, "host", None)
        if not self._limit.allow(client_key(host if isinstance(host, str) else str(address))):
            request.setHeader(b"retry-after", b"1")
            _error(request, errors.RATE_LIMITED, "too many requests from this address; "
                   "try again in a second")  # fmt: skip
            return None
        return [p.decode("utf-8", "replace") for p in request.postpath or ()]


class _Leaderboard(_Rankings):
    def render_GET(self, request: Request) -> Any:
        path = self.path_of(request)
        if path is None:
            return NOT_DONE_YET
        if len(path) != 2 or not all(path):
            _error(request, "not_found", "GET /leaderboard/<game>/<queue>")
            return NOT_DONE_YET
        limit = _limit(request, MAX_LEADERBOARD_LIMIT)
        if limit is None:
            return NOT_DONE_YET
        return _answer(request, self._rankings.leaderboard(path[0], path[1], limit))


class _History(_Rankings):
    def render_GET(self, request: Request) -> Any:
        path = self.path_of(request)
        if path is None:
            return NOT_DONE_YET
        if len(path) != 1 or not path[0]:
            _error(request, "not_found", "GET /history/<player id>")
            return NOT_DONE_YET
        if len(path[0]) > MAX_PLAYER_ID_LENGTH:
            _error(request, errors.BAD_REQUEST, "not a player id")
            return NOT_DONE_YET
        limit = _limit(request, MAX_HISTORY_LIMIT)
        if limit is None:
            return NOT_DONE_YET
        return _answer(request, self._rankings.history(path[0], limit))


def rankings_resources(rankings: Rankings) -> dict[bytes, Resource]:
    """The web server's children: `leaderboard` and `history`, sharing one limit."""
    limit = KeyedTokenBuckets(RATE, BURST, rankings.clock)
    return {b"leaderboard": _Leaderboard(rankings, limit), b"history": _History(rankings, limit)}
