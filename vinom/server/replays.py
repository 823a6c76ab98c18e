"""`/replays/<match id>`: a recorded match's public views, for the web client's replay viewer.

With `--web-replays` (off by default: a record shows a whole match, and the
operator decides who may see finished matches), the web server answers
`GET /replays/<match id>` with the match replayed from its record in
`--record-dir`'s record files (found by `vinom.hosting.records.RecordIndex`,
which reads each file once as it grows) with every recorded hash checked
(vinom.rooms.replay): one
MessagePack map (`application/msgpack`) the page plays with seek and speed
on its own clock (docs/web.md, "Replays"):

    {"match_id", "game", "title", "players": [{"id", "name", "seat"}],
     "tick_rate", "frames": [[ms, phase, view], ...],
     "end": {"phase", "result"}, "error": str or nil}

Only a finished match is served, under the rule `spectate` follows
(vinom.match.watch_refusal): its record ends, its spectators have had its end
(`--limit spectator-delay` after this server first found it ended), and its room let
anyone watch (a record whose header says `"spectators": false` is never served).

`frames` holds the public view, `view(state, None)`, each time it changed: a
real-time game at most `FRAMES_PER_SECOND` times a second of match time (a
frame's `ms` is its tick's time), a turn-based one after each call that
changed it, `MOVE_MS` apart. A record that does not replay exactly gives the
frames up to where it differs and the `error`. 404 (`NOT_FOUND`, one answer
for all): no record of that id, or one not to be served (above), or replays
are off; 422: a record that cannot be read or of a game not
installed, the reason in the body. A record is replayed at most once per
`CACHE_SIZE` recent requests (replaying a 10-minute arena match takes about a
second).

A replay runs in the web server's process, on its reactor (with the lobby and
the game hosts, when they are in the same process), so it is made a slice at a
time (`STEPS_PER_SLICE` steps; the reactor's turns between, a `Cooperator`
giving replays about 10 ms a turn), one at a time (`Replays.slot`; a request
that needs another replay meanwhile is a 503, `Retry-After: 1`, which the page
waits out), and the CPU it spends
is bounded: a bucket
of `REPLAY_CPU_BURST` CPU seconds, refilled at `REPLAY_CPU_SHARE` of a CPU; a
replay may start while the bucket is not in debt, and what it costs (the
process's CPU clock before and after) is taken from it. In debt, a request that
needs a replay is a 503 with `Retry-After` (what was already replayed is still
served): one client asking for match after match gets no more than that share.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar, cast

import msgpack
from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from vinom.errors import LobbyError
from vinom.games.interfaces import IGame
from vinom.games.rules import GameRules
from vinom.hosting.records import RecordIndex
from vinom.lobby.auth import LobbyAuth
from vinom.lobby.errors import AUTH_FAILED
from vinom.lobby.reconnects import RECONNECT_NAME
from vinom.lobby.request_types import BadAuth, parse_auth
from vinom.match import watch_refusal
from vinom.net.addresses import client_key
from vinom.rooms.record import ACT, HOOK, TICK
from vinom.rooms.replay import Record, RecordError, Replay, ReplayMismatch, read_record

FRAMES_PER_SECOND = 10
MOVE_MS = 500
CACHE_SIZE = 8
#: Matches whose end this server remembers having seen (for `--limit spectator-delay`).
ENDS_REMEMBERED = 10_000
#: The answer for a match that is not to be replayed (no record, a private room's
#: that lets nobody watch, one still playing): one answer for all, nothing to probe.
NOT_FOUND = (404, b"no finished match has this id")
#: CPU seconds of replays the bucket holds, and the share of a CPU it refills at
#: (module docstring).
REPLAY_CPU_BURST = 5.0
REPLAY_CPU_SHARE = 0.25
#: Steps of a replay made between two turns of the reactor (with `reactor`).
STEPS_PER_SLICE = 200

_T = TypeVar("_T")


def run_to_end(steps: Generator[None, None, _T]) -> _T:
    """Run a sliced computation (`document_slices`, `Replays._answer`) to its end, at
    once: what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(_T, done.value)


