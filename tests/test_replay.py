"""Match records on a real `twistd -n vinom`, replayed by the real `vinom replay`.

The server records every match by default (docs/operations.md, "Match
records") into DATA_DIR/records; real clients play (bots through the whole
client stack; players sending real-time inputs through a lossy UDP link);
then `vinom replay --check FILE`, a child process as a user runs it, rebuilds
each match from its file alone and checks every hash. A game that reads the
process-wide generator inside its rules is caught at the tick it differs; a
server killed mid-match (its game host in its process) leaves a record that
replays up to its last flush.
"""
# slow: starts twistd vinom and vinom replay (child processes)

from __future__ import annotations

import glob
import os
import random
import socket
import sys
import textwrap
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.rooms.test_rooms_record import bot_match, recorded_room
from tests.support.redis_server import start_redis
from tests.support.servers import ROOT, RunningTwistd, start_twistd
from tests.support.terminal import TerminalProcess, in_a_terminal
from tests.support.waiting import until
from tests.test_realtime import INPUT_PLUGIN, _lossy_player
from vinom.client.bots import play_bot
from vinom.games.interfaces import Seat
from vinom.games.registry import GameRegistry
from vinom.rooms.record import MatchRecorder, record_header
from vinom.rooms.replay import RecordError, read_record, read_record_file

RUN_CLI = "import sys; from vinom.cli import main; sys.exit(main())"

DRIFT_PLUGIN = textwrap.dedent(
    '''
    """A real-time game that is not deterministic: from its 10th tick on it draws
    from the process-wide generator, not the room's."""

    import random

    from attrs import evolve, frozen
    from zope.interface import implementer

    from vinom.games.base import Game
    from vinom.games.interfaces import IBot, Outcome


    @frozen
    class Drift:
        players: tuple
        ticks: int = 0
        value: float = 0.0
        over: bool = False


    class DriftGame(Game):
        name = "rt-drift"
        description = "test: not deterministic"
        min_players = max_players = match_size = 2
        tick_rate = 20.0
        time_limit = 2.0
        countdown = 0.0
        action_rate = 0.0
        idle_timeout = 0.0
        offered_by_default = False

        def create(self, seats, options, rng):
            return Drift(tuple(s.player_id for s in seats))

        def check_join(self, state, seat):
            return None

        def tick(self, state, dt, rng):
            ticks = state.ticks + 1
            noise = random.random() if ticks >= 10 else rng.random()
            return Outcome(evolve(state, ticks=ticks, value=state.value + noise))

        def time_up(self, state):
            return Outcome(evolve(state, over=True))

        def view(self, state, player_id):
            return {"ticks": state.ticks}

        def is_finished(self, state):
            return state.over

        def result(self, state):
            return {"winners": [], "reason": "time"}

        def make_bot(self, player_id, rng):
            return Idle()


    @implementer(IBot)
    class Idle:
        def choose_action(self, view):
            return None


    drift = DriftGame()
    '''
)


async def replay_check(server: RunningTwistd, path: str, *args: str) -> tuple[str, str, int]:
    """`vinom replay --check PATH ARGS` as a child process (the server's games installed)."""
    return await vinom_replay(server, "--check", path, *args)


async def vinom_replay(server: RunningTwistd | None, *args: str) -> tuple[str, str, int]:
    """`vinom replay ARGS` as a child process (the server's games installed; None:
    the built-in ones only)."""
    env = dict(os.environ)
    games = os.path.join(server.data_dir, "path") if server is not None else ""
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, games, env.get("PYTHONPATH", "")) if p
    )
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-c", RUN_CLI, "replay", *args], env=env
    )
    return out.decode(), err.decode(), code


def viewer_on_a_terminal(case: TestCase, path: str) -> tuple[TerminalProcess, Any]:
    """`vinom replay PATH` in a pseudo-terminal of 24 x 100: its output and its process."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT, "TERM": "xterm",
           "LINES": "24", "COLUMNS": "100"}  # fmt: skip
    return in_a_terminal(case, [sys.executable, "-c", RUN_CLI, "replay", path], env)


def records_in(server: RunningTwistd) -> list[str]:
    """The server's record files (docs/operations.md, "Match records")."""
    return sorted(glob.glob(os.path.join(server.data_dir, "records", "*.vrec")))


