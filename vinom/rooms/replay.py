"""Replaying a match record: rebuild every state from the record's start and calls.

`read_record(data)` decodes a record (vinom.rooms.record; docs/protocol.md,
"Match records") into its header and entries; a record whose stream stops
short (a host that crashed, a copy cut off) reads up to its last whole entry
and says it is incomplete; one that is not a record, or is damaged inside,
raises `RecordError` with one line saying what. `read_record_file(data)`
splits a host's record file (many matches' records, in frames) into its
matches' records, each for `read_record`. `Replay` then makes the calls
the room made, in order, on the installed game, with a generator seeded as the
room's was, and checks every recorded state hash: the first that differs
raises `ReplayMismatch` naming the tick (and the entry), and the replay stops
there. Like the room, the replay keeps the state when the game raised
(`IllegalAction` or a bug): the record has the calls, not their outcomes.

Sans-I/O: no clock, no files. `vinom replay FILE` (vinom.client.replay) and
the tests drive it.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import msgpack
from attrs import frozen

from vinom.games.history import TickHistory
from vinom.games.interfaces import IGame, Seat
from vinom.games.rules import GameRules
from vinom.rooms.record import (
    ACT,
    END,
    GZIP_WBITS,
    HASH,
    HOOK,
    MAX_RECORD_RAW_BYTES,
    PLAY,
    RECORD_FILE_FORMAT,
    RECORD_FILE_VERSION,
    RECORD_FORMAT,
    RECORD_VERSION,
    TICK,
    frame_parts,
    state_hash,
)

#: Entries between two checkpoints a replay keeps for seeking back.
CHECKPOINT_EVERY = 2000

# The hooks a record may name (the room's `_hook` names).
_HOOKS = frozenset({"join", "reconnect", "leave", "idle", "time_up"})


class RecordError(Exception):
    """Not a readable match record (the message says why, in one line)."""


class ReplayMismatch(Exception):
    """The replayed state differs from the recorded one (the game is not deterministic,
    or the installed game's rules differ from the recorded ones)."""

    def __init__(
        self, tick: int, version: int, entry: int, expected: int, got: int, ticking: bool
    ) -> None:
        where = f"tick {tick}" if ticking else f"version {version}"
        super().__init__(
            f"the replayed state differs from the record at {where} (entry {entry}): "
            f"recorded hash {expected:016x}, replayed {got:016x}"
        )
        self.tick = tick
        self.version = version
        self.entry = entry
        self.expected = expected
        self.got = got


@frozen
class Record:
    """A decoded record: its header map, its entries, and whether it ends properly
    (an END entry and the end of the gzip stream) or stops short."""

    header: Mapping[str, Any]
    entries: tuple[tuple[Any, ...], ...]
    complete: bool

    @property
    def game(self) -> str:
        return str(self.header["game"])

    @property
    def end(self) -> tuple[Any, ...] | None:
        """The END entry, if the record has one."""
        if self.entries and self.entries[-1][0] == END:
            return self.entries[-1]
        return None


def _decompress(data: bytes) -> tuple[bytes, bool]:
    decompressor = zlib.decompressobj(GZIP_WBITS)
    try:
        raw = decompressor.decompress(data, MAX_RECORD_RAW_BYTES)
        if len(raw) >= MAX_RECORD_RAW_BYTES and (
            decompressor.unconsumed_tail or not decompressor.eof
        ):
            raise RecordError(
                f"the record decompresses to more than {MAX_RECORD_RAW_BYTES >> 20} MiB, "
                "the most a reader takes"
            )
    except zlib.error as e:
        if not data.startswith(b"\x1f\x8b"):
            raise RecordError("not a match record (not gzip data)") from None
        raise RecordError(f"the record is damaged (its compressed stream: {e})") from None
    return raw, decompressor.eof


def read_record(data: bytes) -> Record:
    """Decode a record's bytes; raises `RecordError` (see the module docstring)."""
    raw, eof = _decompress(data)
    # Lists stay lists: an action reaches the game as the wire decoded it.
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=False, max_buffer_size=max(1, len(raw))
    )
    unpacker.feed(raw)
    values: list[Any] = []
    try:
        for value in unpacker:
            values.append(value)
    except Exception as e:
        raise RecordError(f"the record is damaged after {len(values)} values ({e})") from None
    # What is left in the unpacker is an entry cut off by the end of the data.
    whole = unpacker.tell() == len(raw)
    if not values or not isinstance(values[0], Mapping):
        raise RecordError("not a match record (no header)")
    header = values[0]
    if header.get("format") != RECORD_FORMAT:
        raise RecordError("not a match record (its header names no vinom-record format)")
    if header.get("v") != RECORD_VERSION:
        raise RecordError(
            f"a match record of version {header.get('v')!r}; "
            f"this vinom reads version {RECORD_VERSION}"
        )
    for key in ("game", "seats", "seed", "options"):
        if key not in header:
            raise RecordError(f"the record's header has no {key!r}")
    entries = []
    for i, entry in enumerate(values[1:], 1):
        if not isinstance(entry, list) or not entry or not isinstance(entry[0], int):
            raise RecordError(f"the record is damaged (entry {i} is not an entry)")
        entries.append(tuple(entry))
    complete = eof and whole and bool(entries) and entries[-1][0] == END
    return Record(header, tuple(entries), complete)


