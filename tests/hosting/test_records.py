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
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.server.test_tap import parse
from tests.support.ports import free_udp_port
from vinom.games.registry import GameRegistry
from vinom.games.tictactoe import TicTacToeGame
from vinom.hosting.core import GameHostCore
from vinom.hosting.inline import InlineGameHost, InlineGameHostFactory
from vinom.hosting.records import RecordFiles, RecordSettings, record_file_name
from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig, ProtocolConfig
from vinom.rooms.replay import read_record


class RecordFilesTests(SynchronousTestCase):
    def files(self, **kwargs: float) -> RecordFiles:
        directory = os.path.join(os.path.abspath(self.mktemp()), "records")
        return RecordFiles(RecordSettings(directory=directory, **kwargs))  # type: ignore[arg-type]

    def test_a_record_is_appended_to_one_file_per_match_named_by_its_start(self) -> None:
        files = self.files()
        files.write("m-1", 0.0, b"abc", closed=False)
        files.write("m/2", 86400.0, b"x", closed=True)
        files.write("m-1", 0.0, b"def", closed=True)
        names = sorted(os.listdir(files.directory))
        self.assertEqual(names, ["19700101T000000Z-m-1.vrec.gz", "19700102T000000Z-m_2.vrec.gz"])
        self.assertEqual((files.directory / names[0]).read_bytes(), b"abcdef")
        self.assertEqual(record_file_name("m-1", 0.0), names[0])
        self.assertEqual(files.bytes_written, 7)

    def test_prune_deletes_old_files_then_the_oldest_beyond_the_size(self) -> None:
        files = self.files(max_age=100.0, max_bytes=25)
        now = time.time()
        for n, age in enumerate((500.0, 50.0, 40.0, 30.0)):
            files.write(f"m-{n}", 0.0, b"x" * 10, closed=True)
            path = files.directory / record_file_name(f"m-{n}", 0.0)
            os.utime(path, (now - age, now - age))
        files.write("live", 0.0, b"y" * 10, closed=False)  # still recording: kept
        os.utime(files.path_of("live"), (now - 1000, now - 1000))  # type: ignore[arg-type]
        (files.directory / "notes.txt").write_text("not a record")
        self.assertEqual(files.prune(now), 3)
        left = sorted(p.name for p in Path(files.directory).iterdir())
        self.assertEqual(left, [record_file_name("live", 0.0), record_file_name("m-3", 0.0),
                                "notes.txt"])  # fmt: skip

    def test_a_write_that_fails_is_counted_and_the_match_goes_on(self) -> None:
        blocker = os.path.abspath(self.mktemp())
        Path(blocker).write_text("a file where the directory should be")
        files = RecordFiles(RecordSettings(directory=os.path.join(blocker, "records")))
        files.write("m-1", 0.0, b"abc", closed=True)
        self.assertEqual(files.write_errors, 1)


class RecordOptionsTests(SynchronousTestCase):
    def test_recording_is_on_by_default_into_the_data_directory(self) -> None:
        options = parse("--data-dir", "/srv/vinom")
        self.assertEqual(
            options["recording"],
            RecordSettings(directory="/srv/vinom/records", enabled=True, hash_every=20,
                           flush_interval=1.0, max_age=7 * 86400.0,
                           max_bytes=1024 * 1024 * 1024),
        )  # fmt: skip

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
            (("--record-flush", "0"), "--record-flush"),
            (("--record-hash-every", "x"), "--record-hash-every must be a whole number"),
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
        record = read_record(files.path_of("m-0").read_bytes())  # type: ignore[union-attr]
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
        names = sorted(os.listdir(directory))
        self.assertEqual(len(names), 3)
        for name in names:
            self.assertTrue(read_record(Path(directory, name).read_bytes()).complete)

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
