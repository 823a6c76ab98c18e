"""`vinom replay`: the viewer driven as a user drives it (time passing, keys), and
`--check` as a user runs it, on records of rooms played by bots (vinom.rooms.record)."""

from __future__ import annotations

import curses
import gzip
import io
import os
import sys
import zlib

import attrs
import msgpack
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.rooms.test_rooms_record import REGISTRY, bot_match, recorded_room
from vinom.cli import main
from vinom.cli.replay import replay_check_command
from vinom.client.canvas import Canvas
from vinom.client.replay import ReplayViewer
from vinom.games.arena import ArenaGame
from vinom.games.registry import GameRegistry
from vinom.hosting.records import RecordFiles, RecordSettings
from vinom.rooms.record import state_hash
from vinom.rooms.replay import Replay, read_record


def write(case: SynchronousTestCase, data: bytes) -> str:
    path = os.path.abspath(case.mktemp()) + ".vrec.gz"
    with open(path, "wb") as f:
        f.write(data)
    return path


class ViewerTests(SynchronousTestCase):
    def arena(self) -> tuple[ReplayViewer, int]:
        game = ArenaGame(2)
        room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4, limit=40.0)
        return ReplayViewer(read_record(data), ArenaGame(2)), room.tick_number

    def test_a_real_time_match_plays_at_its_pace_and_speed(self) -> None:
        viewer, _ticks = self.arena()
        viewer.advance(1.0)
        self.assertEqual(viewer.replay.tick, 20)
        viewer.handle_key(ord("+"))
        viewer.advance(1.0)
        self.assertEqual(viewer.replay.tick, 60)
        viewer.handle_key(ord(" "))
        viewer.advance(5.0)
        self.assertEqual(viewer.replay.tick, 60)
        self.assertIn("paused", viewer.status())

    def test_seeking_back_and_forth_shows_the_states_of_those_ticks(self) -> None:
        viewer, ticks = self.arena()
        viewer.handle_key(curses.KEY_RIGHT)
        viewer.handle_key(curses.KEY_RIGHT)
        self.assertEqual(viewer.replay.tick, 400)
        at_400 = state_hash(viewer.replay.state)
        viewer.handle_key(curses.KEY_LEFT)
        self.assertEqual(viewer.replay.tick, 200)
        viewer.handle_key(curses.KEY_RIGHT)
        self.assertEqual((viewer.replay.tick, state_hash(viewer.replay.state)), (400, at_400))
        viewer.handle_key(curses.KEY_END)
        self.assertTrue(viewer.at_end)
        self.assertEqual(viewer.replay.tick, ticks)
        self.assertIn("end: aborted", viewer.status())
        viewer.handle_key(curses.KEY_HOME)
        self.assertEqual(viewer.replay.position, 0)
        viewer.handle_key(ord("q"))
        self.assertTrue(viewer.done)

    def test_a_turn_based_match_is_drawn_in_its_terminal_view_move_by_move(self) -> None:
        game = REGISTRY.get("tictactoe")
        room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=9)
        viewer = ReplayViewer(read_record(data), game)
        viewer.advance(0.5)
        canvas = Canvas(24, 80)
        viewer.draw(canvas)
        self.assertIn("vinom replay  Tic-tac-toe  m-1", canvas.text())
        self.assertIn("move 1", canvas.text())
        viewer.handle_key(curses.KEY_END)
        canvas = Canvas(24, 80)
        viewer.draw(canvas)
        # The final board as the game's own terminal view draws it, names and all.
        final = Replay(read_record(data), game)
        final.run()
        board = game.view(room.state, None)["board"]
        marks = sum(1 for cell in board if cell)
        self.assertGreaterEqual(sum(canvas.text().count(m) for m in ("X", "O")), marks)
        self.assertIn("end: finished", canvas.text())