@frozen
class RecordFile:
    """The matches of a record file (`read_record_file`): each match id, in the order
    of its first piece, with its record's bytes (its pieces joined), and whether
    the file ends on a whole frame (False: cut in a frame, a host that died while
    writing; the frames before it are kept)."""

    header: Mapping[str, Any]
    records: Mapping[str, bytes]
    whole: bool


def read_record_file(data: bytes) -> RecordFile:
    """The matches in a record file of version 2 (docs/protocol.md, "Match records");
    raises `RecordError` for what is not one, or is damaged inside. A version 1
    file (one match's record) reads as a file of that one match."""
    if data.startswith(b"\x1f\x8b"):
        record = read_record(data)
        match_id = str(record.header.get("match_id", "?"))
        return RecordFile(record.header, {match_id: data}, True)
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=False, max_buffer_size=max(1, len(data)),
        max_bin_len=len(data),
    )
    unpacker.feed(data)
    try:
        header = unpacker.unpack()
    except Exception:
        header = None
    if not isinstance(header, Mapping):
        raise RecordError("not a match record (neither a record file nor gzip data)")
    if header.get("format") != RECORD_FILE_FORMAT:
        raise RecordError("not a match record file (its header names no vinom-records format)")
    if header.get("v") != RECORD_FILE_VERSION:
        raise RecordError(
            f"a match record file of version {header.get('v')!r}; this vinom reads "
            f"versions 1 and {RECORD_FILE_VERSION}"
        )
    # Each match's pieces are joined as they are read: a list of them kept a frame's
    # objects (its array, id and bytes: about 200 bytes) for each piece of a few
    # bytes, 33 times the size of a file of tiny frames.
    pieces: dict[str, bytearray] = {}
    frames = 0
    while True:
        try:
            frame = unpacker.unpack()
        except msgpack.OutOfData:
            break
        except Exception as e:
            raise RecordError(f"the record file is damaged after {frames} frames ({e})") from None
        frames += 1
        parts = frame_parts(frame)
        if parts is None:
            raise RecordError(f"the record file is damaged (frame {frames} is not a frame)")
        match_id, piece = parts
        held = pieces.get(match_id)
        if held is None:
            pieces[match_id] = bytearray(piece)
        else:
            held += piece
    whole = unpacker.tell() == len(data)
    return RecordFile(header, {m: bytes(p) for m, p in pieces.items()}, whole)


@frozen
class Step:
    """What one entry did: its index, kind, the tick it ran in, and the game's error
    when it raised (None: applied, or not a call)."""

    entry: int
    kind: int
    tick: int
    error: str | None = None


