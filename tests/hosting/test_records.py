"""The game host's record files (vinom.hosting.records) and the core handing out
records (vinom.hosting.core): appended per match, pruned by age and size."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.server.test_tap import parse
from tests.support.ports import free_udp_port
from tests.support.vectors import unhex, vectors
from vinom.games.interfaces import Seat
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.hosting.core import GameHostCore
from vinom.hosting.inline import InlineGameHost, InlineGameHostFactory
from vinom.hosting.records import RecordFiles, RecordIndex, RecordSettings, records_file_name
from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig, ProtocolConfig
from vinom.rooms.record import MatchRecorder, record_file_header, record_frame, record_header
from vinom.rooms.replay import read_record, read_record_file


def record_of(directory: str, match_id: str) -> bytes | None:
    """The record of `match_id` in `directory`'s record files, as a reader finds it."""
    return RecordIndex(directory).find(match_id)


class RecordFilesTests(SynchronousTestCase):
    def files(self, clock: Clock | None = None, **kwargs: float) -> RecordFiles:
        directory = os.path.join(os.path.abspath(self.mktemp()), "records")
        files = RecordFiles(RecordSettings(directory=directory, **kwargs),  # type: ignore[arg-type]
                            clock=(clock or Clock()).seconds, pid=4242)  # fmt: skip
        self.addCleanup(files.close)
        return files

    def test_matches_are_appended_as_frames_to_one_open_file_of_the_process(self) -> None:
        files = self.files()
        files.write("m-1", 0.0, b"abc", closed=False)
        files.write("m/2", 86400.0, b"x", closed=True)
        files.write("m-1", 0.0, b"def", closed=True)
        names = sorted(os.listdir(files.directory))
        # One file, named by its start (UTC), the process and its number in the process.
        self.assertEqual(names, ["19700101T000000Z-4242-1.vrec"])
        self.assertEqual(records_file_name(4242, 1, 0.0), names[0])
        data = (files.directory / names[0]).read_bytes()
        # The header map, then [match id, bytes] frames (docs/protocol.md, "Match records"):
        # the file's header and first frame are vectors/protocol.json's.
        found = vectors("records")
        header, first = found["file_header"], found["frame"]
        self.assertEqual((header["value"]["pid"], header["value"]["started"]), (4242, 0.0))
        self.assertEqual((first["match_id"], first["piece"]), ("m-1", b"abc".hex()))
        later = bytes.fromhex("92 a3 6d2f32 c4 01 78" "92 a3 6d2d31 c4 03 646566")
        self.assertEqual(data, unhex(header["hex"]) + unhex(first["hex"]) + later)
        self.assertEqual(files.bytes_written, len(data))
        read = read_record_file(data)
        self.assertEqual(dict(read.records), {"m-1": b"abcdef", "m/2": b"x"})
        self.assertTrue(read.whole)
        self.assertEqual(record_of(str(files.directory), "m-1"), b"abcdef")

    def test_a_full_or_old_file_gives_way_to_the_next_but_stays_open_for_its_matches(
        self,
    ) -> None:
        clock = Clock()
        files = self.files(clock, file_bytes=60, file_age=100.0)
        files.write("long", 0.0, b"a" * 40, closed=False)  # the file is full now
        files.write("m-1", 0.0, b"b", closed=True)  # ... so the next file takes it
        files.write("long", 0.0, b"c", closed=False)  # still the first file's
        clock.advance(100.0)
        files.write("m-2", 0.0, b"d", closed=True)  # the second is old: a third
        names = sorted(os.listdir(files.directory))
        self.assertEqual([n.split("-", 1)[1] for n in names],
                         ["4242-1.vrec", "4242-2.vrec", "4242-3.vrec"])  # fmt: skip
        self.assertEqual(files.path_of("long"), files.directory / names[0])
        self.assertEqual(files.open_paths(), {str(files.directory / names[0]),
                                              str(files.directory / names[2])})  # fmt: skip
        files.write("long", 0.0, b"e", closed=True)
        self.assertEqual(files.open_paths(), {str(files.directory / names[2])})
        self.assertEqual(record_of(str(files.directory), "long"), b"a" * 40 + b"ce")

    def test_prune_deletes_old_files_then_the_oldest_beyond_the_size_never_an_open_one(
        self,
    ) -> None:
        # Each file is full at its first frame here: a file per match, of `size` bytes.
        size = len(record_file_header(pid=4242, started=0.0)) + len(record_frame("m-0", b"x" * 10))
        files = self.files(max_age=100.0, max_bytes=3 * size + 11, file_bytes=1)
        now = time.time()
        files.write("live", 0.0, b"y" * 10, closed=False)  # still recording: kept
        paths = {"live": files.path_of("live")}
        for n in range(4):
            files.write(f"m-{n}", 0.0, b"x" * 10, closed=False)
            paths[f"m-{n}"] = files.path_of(f"m-{n}")
            files.write(f"m-{n}", 0.0, b"", closed=True)
        for name, age in (("live", 1000.0), ("m-0", 500.0), ("m-1", 50.0), ("m-2", 40.0),
                          ("m-3", 30.0)):  # fmt: skip
            os.utime(paths[name], (now - age, now - age))  # type: ignore[arg-type]
        old = files.directory / "20200101T000000Z-m-9.vrec.gz"  # a version 1 file
        old.write_bytes(b"z" * 10)
        os.utime(old, (now - 20.0, now - 20.0))
        (files.directory / "notes.txt").write_text("not a record")
        # m-0 is too old; then the oldest beyond the size: m-1 (not the live one).
        with capturedLogs() as logged:
            self.assertEqual(files.prune(now), 2)
        # One line says so, with what was kept; a prune that removes nothing says nothing.
        kept_bytes = sum(p.stat().st_size for p in Path(files.directory).iterdir()
                         if p.name != "notes.txt")  # fmt: skip
        self.assertEqual([formatEvent(e) for e in logged], [
            f"pruned 2 match record files ({2 * size} bytes) from {files.directory}: older "
            f"than {100 / 86400:g} days or beyond {(3 * size + 11) / 1048576:g} MB; 4 files "
            f"({kept_bytes} bytes) kept"])  # fmt: skip
        with capturedLogs() as logged:
            self.assertEqual(files.prune(now), 0)
        self.assertEqual(logged, [])
        left = sorted(p.name for p in Path(files.directory).iterdir())
        kept = [paths[n].name for n in ("live", "m-2", "m-3")]  # type: ignore[union-attr]
        self.assertEqual(left, sorted([*kept, old.name, "notes.txt"]))

    def test_a_write_that_fails_is_counted_and_the_match_goes_on(self) -> None:
        blocker = os.path.abspath(self.mktemp())
        Path(blocker).write_text("a file where the directory should be")
        files = RecordFiles(RecordSettings(directory=os.path.join(blocker, "records")))
        files.write("m-1", 0.0, b"abc", closed=True)
        self.assertEqual(files.write_errors, 1)

    def test_the_index_reads_a_growing_file_once_and_a_frame_cut_short_later(self) -> None:
        files = self.files()
        directory = str(files.directory)
        index = RecordIndex(directory)
        files.write("m-1", 0.0, b"abc", closed=False)
        self.assertEqual(index.find("m-1"), b"abc")
        path = files.path_of("m-1")
        assert path is not None
        with open(path, "ab") as f:  # a frame being written: its first bytes only
            f.write(bytes.fromhex("92 a3 6d2d32 c4 05 6869"))
        self.assertIsNone(index.find("m-2"))
        with open(path, "ab") as f:
            f.write(b"jkl")
        self.assertEqual(index.take("m-2"), b"hijkl")
        self.assertIsNone(index.take("m-2"))  # taken: forgotten
        files.write("m-1", 0.0, b"def", closed=True)
        self.assertEqual(index.find("m-1"), b"abcdef")
        # A match still writing to an older file, after newer ones began, is found
        # there, with what it gains.
        rotating = RecordFiles(RecordSettings(directory=directory, file_bytes=1), pid=7)
        self.addCleanup(rotating.close)
        rotating.write("long", 0.0, b"12", closed=False)
        rotating.write("m-4", 0.0, b"4", closed=True)  # a file of its own: the first is full
        self.assertEqual((index.find("long"), index.find("m-4")), (b"12", b"4"))
        rotating.write("long", 0.0, b"34", closed=True)
        self.assertEqual(index.find("long"), b"1234")
        # One made after a file was written finds only what is written after it.
        later = RecordIndex(directory, skip_existing=True)
        files.write("m-3", 0.0, b"ghi", closed=True)
        self.assertEqual((later.find("m-1"), later.find("m-3")), (None, b"ghi"))


    def test_a_match_in_no_file_opens_only_the_files_that_grew(self) -> None:
        # /replays/<any id> is a miss for an id in no file: it must not cost one
        # open and read of every record file in the directory per request.
        import builtins

        files = self.files(file_bytes=1)  # a file per match
        directory = str(files.directory)
        for n in range(20):
            files.write(f"m-{n}", 0.0, b"abc", closed=True)
        index = RecordIndex(directory)
        self.assertIsNone(index.find("nobody"))  # the first reads them all, once
        opened: list[str] = []
        real_open = builtins.open

        def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path).startswith(directory):
                opened.append(os.path.basename(path))
            return real_open(path, *args, **kwargs)

        self.patch(builtins, "open", counting_open)
        for n in range(5):
            self.assertIsNone(index.find(f"nobody-{n}"))
        self.assertEqual(opened, [])
        files.write("m-20", 0.0, b"def", closed=True)  # a new file: read once
        self.assertIsNone(index.find("nobody-else"))
        self.assertEqual(len(opened), 1)
        self.assertEqual(index.find("m-20"), b"def")
        self.assertEqual(index.find("m-3"), b"abc")


    def test_a_match_in_a_newer_file_is_found_after_an_older_file_was_pruned(self) -> None:
        # Forgetting a pruned file's matches must not lose track of the match asked
        # for: it is found in whichever file holds it.
        files = self.files(file_bytes=1)  # a file per match
        directory = str(files.directory)
        files.write("m-1", 0.0, b"abc", closed=True)
        files.write("m-2", 0.0, b"def", closed=True)
        index = RecordIndex(directory)
        self.assertIsNone(index.find("nobody"))  # both files read
        files.write("m-3", 0.0, b"ghi", closed=True)
        self.assertEqual(index.find("m-3"), b"ghi")  # a third file, read since
        os.unlink(min(str(p) for p in Path(directory).glob("*.vrec")))  # m-1's: pruned
        files.write("m-4", 0.0, b"jkl", closed=True)  # in a fourth file
        self.assertEqual(index.find("m-4"), b"jkl")
        self.assertEqual(index.find("m-2"), b"def")
        self.assertIsNone(index.find("m-1"))

    def test_the_index_refuses_a_record_file_of_another_version(self) -> None:
        # docs/protocol.md: a reader refuses another `format` or `v` (a later vinom's
        # files in a shared directory may hold frames of another layout).
        import msgpack

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        later = msgpack.packb({"format": "vinom-records", "v": 3, "pid": 1, "started": 0.0})
        Path(directory, "20300101T000000Z-1-1.vrec").write_bytes(
            later + record_frame("m-1", b"abc")
        )
        self.assertIsNone(RecordIndex(directory).find("m-1"))


    def test_a_version_1_file_is_found_by_its_whole_match_id(self) -> None:
        # /replays/m-1 is not match om-1's record (its file name ends the same).
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        Path(directory, "20200101T000000Z-om-1.vrec.gz").write_bytes(b"om-1's")
        index = RecordIndex(directory)
        self.assertIsNone(index.find("m-1"))
        self.assertEqual(index.find("om-1"), b"om-1's")


    def test_version_1_files_of_ids_alike_but_for_unsafe_characters_are_told_apart(self) -> None:
        # m/1 and m_1 both have the file name <stamp>-m_1.vrec.gz: the header says whose.
        def record_of(match_id: str) -> bytes:
            recorder = MatchRecorder(record_header(
                match_id=match_id, game="tictactoe", game_version="1", options={},
                seats=[Seat("p1", "P1", 0), Seat("p2", "P2", 1)], bots=[False, False],
                seed=1, tick_rate=0.0, hash_every=20, started=0.0, vinom_version="test",
            ))  # fmt: skip
            recorder.end("aborted", None, None, 0, 0)
            return recorder.take()

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        Path(directory, "20200101T000000Z-m_1.vrec.gz").write_bytes(record_of("m/1"))
        Path(directory, "20200102T000000Z-m_1.vrec.gz").write_bytes(record_of("m_1"))
        index = RecordIndex(directory)
        for match_id in ("m/1", "m_1"):
            found = index.find(match_id)
            assert found is not None
            self.assertEqual(read_record(found).header["match_id"], match_id)
        self.assertIsNone(index.find("m:1"))  # the same file name, neither header