class CheckCommandTests(SynchronousTestCase):
    def test_check_says_the_match_replays_exactly(self) -> None:
        game = REGISTRY.get("maze")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=5)
        path = write(self, data)
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(replay_check_command(path, out, err, REGISTRY), 0)
        self.assertEqual(err.getvalue(), "")
        self.assertIn(f"{path}: maze match m-1, ", out.getvalue())
        self.assertIn("replays exactly; finished", out.getvalue())

    def test_a_bad_record_is_one_line_and_status_1(self) -> None:
        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=5)
        damaged = bytearray(data)
        damaged[len(damaged) // 2] ^= 0x55
        other = GameRegistry([REGISTRY.get("maze")])
        for payload, registry, says in (
            (b"not a record", REGISTRY, "not a match record (neither a record file nor gzip"),
            (gzip.compress(b"\x81\xa1a\x01"), REGISTRY, "its header names no vinom-record format"),
            (bytes(damaged), REGISTRY, "damaged"),
            (data, other, "a match of 'tictactoe', a game this installation does not have"),
        ):
            with self.subTest(says=says):
                path = write(self, payload)
                out, err = io.StringIO(), io.StringIO()
                self.assertEqual(replay_check_command(path, out, err, registry), 1)
                self.assertEqual(out.getvalue(), "")
                self.assertTrue(err.getvalue().startswith(f"vinom: {path}: "), err.getvalue())
                self.assertIn(says, err.getvalue())
                self.assertEqual(err.getvalue().count("\n"), 1)

    def record_file(self) -> str:
        """A host's record file holding a maze match m-1 and a tictactoe match m-2,
        written as a game host writes it (vinom.hosting.records)."""
        directory = os.path.abspath(self.mktemp())
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        for game, match_id in (("maze", "m-1"), ("tictactoe", "m-2")):
            played = REGISTRY.get(game)
            match = attrs.evolve(bot_match(played, 2), match_id=match_id)
            _room, _recorder, data = recorded_room(played, match, seed=5)
            files.write(match_id, 0.0, data[:100], closed=False)
            files.write(match_id, 0.0, data[100:], closed=True)
        [name] = os.listdir(directory)
        return os.path.join(directory, name)

    def test_a_file_of_many_matches_is_listed_and_match_picks_one(self) -> None:
        path = self.record_file()
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        # No match named: the file's matches, to pick one from (no terminal needed).
        self.assertEqual(main(["replay", path]), 0)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], f"{path}: 2 matches (pick one with --match ID)")
        self.assertEqual([line.split()[:2] for line in lines[1:]],
                         [["m-1", "maze"], ["m-2", "tictactoe"]])  # fmt: skip
        self.assertTrue(all(line.endswith("finished") for line in lines[1:]), lines)
        # --check without --match checks each; with it, that one.
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(replay_check_command(path, out, err, REGISTRY), 0)
        self.assertEqual(err.getvalue(), "")
        self.assertEqual(len(out.getvalue().splitlines()), 2)
        self.assertIn("maze match m-1, ", out.getvalue())
        self.assertIn("tictactoe match m-2, ", out.getvalue())
        out = io.StringIO()
        self.assertEqual(replay_check_command(path, out, err, REGISTRY, match_id="m-2"), 0)
        self.assertEqual(len(out.getvalue().splitlines()), 1)
        self.assertIn(f"{path}: tictactoe match m-2, ", out.getvalue())
        # A match the file does not hold is one line naming those it does.
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(replay_check_command(path, out, err, REGISTRY, match_id="m-9"), 1)
        self.assertEqual(err.getvalue(), f"vinom: {path} holds no match 'm-9' (it holds 2: "
                                         f"m-1, m-2; 'vinom replay {path}' lists them)\n")

    def test_a_missing_file_and_a_missing_argument(self) -> None:
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(replay_check_command("/nonexistent.vrec.gz", out, err, REGISTRY), 1)
        self.assertEqual(
            err.getvalue(), "vinom: cannot read /nonexistent.vrec.gz: No such file or directory\n"
        )
        self.assertEqual(main(["replay"]), 2)