def replay_document(data: bytes, find_game: Callable[[str], IGame]) -> dict[str, Any]:
    """The document of the module docstring from a record's bytes; raises RecordError
    (or KeyError for a game not installed)."""
    return run_to_end(document_slices(data, find_game))


def document_slices(
    data: bytes | Record, find_game: Callable[[str], IGame]
) -> Generator[None, None, dict[str, Any]]:
    """`replay_document` a slice at a time: it yields after every `STEPS_PER_SLICE`
    steps of the replay and returns the document (of a record's bytes, or of the
    record read from them)."""
    record = data if isinstance(data, Record) else read_record(data)
    game = find_game(record.game)
    replay = Replay(record, game)
    tick_rate = float(game.tick_rate or 0.0)
    every = max(1, round(tick_rate / FRAMES_PER_SECOND)) if tick_rate else 1
    frames: list[list[Any]] = []
    last: Any = None
    moves = 0
    error = None

    def add(ms: int, phase: str) -> None:
        nonlocal last
        view = replay.view(None)
        if view != last:
            last = view
            frames.append([ms, phase, view])

    add(0, "playing")
    try:
        for n, step in enumerate(replay.steps(), 1):
            if n % STEPS_PER_SLICE == 0:
                yield None
            if step.kind == TICK:
                if step.tick % every == 0:
                    add(round(step.tick * 1000 / tick_rate), "playing")
            elif not tick_rate and step.kind in (ACT, HOOK):
                moves += 1
                add(moves * MOVE_MS, "playing")
    except ReplayMismatch as e:
        error = str(e)
    end = record.end
    ms = round(replay.tick * 1000 / tick_rate) if tick_rate else (moves + 1) * MOVE_MS
    if error is None:
        last = None
        add(ms, str(end[1]) if end is not None else "playing")
    return {
        "match_id": record.header.get("match_id"),
        "game": record.game,
        "title": GameRules.of(game).title,
        "players": [{"id": p, "name": n, "seat": i}
                    for i, (p, n, _bot) in enumerate(record.header["seats"])],
        "tick_rate": tick_rate,
        "frames": frames,
        "end": None if end is None else {"phase": end[1], "result": end[2]},
        "error": error,
    }  # fmt: skip


