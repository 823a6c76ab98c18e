"""Match records (vinom.rooms.record) and their exact replay (vinom.rooms.replay).

Rooms run through the seat router on a Timeline, as in test_rooms_bots: bots
(or a test's sessions) play; the room's recorder writes the record; `Replay`
rebuilds the match from the record's bytes alone and checks every hash. A
game written only with the public API that reads the wall clock or the global
generator is caught at the tick where it first differs.
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import io
import random
import struct
import tracemalloc
import zlib
from collections.abc import Mapping
from typing import Any

import msgpack
from attrs import evolve, field, frozen
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_bots import short
from tests.rooms.test_rooms_fixtures import Timeline
from tests.rooms.test_rooms_games import ViewKeeper, make_router
from tests.support.vectors import vectors
from vinom.games import Game, Outcome, Seat
from vinom.games.arena import ArenaGame
from vinom.games.interfaces import IGame
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.match import Match, Ticket
from vinom.rooms.messages import Phase
from vinom.rooms.record import (
    MatchRecorder,
    record_file_header,
    record_frame,
    record_header,
    state_hash,
)
from vinom.rooms.replay import (
    CHECKPOINT_EVERY,
    RecordError,
    Replay,
    ReplayMismatch,
    read_record,
    read_record_file,
)
from vinom.rooms.room import Room, RoomConfig

REGISTRY = GameRegistry.from_plugins()
BUILT_IN = ("tictactoe", "dice", "owedrahn", "maze", "duel", "arena")


def bot_match(game: IGame, players: int) -> Match:
    return Match(
        match_id="m-1",
        game=game.name,
        players=tuple(
            Ticket(f"bot-{n}", f"BOT {n}", game.name, None, 0.0, bot=True) for n in range(players)
        ),
        formed_at=0.0,
    )


def recorded_room(
    game: IGame, match: Match, seed: int, options: Mapping[str, Any] | None = None,
    hash_every: int = 20, step: float = 0.05, limit: float = 3600.0,
) -> tuple[Room, MatchRecorder, bytes]:
    """Play `match` to its end with a recorder; returns the room, recorder and record."""
    time = Timeline()
    router = make_router(game, ViewKeeper(), time)
    config = RoomConfig(bot_think_time=0.05, options=dict(options or {}))
    recorder = MatchRecorder(
        record_header(
            match_id=match.match_id, game=game.name, game_version=game.version,
            options=config.options,
            seats=[Seat(t.player_id, t.name, i) for i, t in enumerate(match.players)],
            bots=[t.bot for t in match.players], seed=seed,
            tick_rate=float(game.tick_rate or 0), hash_every=hash_every, started=0.0,
            vinom_version="test", spectators=match.spectators,
        ),
        hash_every=hash_every,
    )  # fmt: skip
    room = router.add_match(match, time.now, config, random.Random(seed), recorder)
    data = recorder.take()
    while not room.ended and time.now < limit:
        time.advance(step)
        data += recorder.take()
    if not room.ended:
        room.abort("test_over", time.now)
    data += recorder.take()
    return room, recorder, data


@frozen
class _Point:
    x: int
    tags: frozenset[str]


class _Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class _Cell:
    at: tuple[int, int]
    colour: _Colour


@frozen
class _Board:
    cells: tuple[_Cell, ...]
    turn: int
    cache: object = field(eq=False, default=None)


class StateHashTests(SynchronousTestCase):
    """docs/protocol.md §18's hash: the vectors, and the same in every process."""

    def test_vectors(self) -> None:
        found = vectors("state_hashes")
        self.assertEqual(len(found), 2)
        for name, v in found.items():
            self.assertEqual(state_hash(v["value"]).to_bytes(8, "big").hex(), v["hex"], name)
        # A tuple hashes as the list of the file's JSON does.
        mapping = found["state_hash_mapping"]
        self.assertEqual(mapping["value"], {"b": 1, "a": [1.5, None]})
        self.assertEqual(state_hash({"b": 1, "a": (1.5, None)}), int(mapping["hex"], 16))
        self.assertEqual(state_hash(frozenset({"x", "y"})), 0xCD80FDD0D5960C16)
        # Sets sorted, mappings by key: order of building does not count.
        self.assertEqual(state_hash({"a": (1.5, None), "b": 1}), int(mapping["hex"], 16))
        self.assertEqual(
            state_hash(_Point(1, frozenset({"b", "a"}))),
            state_hash(_Point(1, frozenset({"a", "b"}))),
        )
        self.assertNotEqual(state_hash(_Point(1, frozenset())), state_hash(_Point(2, frozenset())))

    def test_vector_of_a_state_of_classes(self) -> None:
        # attrs (a field out of equality left out), a dataclass, an enum: the form
        # the records of the first version hashed, whatever the walk's speed-ups.
        board = _Board((_Cell((0, 1), _Colour.RED), _Cell((2, 3), _Colour.RED)), 4, cache=[1])
        self.assertEqual(state_hash(board), 0x1F621C7DD89056FE)
        self.assertEqual(state_hash(evolve(board, cache=None)), 0x1F621C7DD89056FE)
        self.assertEqual(state_hash(board), 0x1F621C7DD89056FE)  # the cached plan