class RecordOptionsTests(SynchronousTestCase):
    def test_recording_is_on_by_default_into_the_data_directory(self) -> None:
        options = parse("--data-dir", "/srv/vinom")
        self.assertEqual(
            options["recording"],
            RecordSettings(directory="/srv/vinom/records", enabled=True, hash_every=20,
                           flush_interval=1.0, max_age=7 * 86400.0,
                           max_bytes=1024 * 1024 * 1024, file_bytes=64 * 1024 * 1024,
                           file_age=3600.0),
        )  # fmt: skip
        chosen = parse("--limit", "record-keep-days=2", "--limit", "record-max-mb=8")
        self.assertEqual((chosen["recording"].max_age, chosen["recording"].max_bytes),
                         (2 * 86400.0, 8 * 1024 * 1024))  # fmt: skip

    def test_a_worker_gets_the_settings_whole(self) -> None:
        # A game-host worker process is configured by JSON (vinom.hosting.workers).
        settings = parse("--limit", "record-max-mb=8", "--limit", "record-keep-days=2",
                         "--no-record-game", "tictactoe")["recording"]  # fmt: skip
        self.assertEqual(RecordSettings.from_json(settings.to_json()), settings)

    def test_switched_off_per_server_and_per_game(self) -> None:
        self.assertFalse(parse("--no-record")["recording"].enabled)
        settings = parse("--no-record-game", "maze", "--record-dir", "/r")["recording"]
        self.assertEqual((settings.directory, settings.games_off), ("/r", frozenset({"maze"})))
        self.assertFalse(settings.records("maze"))
        self.assertTrue(settings.records("tictactoe"))

    def test_a_record_dir_that_is_a_file_is_one_clear_line(self) -> None:
        path = os.path.abspath(self.mktemp())
        Path(path).write_text("not a directory")
        e = self.assertRaises(usage.UsageError, parse, "--record-dir", path)
        self.assertEqual(
            str(e), f"--record-dir {path!r} is a file, not a directory; name a directory "
            "with --record-dir (or record nothing with --no-record)",
        )
        self.assertFalse(parse("--record-dir", path, "--no-record")["recording"].enabled)

    def test_bad_values_are_one_clear_line(self) -> None:
        for args, says in (
            (("--no-record-game", "chess"), "--no-record-game 'chess' is not a game this server"),
            (("--limit", "record-keep-days=0"), "--limit record-keep-days"),
            (("--limit", "record-hash-every=x"),
             "--limit record-hash-every must be a whole number"),
        ):
            with self.subTest(args=args):
                e = self.assertRaises(usage.UsageError, parse, *args)
                self.assertIn(says, str(e))