def records_of(server: RunningTwistd) -> dict[str, tuple[str, bytes]]:
    """Each match id in the server's record files -> (its file, its record's bytes)."""
    found = {}
    for path in records_in(server):
        with open(path, "rb") as f:
            data = f.read()
        try:
            records = read_record_file(data).records
        except RecordError:
            continue
        found.update((match_id, (path, record)) for match_id, record in records.items())
    return found


def complete_records(server: RunningTwistd) -> int:
    """How many of the server's records have their end written (a record being
    written may be cut anywhere: not complete)."""
    complete = 0
    for _path, data in records_of(server).values():
        try:
            complete += read_record(data).complete
        except RecordError:
            continue
    return complete


def redis_set(port: int, key: str, value: bytes) -> None:
    """SET over a plain socket (RESP)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        name = key.encode()
        s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                  % (len(name), name, len(value), value))  # fmt: skip
        assert s.recv(16) == b"+OK\r\n"


DAY_MS = 24 * 3600 * 1000


def redis_pttl(port: int, key: str) -> int:
    """PTTL over a plain socket (RESP): the key's milliseconds to live."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        name = key.encode()
        s.sendall(b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n" % (len(name), name))
        data = b""
        while not data.endswith(b"\r\n"):
            data += s.recv(64)
        return int(data[1:-2])


def redis_get(port: int, key: str) -> bytes | None:
    """GET over a plain socket (RESP), the bytes as stored."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        name = key.encode()
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(name), name))
        data = b""
        while b"\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n")
        size = int(head[1:])
        if size < 0:
            return None
        while len(rest) < size + 2:
            rest += s.recv(65536)
        return rest[:size]


class RecordedMatchTests(TestCase):
    timeout = 120

    async def test_a_bot_match_and_a_real_time_match_through_a_lossy_link_replay_exactly(
        self,
    ) -> None:
        server = await start_twistd(
            self, {"twisted/plugins/rt_test_game.py": INPUT_PLUGIN},
            "--games", "tictactoe,rt-inputs",
        )  # fmt: skip
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        reports = await gatherResults(
            [
                Deferred.fromCoroutine(
                    play_bot(reactor, server.lobby, tictactoe, f"b{n}", rng=random.Random(n))
                )
                for n in range(2)
            ]
        )
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        players = await gatherResults(
            [Deferred.fromCoroutine(_lossy_player(server.lobby, f"p{n}", n)) for n in range(2)]
        )
        for player in players:
            await player.session.finished
        # Each record's end is written as its room closes, which may come a moment
        # after a player heard the match was over: wait for both ends.
        await until(lambda: complete_records(server) == 2, "both records complete")
        by_game = {}
        for path, data in records_of(server).values():
            record = read_record(data)
            self.assertTrue(record.complete)
            by_game[record.game] = (path, record)
        self.assertEqual(set(by_game), {"tictactoe", "rt-inputs"})
        # The real-time record holds each input the game applied, once, in order.
        _path, realtime = by_game["rt-inputs"]
        for seat in (0, 1):
            numbers = [e[2]["n"] for e in realtime.entries if e[0] == 1 and e[1] == seat]
            self.assertGreater(len(numbers), 30)
            self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
        for game, (path, record) in by_game.items():
            # A record file may hold both: --match picks one.
            out, err, code = await replay_check(server, path, "--match",
                                                record.header["match_id"])  # fmt: skip
            self.assertEqual((code, err), (0, ""), out)
            self.assertIn(f"{game} match {record.header['match_id']}", out)
            self.assertIn("replays exactly; finished", out)

    async def test_with_redis_a_finished_record_is_copied_where_every_lobby_finds_it(
        self,
    ) -> None:
        redis = await start_redis(self)
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        server = await start_twistd(
            self, {}, "--games", "tictactoe", "--redis", redis.url, "--token-key-file", key_file,
        )  # fmt: skip
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        reports = await gatherResults([
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, tictactoe, f"b{n}", rng=random.Random(n))
            )
            for n in range(2)
        ])  # fmt: skip
        match_id = reports[0].match_id
        await until(lambda: redis_get(redis.port, f"vinom:record:{match_id}") is not None)
        stored = redis_get(redis.port, f"vinom:record:{match_id}")
        assert stored is not None
        # The bytes of the match's record in the host's record file.
        self.assertEqual(stored, records_of(server)[match_id][1])
        self.assertTrue(read_record(stored).complete)
        # Kept a day, as docs/operations.md says.
        ttl = redis_pttl(redis.port, f"vinom:record:{match_id}")
        self.assertTrue(DAY_MS - 600_000 < ttl <= DAY_MS, ttl)

        # An operator on any machine checks (and keeps) it by the match id alone.
        saved = os.path.abspath(self.mktemp())
        out, err, code = await vinom_replay(
            server, "--redis", redis.url, match_id, "--check", "--save", saved
        )
        self.assertEqual(code, 0, err)
        self.assertIn(f"match {match_id} (Redis): tictactoe match {match_id}", out)
        self.assertIn("replays exactly; finished", out)
        self.assertEqual(err, f"vinom: match {match_id}: record saved to {saved} "
                              f"({len(stored):,} bytes)\n")  # fmt: skip
        with open(saved, "rb") as f:
            self.assertEqual(f.read(), stored)
        # A match with no record there (never recorded, or expired) is one line.
        out, err, code = await vinom_replay(server, "--redis", redis.url, "m-nope", "--check")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("no record of match 'm-nope' in Redis", err)
        self.assertIn("'vinom:record:m-nope'", err)
        # Without a terminal the viewer says so, as for a file.
        out, err, code = await vinom_replay(server, "--redis", redis.url, match_id)
        self.assertEqual(code, 1)
        self.assertIn("needs a terminal", err)

    async def test_a_record_the_installed_game_refuses_is_one_line_from_redis_and_file(
        self,
    ) -> None:
        # The installed rules refuse the record's start (tictactoe with one seat),
        # as a game updated since the match may: `--check` says so in one line
        # with status 1, read from Redis (which printed nothing) as from a file
        # (which printed a traceback).
        header = record_header(
            match_id="m-one-seat", game="tictactoe", game_version="1", options={},
            seats=[Seat("p1", "ann", 0)], bots=[False], seed=1, tick_rate=0.0,
            hash_every=1, started=0.0, vinom_version="test",
        )  # fmt: skip
        data = MatchRecorder(header).take()
        redis = await start_redis(self)
        redis_set(redis.port, "vinom:record:m-one-seat", data)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(data)
        refused = (
            "the installed tictactoe refuses the record's seats or options "
            "(ValueError: tictactoe needs 2 to 2 players, got 1)\n"
        )
        out, err, code = await vinom_replay(
            None, "--redis", redis.url, "m-one-seat", "--check"
        )
        self.assertEqual((code, out, err), (1, "", f"vinom: match m-one-seat (Redis): {refused}"))
        out, err, code = await vinom_replay(None, "--check", path)
        self.assertEqual((code, out, err), (1, "", f"vinom: {path}: {refused}"))
        # The viewer, on a terminal, says the same and exits (it waited for a key on an
        # empty screen, then exited 0 without a word).
        terminal, _process = viewer_on_a_terminal(self, path)
        ended = await terminal.ended
        self.assertIsInstance(ended, ProcessTerminated)
        assert isinstance(ended, ProcessTerminated)
        self.assertEqual(ended.exitCode, 1, terminal.output)
        self.assertIn(f"vinom: {path}: {refused}".replace("\n", "\r\n").encode(), terminal.output)
        self.assertNotIn(b"Traceback", terminal.output)

    async def test_a_fault_in_the_viewer_is_one_line_and_an_exit_not_a_frozen_screen(
        self,
    ) -> None:
        # A game whose spectator view fails (a fault outside the replay's recorded
        # calls, as `--check` reports it): the viewer says so in one line and exits
        # 1 (its frames stopped on the first fault and it waited, q included, for
        # ever on a frozen screen).
        plugins = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(plugins, "twisted", "plugins"))
        with open(os.path.join(plugins, "twisted", "plugins", "blind_game.py"), "w") as f:
            f.write(textwrap.dedent("""
                from vinom.games.tictactoe import TicTacToeGame

                class BlindGame(TicTacToeGame):
                    name = "blind"

                    def view(self, state, player_id):
                        if player_id is None:
                            raise LookupError("no spectator view")
                        return super().view(state, player_id)

                blind = BlindGame()
            """))
        header = record_header(
            match_id="m-blind", game="blind", game_version="1", options={},
            seats=[Seat("p1", "ann", 0), Seat("p2", "bob", 1)], bots=[False, False],
            seed=1, tick_rate=0.0, hash_every=1, started=0.0, vinom_version="test",
        )  # fmt: skip
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(MatchRecorder(header).take())
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join((ROOT, plugins)),
               "TERM": "xterm", "LINES": "24", "COLUMNS": "100"}  # fmt: skip
        argv = [sys.executable, "-c", RUN_CLI, "replay", path]
        terminal, _process = in_a_terminal(self, argv, env)
        await until(lambda: terminal.ended.called, "the viewer exited on its fault", timeout=20)
        ended = await terminal.ended
        self.assertIsInstance(ended, ProcessTerminated, terminal.output)
        assert isinstance(ended, ProcessTerminated)
        self.assertEqual(ended.exitCode, 1, terminal.output)
        line = f"vinom: {path}: the replay failed: LookupError: no spectator view\r\n"
        self.assertIn(line.encode(), terminal.output)
        self.assertNotIn(b"Traceback", terminal.output)

    async def test_the_viewer_on_a_terminal_draws_the_match_and_quits_on_q(self) -> None:
        game = GameRegistry.from_plugins().get("maze")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=5)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(data)
        terminal, process = viewer_on_a_terminal(self, path)
        await until(lambda: b"vinom replay" in terminal.output or terminal.ended.called,
                    "the viewer drawn")  # fmt: skip
        process.write(b"q")
        ended = await terminal.ended
        self.assertIsInstance(ended, ProcessDone, terminal.output)
        self.assertNotIn(b"Traceback", terminal.output)

    async def test_a_game_drawing_from_the_global_generator_is_caught_at_its_tick(self) -> None:
        server = await start_twistd(
            self, {"twisted/plugins/rt_drift.py": DRIFT_PLUGIN},
            "--games", "rt-drift", "--limit", "record-hash-every=1",
        )  # fmt: skip
        game = _IdleGame()
        await gatherResults(
            [
                Deferred.fromCoroutine(
                    play_bot(reactor, server.lobby, game, f"b{n}", rng=random.Random(n))
                )
                for n in range(2)
            ]
        )
        await until(lambda: complete_records(server) == 1, "the record complete")
        out, err, code = await replay_check(server, records_in(server)[0])
        self.assertEqual((code, out), (1, ""))
        self.assertIn("the replayed state differs from the record at tick 10 (entry", err)
        self.assertEqual(err.count("\n"), 1, err)

    async def test_a_server_killed_mid_match_leaves_a_record_that_replays_to_its_last_flush(
        self,
    ) -> None:
        server = await start_twistd(
            self, {"twisted/plugins/rt_test_game.py": INPUT_PLUGIN.replace(
                "time_limit = 3.0", "time_limit = 60.0")},
            # The game host in the server's process: killing it kills the host.
            "--games", "rt-inputs", "--matches", "here",
        )  # fmt: skip
        players = await gatherResults(
            [Deferred.fromCoroutine(_lossy_player(server.lobby, f"p{n}", n)) for n in range(2)]
        )
        # Play a second or two, then the server (and its game-host worker) dies.
        await until(
            lambda: bool(records_in(server)) and os.path.getsize(records_in(server)[0]) > 2000
        )
        # And one flush more: killed with a record written in more than one go.
        flushed = os.path.getsize(records_in(server)[0])
        await until(lambda: os.path.getsize(records_in(server)[0]) > flushed, "one more flush")
        server.process.transport.signalProcess("KILL")
        await server.process.ended
        for player in players:  # the players give up on the dead server
            await player.session.disconnect()
            await player.proxy.transport.stopListening()
        [(path, data)] = records_of(server).values()
        record = read_record(data)
        self.assertFalse(record.complete)
        out, err, code = await replay_check(server, path)
        self.assertEqual((code, err), (0, ""), out)
        self.assertIn("no end: the record stops at its last flush", out)


class _IdleGame:
    """What `play_bot` needs of the game it queues for: its name and a bot (idle)."""

    name = "rt-drift"

    def make_bot(self, player_id: str, rng: random.Random) -> object:
        return _Idle()


class _Idle:
    def choose_action(self, view: object) -> None:
        return None