class RecordAndReplayTests(SynchronousTestCase):
    def test_every_built_in_game_played_by_bots_replays_to_identical_hashes(self) -> None:
        for name in BUILT_IN:
            with self.subTest(game=name):
                game = short(REGISTRY.get(name))
                options = {"target": 20} if name == "duel" else {}
                room, recorder, data = recorded_room(
                    game, bot_match(game, game.min_players), seed=7, options=options,
                    hash_every=1,
                )
                self.assertIs(room.phase, Phase.FINISHED)
                self.assertTrue(recorder.closed)
                record = read_record(data)
                self.assertTrue(record.complete)
                self.assertEqual(record.game, name)
                replay = Replay(record, game)
                replay.run()
                self.assertTrue(replay.ended)
                self.assertEqual(state_hash(replay.state), state_hash(room.state))
                self.assertEqual(replay.view(None), game.view(room.state, None))
                # A hash before every call (hash_every=1) and one at the end, all checked;
                # a ticking game's (the arena's) after every tick, at play's start and the end.
                calls = sum(1 for e in record.entries if e[0] in (0, 1))
                expected = room.tick_number + 2 if game.tick_rate else calls + 1
                self.assertEqual(replay.hashes_checked, expected)
                end = record.end
                assert end is not None
                self.assertEqual(end[1], "finished")
                self.assertEqual(end[2], room.ending.result)

    def test_a_ticking_game_with_lag_compensation_replays_exactly(self) -> None:
        # The arena (vinom/games/arena.py): 20 ticks a second, inputs, apply_action_at.
        game = ArenaGame(4)
        room, _recorder, data = recorded_room(
            game, bot_match(game, 4), seed=11, limit=30.0, step=0.05
        )
        self.assertIs(room.phase, Phase.ABORTED)
        self.assertGreater(room.tick_number, 500)
        replay = Replay(read_record(data), ArenaGame(4))
        replay.run()
        self.assertEqual(replay.tick, room.tick_number)
        self.assertEqual(state_hash(replay.state), state_hash(room.state))
        # One hash a second (every 20 ticks), the one at play's start and the end.
        self.assertEqual(replay.hashes_checked, room.tick_number // 20 + 2)

    def test_a_seek_back_replays_from_the_start_to_the_same_state(self) -> None:
        game = REGISTRY.get("dice")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=3)
        replay = Replay(read_record(data), game)
        replay.seek(replay.length // 2)
        middle = state_hash(replay.state)
        replay.run()
        replay.seek(replay.length // 2)
        self.assertEqual(state_hash(replay.state), middle)
        self.assertEqual(replay.position, replay.length // 2)

    def test_a_take_with_nothing_new_gives_nothing(self) -> None:
        # A match whose players left (its seats held for them) records nothing new,
        # and the host then writes nothing to its file; the record still reads.
        game = TicTacToeGame()
        match = bot_match(game, 2)
        recorder = MatchRecorder(
            record_header(
                match_id="m-1", game=game.name, game_version=game.version, options={},
                seats=[Seat(t.player_id, t.name, i) for i, t in enumerate(match.players)],
                bots=[False, False], seed=5, tick_rate=0.0, hash_every=20, started=0.0,
                vinom_version="test",
            )
        )  # fmt: skip
        first = recorder.take()
        self.assertGreater(len(first), 0)  # the header
        self.assertEqual(recorder.take(), b"")
        self.assertEqual(recorder.take(), b"")
        seats = [Seat(t.player_id, t.name, i) for i, t in enumerate(match.players)]
        recorder.end("aborted", None, game.create(seats, {}, random.Random(5)), 0, 0)
        last = recorder.take()
        self.assertGreater(len(last), 0)
        self.assertEqual(recorder.take(), b"")
        self.assertTrue(read_record(first + last).complete)

    def test_a_record_cut_off_replays_up_to_its_last_flush(self) -> None:
        time = Timeline()
        recorder, room = recorded_arena_match(time)
        flushed = b""
        for _ in range(10):  # ten flushes a second apart, then the host "dies"
            time.pump([0.05] * 20)
            flushed += recorder.take()
        time.pump([0.05] * 10)  # played, never flushed
        record = read_record(flushed + recorder.take()[:7])  # and a torn last write
        self.assertFalse(record.complete)
        replay = Replay(record, ArenaGame(2))
        replay.run()
        self.assertEqual(replay.tick, 200)
        self.assertFalse(replay.ended)
        self.assertGreater(room.tick_number, 200)


    def test_a_record_stops_at_what_a_reader_inflates_and_still_replays(self) -> None:
        # A reader inflates at most MAX_RECORD_RAW_BYTES of a record (a compression
        # bomb's bound); the recorder stops there, so a long match's record still
        # reads (up to there) instead of being refused whole. A small limit here.
        from vinom.rooms import record as record_module

        self.patch(record_module, "MAX_RECORD_RAW_BYTES", 3000)
        time = Timeline()
        recorder, room = recorded_arena_match(time)
        data = b""
        for _ in range(20):
            time.pump([0.05] * 20)
            data += recorder.take()
        raw = zlib.decompress(data, 31)  # the whole gzip stream: ended properly
        self.assertLessEqual(len(raw), 3000)
        self.assertGreater(len(raw), 1000)
        record = read_record(data)
        self.assertFalse(record.complete)
        replay = Replay(record, ArenaGame(2))
        replay.run()
        self.assertGreater(replay.tick, 0)
        self.assertLess(replay.tick, room.tick_number)
        self.assertEqual(recorder.take(), b"")


@frozen
class DriftState:
    players: tuple[str, ...]
    ticks: int = 0
    value: float = 0.0
    left: tuple[bool, ...] = (False,)
    finished: bool = False
    reason: str = ""
    winners: tuple[str, ...] = ()
    scores: tuple[int, ...] = (0,)


class DriftGame(Game[DriftState]):
    """A real-time game that breaks determinism from tick `from_tick`: its tick reads
    the process-wide generator (as reading the clock or a file would)."""

    name = "drift"
    description = "test: not deterministic"
    min_players = max_players = match_size = 1
    tick_rate = 20.0
    time_limit = 10.0
    countdown = 0.0

    def __init__(self, from_tick: int) -> None:
        self.from_tick = from_tick

    def create(self, seats: Any, options: Any, rng: random.Random) -> DriftState:
        return DriftState(players=tuple(s.player_id for s in seats), value=rng.random())

    def tick(self, state: DriftState, dt: float, rng: random.Random) -> Outcome:
        ticks = state.ticks + 1
        noise = random.random() if ticks >= self.from_tick else rng.random()
        return Outcome(evolve(state, ticks=ticks, value=state.value + noise))

    def view(self, state: DriftState, player_id: str | None) -> Mapping[str, Any]:
        return {"ticks": state.ticks}

    def make_bot(self, player_id: str, rng: random.Random) -> Any:
        return _Idle()


class HugeGame(DriftGame):
    """A deterministic real-time game whose state holds an integer past 64 bits from
    tick `from_tick` on."""

    name = "huge"
    description = "test: a state no MessagePack encoder takes"

    def tick(self, state: DriftState, dt: float, rng: random.Random) -> Outcome:
        ticks = state.ticks + 1
        value = 2**70 if ticks >= self.from_tick else state.value + rng.random()
        return Outcome(evolve(state, ticks=ticks, value=value))


class _Idle:
    def choose_action(self, view: Mapping[str, Any]) -> None:
        return None


class TurnBasedHashTests(SynchronousTestCase):
    def test_a_game_without_a_tick_is_hashed_every_n_calls_and_at_the_end(self) -> None:
        game = REGISTRY.get("maze")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=2, hash_every=5)
        record = read_record(data)
        calls = sum(1 for e in record.entries if e[0] in (0, 1))
        hashes = sum(1 for e in record.entries if e[0] == 4)
        self.assertEqual(hashes, calls // 5)
        replay = Replay(record, game)
        replay.run()
        self.assertEqual(replay.hashes_checked, hashes + 1)


class NonDeterminismTests(SynchronousTestCase):
    def test_a_game_reading_global_randomness_is_caught_at_the_tick_it_differs(self) -> None:
        game = DriftGame(from_tick=37)
        room, _recorder, data = recorded_room(game, bot_match(game, 1), seed=1, hash_every=1)
        self.assertIs(room.phase, Phase.FINISHED)
        replay = Replay(read_record(data), DriftGame(from_tick=37))
        with self.assertRaises(ReplayMismatch) as caught:
            replay.run()
        self.assertEqual(caught.exception.tick, 37)
        self.assertIn("at tick 37", str(caught.exception))
        # The replay stops there: the states up to tick 36 were the recorded ones.
        self.assertEqual(replay.tick, 37)
        self.assertEqual(replay.state.ticks, 37)

    def test_with_a_hash_every_20_ticks_it_is_caught_at_the_next_hash(self) -> None:
        game = DriftGame(from_tick=37)
        _room, _recorder, data = recorded_room(game, bot_match(game, 1), seed=1, hash_every=20)
        with self.assertRaises(ReplayMismatch) as caught:
            Replay(read_record(data), DriftGame(from_tick=37)).run()
        self.assertEqual(caught.exception.tick, 40)

    def test_a_deterministic_run_of_the_same_game_replays(self) -> None:
        game = DriftGame(from_tick=10**9)
        _room, _recorder, data = recorded_room(game, bot_match(game, 1), seed=1, hash_every=1)
        replay = Replay(read_record(data), DriftGame(from_tick=10**9))
        replay.run()
        self.assertTrue(replay.ended)


class InterleavedRecordsTests(SynchronousTestCase):
    """A host's recorders compress with one deflate stream of the process; each
    record is still a gzip stream of its own, whatever was taken between its takes."""

    def test_records_taken_in_turns_are_each_a_whole_gzip_stream(self) -> None:
        game = TicTacToeGame()
        seats = [Seat("a", "A", 0), Seat("b", "B", 1)]
        state = game.create(seats, {}, random.Random(1))
        recorders = [
            MatchRecorder(record_header(
                match_id=f"m-{n}", game=game.name, game_version=game.version, options={},
                seats=seats, bots=[False, False], seed=n, tick_rate=0.0, hash_every=20,
                started=0.0, vinom_version="test",
            ))
            for n in range(3)
        ]  # fmt: skip
        data = [b"", b"", b""]
        cut = [b"", b"", b""]  # what a host that died after the second round had written
        for round_ in range(4):
            for n, recorder in enumerate(recorders):
                for move in range(5 + n):
                    recorder.act(seats[move % 2], {"cell": move, "round": round_}, state, 0, 0)
                data[n] += recorder.take()
            if round_ == 1:
                cut = list(data)
        for n, recorder in enumerate(recorders):
            recorder.end("aborted", None, state, 0, 0)
            data[n] += recorder.take()
        for n in range(3):
            record = read_record(data[n])
            self.assertTrue(record.complete)
            self.assertEqual(record.header["match_id"], f"m-{n}")
            moves = [e for e in record.entries if e[0] == 1]
            self.assertEqual(len(moves), 4 * (5 + n))
            self.assertEqual(moves[-1], (1, (4 + n) % 2, {"cell": 4 + n, "round": 3}))
            # Any gzip reader takes it whole: the header, the blocks, the CRC and length.
            unpacked = list(msgpack.Unpacker(io.BytesIO(gzip.decompress(data[n]))))
            self.assertEqual(len(unpacked), 1 + len(record.entries))
            # Cut off after a take, it reads up to there.
            partial = read_record(cut[n])
            self.assertFalse(partial.complete)
            self.assertEqual(len([e for e in partial.entries if e[0] == 1]), 2 * (5 + n))

    def test_short_records_ended_at_their_first_take_in_turns_are_whole(self) -> None:
        # Matches whose players connect and leave before the host's first flush:
        # each record is written whole at once, between the others'.
        game = TicTacToeGame()
        seats = [Seat("a", "A", 0), Seat("b", "B", 1)]
        state = game.create(seats, {}, random.Random(1))
        records = []
        for n in range(4):
            recorder = MatchRecorder(record_header(
                match_id=f"m-{n}", game=game.name, game_version=game.version, options={},
                seats=seats, bots=[False, False], seed=n, tick_rate=0.0, hash_every=20,
                started=0.0, vinom_version="test",
            ))  # fmt: skip
            recorder.hook("join", seats[0], state, 0, 0)
            recorder.act(seats[0], {"cell": n}, state, 0, 0)
            recorder.end("aborted", None, state, 0, 1)
            records.append(recorder.take())
            self.assertTrue(recorder.closed)
        for n, data in enumerate(records):
            record = read_record(data)
            self.assertTrue(record.complete)
            # docs/protocol.md, "Match records": the gzip header, the empty final
            # block, and the trailer of the MessagePack bytes' CRC-32 and length.
            raw = gzip.decompress(data)
            self.assertEqual(data[:10].hex(" "), "1f 8b 08 00 00 00 00 00 04 03")
            trailer = struct.pack("<II", zlib.crc32(raw), len(raw))
            self.assertEqual(data[-10:], b"\x03\x00" + trailer)
            # A short record is one stored block (docs/protocol.md): not the last
            # (00), its length and the length's complement (little-endian), the bytes.
            self.assertLess(len(raw), 512)
            self.assertEqual(data[10:15], struct.pack("<BHH", 0, len(raw), len(raw) ^ 0xFFFF))
            self.assertEqual(data[15:-10], raw)
            self.assertEqual(record.entries[1], (1, 0, {"cell": n}))
            self.assertEqual(len(list(msgpack.Unpacker(io.BytesIO(gzip.decompress(data))))),
                             1 + len(record.entries))  # fmt: skip


class DamagedRecordTests(SynchronousTestCase):
    def record(self) -> bytes:
        game = REGISTRY.get("tictactoe")
        return recorded_room(game, bot_match(game, 2), seed=2)[2]

    def test_not_a_record(self) -> None:
        for data, says in (
            (b"hello world", "not a match record (not gzip data)"),
            (b"", "not a match record (no header)"),
            (zlib.compress(b"x", wbits=31), "not a match record (no header)"),
        ):
            with self.subTest(data=data[:5]):
                with self.assertRaises(RecordError) as caught:
                    read_record(data)
                self.assertEqual(str(caught.exception), says)

    def test_a_record_file_cut_inside_a_frame_reads_up_to_the_frame_before(self) -> None:
        record = self.record()
        head = record_file_header(pid=1, started=0.0)
        data = head + record_frame("m-1", record[:60]) + record_frame("m-2", b"x")
        cut = data + record_frame("m-1", record[60:])[:-3]  # the host died writing it
        read = read_record_file(cut)
        self.assertFalse(read.whole)
        self.assertEqual(dict(read.records), {"m-1": record[:60], "m-2": b"x"})
        whole = read_record_file(data + record_frame("m-1", record[60:]))
        self.assertTrue(whole.whole)
        self.assertTrue(read_record(whole.records["m-1"]).complete)
        # A version 1 file is a file of its one match.
        self.assertEqual(dict(read_record_file(record).records), {"m-1": record})

    def test_a_file_of_tiny_frames_reads_in_a_small_multiple_of_its_size(self) -> None:
        """A host that flushes a quiet match each second writes pieces of a few bytes;
        reading such a file kept each piece's objects (about 200 bytes each), 12 times
        the file's size for pieces of one byte."""
        head = record_file_header(pid=1, started=0.0)
        data = head + b"".join(record_frame(f"m-{n % 3}", b"x") for n in range(20_000))
        tracemalloc.start()
        try:
            read = read_record_file(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual({m: len(b) for m, b in read.records.items()},
                         {"m-0": 6667, "m-1": 6667, "m-2": 6666})  # fmt: skip
        self.assertLess(peak, 3 * len(data))

    def test_a_record_file_that_is_not_one_or_is_damaged_is_one_clear_error(self) -> None:
        head = record_file_header(pid=1, started=0.0)
        later = msgpack.packb({"format": "vinom-records", "v": 3, "pid": 1, "started": 0.0})
        for data, says in (
            (b"hello world", "not a match record (neither a record file nor gzip data)"),
            (b"", "not a match record (neither a record file nor gzip data)"),
            (msgpack.packb({"format": "x"}), "its header names no vinom-records format"),
            (later, "a match record file of version 3; this vinom reads versions 1 and 2"),
            (head + msgpack.packb([1, 2]), "the record file is damaged (frame 1 is not a frame)"),
            (head + b"\xc1", "the record file is damaged after 0 frames"),
        ):
            with self.subTest(data=data[:5]):
                with self.assertRaises(RecordError) as caught:
                    read_record_file(data)
                self.assertIn(says, str(caught.exception))

    def test_damage_inside_the_stream_is_one_clear_error(self) -> None:
        data = bytearray(self.record())
        data[len(data) // 2] ^= 0xFF
        with self.assertRaises(RecordError) as caught:
            Replay(read_record(bytes(data)), REGISTRY.get("tictactoe")).run()
        self.assertIn("damaged", str(caught.exception))

    def test_an_entry_that_cannot_be_encoded_ends_the_record_at_the_last_take(self) -> None:
        game = REGISTRY.get("tictactoe")
        seats = [Seat("a", "A", 0), Seat("b", "B", 1)]
        state = game.create(seats, {}, random.Random(1))
        recorder = MatchRecorder(record_header(
            match_id="m", game=game.name, game_version=game.version, options={}, seats=seats,
            bots=[False, False], seed=1, tick_rate=0.0, hash_every=20, started=0.0,
            vinom_version="test",
        ))  # fmt: skip
        recorder.act(seats[0], {"cell": 4}, state, 0, 0)
        data = recorder.take()
        recorder.act(seats[1], {"cell": 0}, state, 0, 1)
        recorder.act(seats[0], {"cell": object()}, state, 0, 2)  # no encoder takes it
        recorder.act(seats[1], {"cell": 8}, state, 0, 3)
        self.assertTrue(recorder.broken)
        data += recorder.take()
        self.assertTrue(recorder.closed)
        record = read_record(data)
        self.assertFalse(record.complete)  # no end: it replays up to its last take
        self.assertEqual(record.entries, ((1, 0, {"cell": 4}),))

    def test_a_record_broken_before_its_first_take_keeps_its_header(self) -> None:
        game = REGISTRY.get("tictactoe")
        seats = [Seat("a", "A", 0), Seat("b", "B", 1)]
        recorder = MatchRecorder(record_header(
            match_id="m", game=game.name, game_version=game.version, options={}, seats=seats,
            bots=[False, False], seed=1, tick_rate=0.0, hash_every=20, started=0.0,
            vinom_version="test",
        ))  # fmt: skip
        recorder.act(seats[0], {"cell": object()}, None, 0, 0)
        record = read_record(recorder.take())
        self.assertEqual((record.header["match_id"], record.entries), ("m", ()))

    def test_a_state_that_cannot_be_hashed_ends_the_record_not_the_match(self) -> None:
        # A Python int past 64 bits is a fine game state but no MessagePack integer:
        # the record stops before it, and the match plays on to its end.
        game = HugeGame(from_tick=30)
        room, recorder, data = recorded_room(game, bot_match(game, 1), seed=1, hash_every=1)
        self.assertIs(room.phase, Phase.FINISHED)
        self.assertTrue(recorder.broken)
        self.assertTrue(recorder.closed)
        record = read_record(data)
        self.assertFalse(record.complete)
        self.assertEqual(max(e[1] for e in record.entries if e[0] == 2), 30)
        replay = Replay(record, HugeGame(from_tick=30))
        replay.run()
        self.assertEqual(replay.tick, 30)  # its last tick entry, whose hash it could not take

    def test_a_truncated_record_reads_as_incomplete(self) -> None:
        data = self.record()
        record = read_record(data[: len(data) - 12])
        self.assertFalse(record.complete)
        self.assertTrue(read_record(data).complete)


class SeekTests(SynchronousTestCase):
    def test_seeking_back_past_checkpoints_gives_the_states_of_a_replay_from_the_start(
        self,
    ) -> None:
        game = ArenaGame(4)
        _room, _recorder, data = recorded_room(
            game, bot_match(game, 4), seed=13, limit=60.0, step=0.05
        )
        record = read_record(data)
        self.assertGreater(len(record.entries), 3 * CHECKPOINT_EVERY)
        fresh = Replay(record, ArenaGame(4))
        targets = (len(record.entries) - 5, CHECKPOINT_EVERY + 17, 2 * CHECKPOINT_EVERY, 3)
        expected = {}
        for target in sorted(targets):
            fresh.seek(target)
            expected[target] = (state_hash(fresh.state), fresh.tick)
        seeking = Replay(record, ArenaGame(4))
        seeking.run()
        for target in targets:  # backwards, from checkpoints
            seeking.seek(target)
            self.assertEqual((state_hash(seeking.state), seeking.tick), expected[target])
        seeking.run()  # and on to the end again, every hash checked
        self.assertTrue(seeking.ended)


def recorded_arena_match(time: Timeline) -> tuple[MatchRecorder, Any]:
    """A two-bot arena match recorded from its start (seed 5, a hash every 20 ticks),
    in a room on `time`: its recorder and its room."""
    game = ArenaGame(2)
    match = bot_match(game, 2)
    recorder = MatchRecorder(
        record_header(
            match_id="m-1", game="arena", game_version="1", options={},
            seats=[Seat(t.player_id, t.name, i) for i, t in enumerate(match.players)],
            bots=[True, True], seed=5, tick_rate=20.0, hash_every=20, started=0.0,
            vinom_version="test",
        )
    )  # fmt: skip
    router = make_router(game, ViewKeeper(), time)
    room = router.add_match(match, 0.0, RoomConfig(bot_think_time=0.05), random.Random(5),
                            recorder)  # fmt: skip
    return recorder, room