class _Unrecorded(TicTacToeGame):
    name = "unrecorded"
    record_matches = False


class CoreRecordingTests(SynchronousTestCase):
    """The game host core writes a record for each match it is to record."""

    def core(self, **settings: Any) -> GameHostCore:
        return GameHostCore(
            HostConfig(ProtocolConfig(token_key=os.urandom(32)), (HostAddress("127.0.0.1", 1),)),
            GameRegistry([TicTacToeGame(), _Unrecorded()]).get,
            recording=RecordSettings(directory="unused", **settings),
            wall_clock=lambda: 86400.0,
            random_bytes=lambda n: bytes(range(n)),
        )

    def match(self, game: str, match_id: str) -> Match:
        return Match(match_id, game, (Ticket("p1", "A", game, None, 0.0),
                                      Ticket("p2", "B", game, None, 0.0)), 0.0)  # fmt: skip

    def test_recorded_unless_the_server_or_the_game_says_not(self) -> None:
        core = self.core(games_off=frozenset({"tictactoe"}))
        core.add_match(self.match("tictactoe", "m-off"), 0.0)
        core.add_match(self.match("unrecorded", "m-never"), 0.0)
        self.assertEqual(core.records_to_write(), [])
        core = self.core()
        core.add_match(self.match("tictactoe", "m-1"), 0.0)
        core.add_match(self.match("unrecorded", "m-2"), 0.0)
        core.add_match(self.match("tictactoe", "m-seeded"), 0.0, rng=random.Random(1))
        chunks = core.records_to_write()
        self.assertEqual([(c.match_id, c.started, c.closed) for c in chunks],
                         [("m-1", 86400.0, False)])  # fmt: skip
        header = read_record(chunks[0].data).header
        self.assertEqual(header["seed"], int.from_bytes(bytes(range(8)), "big"))
        self.assertEqual(header["seats"], [["p1", "A", False], ["p2", "B", False]])
        self.assertEqual(core.recording_count, 1)
        core.shutdown("test", 1.0)
        last = core.records_to_write()
        self.assertEqual([(c.match_id, c.closed) for c in last], [("m-1", True)])
        record = read_record(chunks[0].data + last[0].data)
        self.assertTrue(record.complete)
        self.assertEqual(record.end[1:3], ("aborted", None))  # type: ignore[index]
        self.assertEqual(core.recording_count, 0)