class Replay:
    """The match of `record` replayed on `game` (the installed game of its name).

    `step()` applies the next entry and returns what it did (None at the end);
    `state` is the game state after the entries applied so far (`position` of
    them), `tick` the room's tick number there. `seek(n)` goes to position `n`
    (backwards from the nearest checkpoint the replay kept on its way, every
    `CHECKPOINT_EVERY` entries: states are immutable, so one costs references).
    `run()` replays to the end. Every HASH and END entry is checked when
    reached: a difference raises `ReplayMismatch` and the replay stays there.
    """

    def __init__(self, record: Record, game: IGame) -> None:
        self.record = record
        self.game = game
        header = record.header
        try:
            self.seats = tuple(
                Seat(player_id=str(p), name=str(n), index=i)
                for i, (p, n, _bot) in enumerate(header["seats"])
            )
            self._bots = tuple(bool(b) for _p, _n, b in header["seats"])
            self._seed = int(header["seed"])
            self._options = dict(header["options"])
        except (TypeError, ValueError) as e:
            raise RecordError(f"the record's header is damaged ({e})") from None
        self.hashes_checked = 0
        self.errors = 0
        # position -> what `_restore` needs to go on from there.
        self._checkpoints: dict[int, tuple[Any, ...]] = {}
        self._reset()

    def _reset(self) -> None:
        self.rng = random.Random(self._seed)
        game = self.game
        try:
            self.state = game.create(self.seats, self._options, self.rng)
        except Exception as e:
            # The room had created this match: rules that refuse its seats or
            # options now are not the rules it was played with.
            raise RecordError(
                f"the installed {game.name} refuses the record's seats or options "
                f"({type(e).__name__}: {e})"
            ) from None
        for bot in self._bots:
            if bot:
                # The room draws each bot's seed from its generator after `create`.
                self.rng.getrandbits(64)
        self.history = TickHistory(GameRules.of(game).history_ticks)
        self._apply_at = getattr(game, "apply_action_at", None)
        self._tick_at = getattr(game, "tick_at", None)
        self.position = 0
        self.tick = 0
        # The room's version at the last hash checked (the record's, not rebuilt).
        self.version = 0
        self.interval = 1.0 / game.tick_rate if game.tick_rate else 0.0
        self.ended = False

    @property
    def length(self) -> int:
        return len(self.record.entries)

    def step(self) -> Step | None:
        """Apply the next entry; None when there is none left."""
        entries = self.record.entries
        if self.position >= len(entries):
            return None
        index = self.position
        entry = entries[index]
        kind = entry[0]
        error: str | None = None
        try:
            if kind == HOOK:
                error = self._hook(entry)
            elif kind == ACT:
                seat = self.seats[int(entry[1])]
                if self._apply_at is not None:
                    history = self.history
                    history.seen = float(entry[3]) if len(entry) > 3 else None
                    try:
                        error = self._call(
                            self._apply_at, self.state, seat, entry[2], self.rng, history
                        )
                    finally:
                        history.seen = None
                else:
                    error = self._call(self.game.apply_action, self.state, seat, entry[2], self.rng)
            elif kind == TICK:
                self.tick = int(entry[1])
                if self._tick_at is not None:
                    error = self._call(
                        self._tick_at, self.state, self.interval, self.rng, self.history
                    )
                else:
                    error = self._call(self.game.tick, self.state, self.interval, self.rng)
                if not self.game.is_finished(self.state):
                    self.history.record(self.tick, self.state)
            elif kind == PLAY:
                self.history.record(0, self.state)
            elif kind == HASH:
                self.tick, self.version = int(entry[1]), int(entry[2])
                self._check(int(entry[3]), index)
            elif kind == END:
                self.tick, self.version = int(entry[3]), int(entry[4])
                self._check(int(entry[5]), index)
                self.ended = True
            else:
                raise RecordError(
                    f"the record is damaged (entry {index + 1} is of unknown kind {kind!r})"
                )
        except (IndexError, TypeError, ValueError) as e:
            raise RecordError(f"the record is damaged (entry {index + 1}: {e!r})") from None
        self.position = index + 1
        if self.position % CHECKPOINT_EVERY == 0 and self.position not in self._checkpoints:
            self._checkpoints[self.position] = self._checkpoint()
        if error is not None:
            self.errors += 1
        return Step(index, kind, self.tick, error)

    def steps(self) -> Iterator[Step]:
        while True:
            step = self.step()
            if step is None:
                return
            yield step

    def run(self) -> None:
        """Replay every entry left (raises `ReplayMismatch` at the first difference)."""
        for _ in self.steps():
            pass

    def seek(self, position: int) -> None:
        """Go to just after entry `position` (0: the start), checking hashes on the way."""
        position = max(0, min(position, self.length))
        if position < self.position:
            kept = [p for p in self._checkpoints if p <= position]
            if kept:
                self._restore(self._checkpoints[max(kept)])
            else:
                self._reset()
        while self.position < position:
            self.step()

    def view(self, player_id: str | None = None) -> Mapping[str, Any]:
        """The game's view of the current state (None: the public one, a spectator's)."""
        return self.game.view(self.state, player_id)

    # -- internals ------------------------------------------------------------------

    def _checkpoint(self) -> tuple[Any, ...]:
        history = self.history
        ticks = [] if history.oldest < 0 else list(range(history.oldest, history.tick + 1))
        kept = tuple((k, history.state_at(k)) for k in ticks)
        return (self.position, self.state, self.rng.getstate(), kept, self.tick, self.version,
                self.ended)  # fmt: skip

    def _restore(self, checkpoint: tuple[Any, ...]) -> None:
        self.position, self.state, rng_state, kept, self.tick, self.version, self.ended = checkpoint
        self.rng.setstate(rng_state)
        self.history = TickHistory(GameRules.of(self.game).history_ticks)
        for k, state in kept:
            self.history.record(k, state)

    def _hook(self, entry: tuple[Any, ...]) -> str | None:
        name = str(entry[1])
        if name not in _HOOKS:
            raise RecordError(f"the record is damaged (unknown hook {name!r})")
        if name == "time_up":
            return self._call(self.game.time_up, self.state)
        seat = self.seats[int(entry[2])]
        return self._call(getattr(self.game, name), self.state, seat)

    def _call(self, function: Any, *args: Any) -> str | None:
        try:
            outcome = function(*args)
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        self.state = outcome.state
        return None

    def _check(self, expected: int, index: int) -> None:
        got = state_hash(self.state)
        if got != expected:
            raise ReplayMismatch(
                self.tick, self.version, index + 1, expected, got, bool(self.interval)
            )
        self.hashes_checked += 1