class Replays(Resource):
    """`/replays/`: each child is a match id (module docstring)."""

    def __init__(
        self, directory: str, find_game: Callable[[str], IGame], *,
        reactor: IReactorTime | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
        spectator_delay: float = 0.0,
        viewers: Callable[[Request], Deferred[str | None]] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        # Who a request's viewer is (their player id, None: unknown), where players
        # sign in (`viewer_of`): a match's own player may always replay it.
        self.viewers = viewers
        self.directory = directory
        self.find_game = find_game
        # A match is replayed once its spectators have had its end: `spectator_delay`
        # seconds after this server first found its record ended (when each was, the
        # newest `ENDS_REMEMBERED`).
        self._delay = spectator_delay
        self._ends_seen: OrderedDict[str, float] = OrderedDict()
        # The records refused for what does not change until they grow (a match still
        # playing, a private room's), by the length read, the newest `ENDS_REMEMBERED`:
        # asked again, such a record is not read again until its match wrote more.
        self._refused: OrderedDict[str, int] = OrderedDict()
        self._clock = clock
        self._cpu = cpu
        # The replay CPU bucket (module docstring): CPU seconds left, as of `_filled`.
        self._bucket = REPLAY_CPU_BURST
        self._filled = clock()
        # Each match's last document and the length of the record it was made from:
        # a record still growing (its match plays on) is replayed again once it grew.
        # Whether anyone may see it, and its players, are kept with it.
        self._cache: OrderedDict[str, tuple[int, bytes, bool, frozenset[str]]] = OrderedDict()
        self._index = RecordIndex(directory)
        # With a reactor, replays are made a slice at a time between its turns (its
        # cooperator gives them about 10 ms a turn), one at a time.
        self._cooperator = (
            None if reactor is None
            else Cooperator(scheduler=lambda work: reactor.callLater(0, work))
        )  # fmt: skip
        #: The one-at-a-time slot (module docstring): a replay starts only while it is
        #: free and holds it until made. Other work that must not overlap a replay
        #: may hold it too (`acquire`, then `release`); meanwhile a request that
        #: needs a replay is a 503, `Retry-After: 1` (documents made are served).
        self.slot = DeferredLock()

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _Replay(self, path.decode("utf-8", "replace"))

    def busy_for(self) -> int:
        """Whole seconds until a replay may start (0: now): the bucket refilled to
        now, and how long its debt takes to pay back (1 while one is being made)."""
        now = self._clock()
        self._bucket = min(
            REPLAY_CPU_BURST, self._bucket + (now - self._filled) * REPLAY_CPU_SHARE
        )
        self._filled = now
        if self._bucket >= 0.0:
            return 1 if self.slot.locked else 0
        return max(1, math.ceil(-self._bucket / REPLAY_CPU_SHARE))

    def answer(self, match_id: str, viewer: str | None = None) -> tuple[int, bytes]:
        """The status and body of `GET /replays/<match_id>` (module docstring), made
        at once, for `viewer` (a player id, None: unknown)."""
        return run_to_end(self._answer(match_id, viewer))

    def answer_soon(
        self, match_id: str, viewer: str | None = None
    ) -> Deferred[tuple[int, bytes]]:
        """`answer`, its replay made a slice at a time between the reactor's turns
        (at once without a reactor)."""
        cooperator = self._cooperator
        if cooperator is None:
            return succeed(self.answer(match_id, viewer))
        # The lookup and the first slice now (what needs no replay is answered at
        # once, and a replay started is one the next request waits for).
        steps = self._answer(match_id, viewer)
        try:
            next(steps)
        except StopIteration as done:
            return succeed(cast(tuple[int, bytes], done.value))
        answered: list[tuple[int, bytes]] = []

        def work() -> Iterator[None]:
            answered.append((yield from steps))

        return cooperator.cooperate(work()).whenDone().addCallback(lambda _: answered[0])

    def _answer(
        self, match_id: str, viewer: str | None = None
    ) -> Generator[None, None, tuple[int, bytes]]:
        data = self._index.find(match_id)
        if data is None:
            return NOT_FOUND
        cached = self._cache.get(match_id)
        # A document made for a match's own player is served again only to its players.
        if cached is not None and cached[0] == len(data) and (
            cached[2] or (viewer is not None and viewer in cached[3])
        ):
            self._cache.move_to_end(match_id)
            return 200, cached[1]
        # A refusal remembered is an anonymous viewer's: a signed-in one may be its player.
        if viewer is None and self._refused.get(match_id) == len(data):
            return NOT_FOUND
        try:
            record = read_record(data)
        except RecordError as e:
            return 422, str(e).encode()
        spectators = record.header.get("spectators", True) is not False
        players = frozenset(str(seat[0]) for seat in record.header.get("seats", ()))
        if watch_refusal(spectators, ended=self._ended(match_id, record), replay=True,
                         player=viewer is not None and viewer in players) is not None:
            if not spectators or record.end is None or not record.complete:
                self._refused[match_id] = len(data)
                self._refused.move_to_end(match_id)
                while len(self._refused) > ENDS_REMEMBERED:
                    self._refused.popitem(last=False)
            return NOT_FOUND
        wait = self.busy_for()
        if wait:
            return 503, f"replays are busy: try again in {wait} s".encode()
        self.slot.acquire()  # free (busy_for): taken at once
        slices = document_slices(record, self.find_game)
        try:
            while True:
                started = self._cpu()
                try:
                    next(slices)
                finally:
                    self._bucket -= max(0.0, self._cpu() - started)
                yield None
        except StopIteration as done:
            body = msgpack.packb(done.value)
        except RecordError as e:
            return 422, str(e).encode()
        except KeyError:
            return 422, b"a match of a game this server does not have"
        finally:
            self.slot.release()
        self._cache[match_id] = (len(data), body, spectators, players)
        self._cache.move_to_end(match_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return 200, body

    def _ended(self, match_id: str, record: Record) -> bool:
        """Whether the match is over for replaying: its record ends (`END`, the whole
        stream) and its spectators' delay has passed since this server first saw it."""
        if record.end is None or not record.complete:
            return False
        seen = self._ends_seen
        now = self._clock()
        first = seen.setdefault(match_id, now)
        seen.move_to_end(match_id)
        while len(seen) > ENDS_REMEMBERED:
            seen.popitem(last=False)
        return now - first >= self._delay


class _Replay(Resource):
    isLeaf = True

    def __init__(self, replays: Replays, match_id: str) -> None:
        super().__init__()
        self.replays = replays
        self.match_id = match_id

    def render_GET(self, request: Request) -> int:
        replays = self.replays
        gone: list[object] = []
        request.notifyFinish().addBoth(gone.append)

        def send(answer: tuple[int, bytes]) -> None:
            if gone:
                return  # the client left while the replay was made (it is kept)
            status, body = answer
            request.setResponseCode(status)
            if status == 503:
                request.setHeader(b"retry-after", str(replays.busy_for()).encode())
            request.setHeader(b"content-type", b"application/msgpack" if status == 200
                              else b"text/plain; charset=utf-8")  # fmt: skip
            request.setHeader(b"cache-control", b"no-store")
            request.write(body)
            request.finish()

        def refused(failure: Failure) -> None:
            failure.trap(LobbyError)
            error = failure.value
            assert isinstance(error, LobbyError)
            reason = error.fields.get("reason", error.code)
            send((401 if error.code == AUTH_FAILED else 403,
                  f"sign-in refused: {reason}: {error.message}".encode()))  # fmt: skip

        if replays.viewers is None or request.getHeader(b"authorization") is None:
            replays.answer_soon(self.match_id).addCallback(send)
        else:
            d = replays.viewers(request)
            d.addCallback(lambda viewer: replays.answer_soon(self.match_id, viewer))
            d.addCallbacks(send, refused)
        return NOT_DONE_YET


# `Authorization: Vinom <base64url of the auth object's JSON>`; longer is refused.
AUTH_SCHEME = b"vinom"
MAX_AUTHORIZATION = 6000


def viewer_of(auth: LobbyAuth) -> Callable[[Request], Deferred[str | None]]:
    """Who a replay's request comes from, signed in by the lobby's `auth` from the
    request's `Authorization: Vinom <base64url(JSON auth object)>` header (the object
    a `hello` carries): their player id, None without the header (or on a guest
    server). A refusal fails with the lobby's `LobbyError` (`auth_failed` with its
    reason, `banned`), counted against the address as the lobby's are."""

    def viewer(request: Request) -> Deferred[str | None]:
        header = request.getHeader(b"authorization")
        if header is None or not auth.required:
            return succeed(None)
        scheme, _, value = header.partition(b" ")
        host = _host_of(request)
        try:
            if scheme.lower() != AUTH_SCHEME or len(value) > MAX_AUTHORIZATION:
                raise ValueError("not a Vinom authorization")
            text = base64.urlsafe_b64decode(value.strip() + b"=" * (-len(value.strip()) % 4))
            credentials = parse_auth(json.loads(text))
        except (ValueError, binascii.Error):
            credentials = BadAuth("malformed", "the Authorization header is not 'Vinom "
                                  "<base64url of the auth object's JSON>'")  # fmt: skip
        try:
            signing = auth.sign_in(credentials, RECONNECT_NAME, client_key(host), host)
        except LobbyError as e:
            return fail(e)
        if signing is None:
            return succeed(None)
        return signing.addCallback(lambda signed: signed.player_id)

    return viewer


def _host_of(request: Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else str(address)


def replays_of(
    options: Mapping[str, Any], reactor: IReactorTime, auth: LobbyAuth | None = None
) -> Replays | None:
    """The `/replays/` resource if --web-replays asks for it and matches are recorded;
    with the lobby's `auth` (a process that runs a lobby), it knows signed-in viewers."""
    recording = options.get("recording")
    if not options.get("web-replays") or recording is None:
        return None
    spectators = options.get("spectators")
    return Replays(recording.directory, options["game-registry"].get, reactor=reactor,
                   spectator_delay=0.0 if spectators is None else spectators.delay,
                   viewers=None if auth is None else viewer_of(auth))