class _UDPOnClock:
    """A reactor whose time is a `Clock` and whose UDP ports are the real reactor's
    (sockets on 127.0.0.1): the inline hosts' flush timer runs on the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> IDelayedCall:
        return self.clock.callLater(delay, f, *args, **kwargs)

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return self.clock.getDelayedCalls()

    def listenUDP(self, port: int, protocol: Any, interface: str = "", **kwargs: Any) -> Any:
        return reactor.listenUDP(port, protocol, interface=interface, **kwargs)


class InlineHostFlushTests(TestCase):
    """The inline hosts' records are flushed every flush interval from each host's
    start by one timer of their factory, and none is left once no host is live."""

    def factory(self) -> tuple[str, Clock, InlineGameHostFactory]:
        """A record directory, a Clock and a factory of tictactoe hosts on real UDP
        sockets that record there, flushing every 2 s of the Clock."""
        directory = os.path.abspath(self.mktemp())
        clock = Clock()
        factory = InlineGameHostFactory(
            reactor=_UDPOnClock(clock), find_game=GameRegistry([TicTacToeGame()]).get,
            protocol_config=ProtocolConfig(token_key=os.urandom(32)),
            public_host="127.0.0.1", interface="127.0.0.1",
            recording=RecordSettings(directory=directory, flush_interval=2.0),
        )  # fmt: skip
        return directory, clock, factory

    def start(self, factory: InlineGameHostFactory, match_id: str) -> InlineGameHost:
        """A host of `factory` playing a tictactoe match `match_id`."""
        host = self.successResultOf(factory.start_host(0))
        players = (Ticket("p1", "A", "tictactoe", None, 0.0),
                   Ticket("p2", "B", "tictactoe", None, 0.0))  # fmt: skip
        self.successResultOf(host.add_match(Match(match_id, "tictactoe", players, 0.0)))
        return host

    async def test_each_hosts_records_are_flushed_each_interval_from_its_start(self) -> None:
        directory, clock, factory = self.factory()
        files = factory.record_files
        assert files is not None

        def start(match_id: str) -> InlineGameHost:
            return self.start(factory, match_id)

        def written(match_id: str) -> bool:
            path = files.path_of(match_id)
            return path is not None and path.exists()

        first = start("m-0")
        clock.advance(0.5)
        second = start("m-1")
        clock.advance(1.4)  # 1.9 s: within a tenth of an interval of the first's flush
        self.assertEqual((written("m-0"), written("m-1")), (False, False))
        clock.advance(0.1)  # 2.0 s: the first's flush, not the second's yet
        self.assertEqual((written("m-0"), written("m-1")), (True, False))
        record = read_record(record_of(directory, "m-0"))  # type: ignore[arg-type]
        self.assertEqual((record.header["match_id"], record.complete), ("m-0", False))
        clock.advance(0.5)  # 2.5 s: the second's
        self.assertTrue(written("m-1"))
        # A match that ends before its host's first flush is written once, whole, as
        # it ends: the other hosts' flushes meanwhile leave it be.
        clock.advance(0.1)
        third = start("m-2")
        clock.advance(1.4)  # 4.0 s: the first's second flush
        self.assertEqual(written("m-2"), False)
        clock.advance(0.1)
        await third.stop()
        self.assertIsNone(files.path_of("m-2"))  # closed, its last bytes written
        await first.stop()
        await second.stop()
        # No host is live: no timer is left behind.
        self.assertEqual(clock.getDelayedCalls(), [])
        # One file holds the three (closed: no host is live).
        names = sorted(os.listdir(directory))
        self.assertEqual(len(names), 1)
        self.assertEqual(files.open_paths(), set())
        records = read_record_file(Path(directory, names[0]).read_bytes()).records
        self.assertEqual(list(records), ["m-0", "m-1", "m-2"])
        for data in records.values():
            self.assertTrue(read_record(data).complete)

    async def test_a_host_started_after_an_early_batch_is_not_flushed_late(self) -> None:
        # The factory's one timer waits for the first entry due; a host that starts
        # while it waits for a later one (a host flushed early in a batch) is still
        # flushed by its own time: early rather than late (docs/operations.md).
        _directory, clock, factory = self.factory()
        files = factory.record_files
        assert files is not None

        def start(match_id: str) -> InlineGameHost:
            host = self.start(factory, match_id)
            self.addCleanup(host.stop)
            return host

        def written(match_id: str) -> bool:
            path = files.path_of(match_id)
            return path is not None and path.exists()

        # (Times that binary fractions add up to exactly.)
        first = start("m-0")
        clock.advance(0.125)
        second = start("m-1")  # due at 2.125: flushed with the first at 2, next at 4.125
        clock.advance(1.875)
        self.assertEqual((written("m-0"), written("m-1")), (True, True))
        clock.advance(1.0)
        await first.stop()  # 3 s
        clock.advance(1.0)  # 4 s: the second's (due 4.125) goes early, next at 6.125
        clock.advance(0.0625)
        third = start("m-2")  # 4.0625 s: due at 6.0625
        clock.advance(1.9375)
        self.assertFalse(written("m-2"))
        clock.advance(0.0625)  # 6.0625 s
        self.assertTrue(written("m-2"))
        await second.stop()
        await third.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_a_reused_hosts_next_match_is_flushed_from_its_start(self) -> None:
        # A host parked between two matches (vinom.hosting.inline, "Reuse") has no
        # flush of its own while parked, and its next match is flushed every
        # interval from that match's start, as a new host's would be.
        _directory, clock, factory = self.factory()
        files = factory.record_files
        assert files is not None
        port = free_udp_port()
        players = (Ticket("p1", "A", "tictactoe", None, 0.0),
                   Ticket("p2", "B", "tictactoe", None, 0.0))  # fmt: skip
        host = self.successResultOf(factory.start_host(port))
        self.addCleanup(factory.stop_parked)
        self.addCleanup(host.stop)
        self.successResultOf(host.add_match(Match("m-0", "tictactoe", players, 0.0)))
        clock.advance(30.5)  # nobody came: aborted at the connect deadline,
        clock.advance(3.0)  # and gone once its room has lingered
        self.successResultOf(host.when_idle())
        self.assertTrue(factory.park(host))
        clock.advance(30.0)
        self.assertEqual(clock.getDelayedCalls(), [], "a parked host wakes nobody")
        again = self.successResultOf(factory.start_host(port))
        self.assertIs(again, host)
        self.successResultOf(host.add_match(Match("m-1", "tictactoe", players, 0.0)))
        clock.advance(1.9)
        self.assertIsNone(files.path_of("m-1"))
        clock.advance(0.1)
        path = files.path_of("m-1")
        self.assertTrue(path is not None and path.exists())


class VectorTests(SynchronousTestCase):
    """The record file vectors of vectors/protocol.json (docs/protocol.md section 18)."""

    def test_the_header_and_the_frame_are_written_and_read_so(self) -> None:
        found = vectors("records")
        header, frame = found["file_header"], found["frame"]
        value = header["value"]
        self.assertEqual((value["format"], value["v"]), ("vinom-records", 2))
        made = record_file_header(pid=value["pid"], started=value["started"])
        self.assertEqual(made.hex(), header["hex"])
        made = record_frame(frame["match_id"], unhex(frame["piece"]))
        self.assertEqual(made.hex(), frame["hex"])
        read = read_record_file(unhex(header["hex"]) + unhex(frame["hex"]))
        self.assertEqual(read.header, value)
        self.assertEqual(dict(read.records), {frame["match_id"]: unhex(frame["piece"])})