class HostileFileTests(SynchronousTestCase):
    """Record files from elsewhere (a bug report's attachment): `vinom replay` stays
    one line and status 1 on what it cannot take, and prints nothing that drives
    the terminal."""

    def run_cli(self, argv: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        return main(argv), out.getvalue(), err.getvalue()

    def test_a_compression_bomb_is_one_line_and_status_1(self) -> None:
        from vinom.rooms.record import record_file_header, record_frame

        # A record header, then a bin of more zeros than a reader inflates (64 MiB,
        # docs/protocol.md, "Match records"): 70 kilobytes that decompress beyond it.
        size = 65 << 20
        header = msgpack.packb({"format": "vinom-record", "v": 1, "game": "maze",
                                "seats": [], "seed": 1, "options": {}})  # fmt: skip
        stream = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [stream.compress(header + b"\xc6" + size.to_bytes(4, "big"))]
        zeros = bytes(1 << 20)
        for _ in range(size // len(zeros)):
            parts.append(stream.compress(zeros))
        bomb = b"".join(parts) + stream.flush()
        frames = record_file_header(pid=1, started=0.0) + record_frame("m-1", bomb)
        for name, payload in (("one.vrec.gz", bomb), ("many.vrec", frames)):
            with self.subTest(name=name):
                path = write(self, payload) + name
                os.rename(path[: -len(name)], path)
                for argv in (["replay", "--check", path], ["replay", path]):
                    status, out, err = self.run_cli(argv)
                    self.assertEqual(status, 1, (argv, out, err))
                    self.assertIn("decompresses to more than", err)
                    self.assertEqual(err.count("\n"), 1, err)

    def test_a_device_or_pipe_named_as_the_record_is_one_line(self) -> None:
        # /dev/zero never ends: read whole, it took all memory (a MemoryError traceback).
        if not os.path.exists("/dev/zero"):
            raise SkipTest("no /dev/zero here")
        for argv in (["replay", "--check", "/dev/zero"], ["replay", "/dev/zero"]):
            status, out, err = self.run_cli(argv)
            self.assertEqual((status, out), (1, ""))
            self.assertEqual(err, "vinom: cannot read /dev/zero: not a regular file\n")

    def test_control_characters_in_a_match_id_are_shown_escaped(self) -> None:
        from vinom.rooms.record import record_file_header, record_frame

        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=5)
        evil = "m-1\x1b]0;owned\x07\x1b[2J"
        path = write(self, record_file_header(pid=1, started=0.0)
                     + record_frame(evil, data) + record_frame("m-2", b"junk"))  # fmt: skip
        status, out, err = self.run_cli(["replay", path])
        self.assertEqual(status, 0, err)
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertIn("m-1\\x1b]0;owned\\x07\\x1b[2J", out)
        status, out, err = self.run_cli(["replay", "--match", "m-9", path])
        self.assertEqual(status, 1)
        self.assertNotIn("\x1b", err)

    def test_checking_many_matches_names_the_one_that_fails(self) -> None:
        from vinom.rooms.record import record_file_header, record_frame

        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=5)
        path = write(self, record_file_header(pid=1, started=0.0)
                     + record_frame("m-good", data) + record_frame("m-bad", b"junk"))  # fmt: skip
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(replay_check_command(path, out, err, REGISTRY), 1)
        self.assertIn("replays exactly", out.getvalue())
        self.assertEqual(err.getvalue(), f"vinom: {path}: match m-bad: not a match record "
                                         f"(not gzip data)\n")

    def test_a_match_with_a_damaged_header_is_listed_as_such(self) -> None:
        from vinom.rooms.record import record_file_header, record_frame

        header = {"format": "vinom-record", "v": 1, "game": "tictactoe", "seed": 1,
                  "options": {}, "match_id": "m-1", "started": 0.0,
                  "seats": [["p1", "ann", False], ["p2", "bob", False]]}  # fmt: skip
        frames = b"".join(
            record_frame(match_id, gzip.compress(msgpack.packb({**header, **damage})))
            for match_id, damage in (
                ("m-1", {}), ("m-2", {"started": "noon"}), ("m-3", {"seats": [1]}),
                ("m-4", {"started": 1e300}),
            )
        )  # fmt: skip
        path = write(self, record_file_header(pid=1, started=0.0) + frames)
        status, out, err = self.run_cli(["replay", path])
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(len(lines), 5, out)
        self.assertEqual(lines[1].split()[:2], ["m-1", "tictactoe"])
        self.assertIn("ann, bob", lines[1])
        for line in lines[2:]:
            self.assertIn("the record's header is damaged", line)

    def test_checking_a_file_of_many_damaged_matches_is_a_few_lines(self) -> None:
        # A file of a million junk frames is not a million lines on stderr.
        from vinom.rooms.record import record_file_header, record_frame

        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=5)
        frames = record_frame("m-good", data) + b"".join(
            record_frame(f"m-{n}", b"junk") for n in range(25)
        )
        path = write(self, record_file_header(pid=1, started=0.0) + frames)
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(replay_check_command(path, out, err, REGISTRY), 1)
        self.assertIn("replays exactly", out.getvalue())
        lines = err.getvalue().splitlines()
        self.assertEqual(len(lines), 11, lines)
        self.assertEqual(lines[0], f"vinom: {path}: match m-0: not a match record (not gzip data)")
        self.assertEqual(lines[-1], f"vinom: {path}: 15 more matches do not replay (check "
                                    f"one with --match ID)")
