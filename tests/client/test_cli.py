"""The `vinom` console script: option parsing, `vinom games`, and `vinom bots` against a server.

`vinom bots` runs against a whole server (makeService) in the test process,
over real TLS with certificate verification and real UDP on loopback.
"""

# slow: runs the vinom command line

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

import vinom
from tests.support.servers import install_files, start_server
from vinom import cli
from vinom.cli.options import CommandError, parse_lobby
from vinom.client import bots
from vinom.client.bots import BotReport, LobbyAddress
from vinom.games.registry import GameRegistry
from vinom.server.certs import ensure_dev_certificate

BUILT_IN = ("arena", "dice", "maze", "owedrahn", "tictactoe")
SOURCE_ROOT = str(Path(vinom.__file__).resolve().parent.parent)


# A game installed the way a user installs one (a module in a twisted/plugins/
# directory on the path), with a tick and fewer states per second than ticks; a
# server offers it only when --games names it.
TICKER_PLUGIN = textwrap.dedent(
    '''
    from vinom.games.base import Game


    class TickerGame(Game):
        name = "ticker"
        description = "test: a game with a tick"
        min_players = max_players = match_size = 2
        tick_rate = 20.0
        snapshot_rate = 5.0
        offered_by_default = False

        def create(self, seats, options, rng):
            return None

        def view(self, state, player_id):
            return {}

        def is_finished(self, state):
            return False

        def result(self, state):
            return {"winners": [], "reason": "none"}


    ticker = TickerGame()
    '''
)


def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def bots_options(*argv: str) -> cli.BotsOptions:
    options = cli.BotsOptions()
    options.parseOptions(list(argv))
    return options


class ParseLobbyTests(SynchronousTestCase):
    def test_host_and_port(self) -> None:
        self.assertEqual(parse_lobby("example.com:7000"), ("example.com", 7000))
        self.assertEqual(parse_lobby(" 127.0.0.1:1 "), ("127.0.0.1", 1))

    def test_port_defaults_to_7350(self) -> None:
        self.assertEqual(parse_lobby("localhost"), ("localhost", 7350))

    def test_ipv6_in_brackets(self) -> None:
        self.assertEqual(parse_lobby("[::1]:9000"), ("::1", 9000))
        self.assertEqual(parse_lobby("[::1]"), ("::1", 7350))

    def test_bad_values(self) -> None:
        for bad in ("", ":7350", "host:0", "host:65536", "host:port", "::1:7350", "[::1]x"):
            with self.subTest(bad=bad):
                self.assertRaises(usage.UsageError, parse_lobby, bad)


class OptionTests(SynchronousTestCase):
    def test_version(self) -> None:
        for argv in (["--version"], ["play", "--version"], ["bots", "--version"]):
            code, out, _ = run_main(*argv)
            self.assertEqual((code, out), (0, f"vinom {vinom.__version__}\n"))

    def test_no_command(self) -> None:
        code, _, err = run_main()
        self.assertEqual(code, 2)
        self.assertIn("name a command: play, bots, games", err)

    def test_options_after_the_game(self) -> None:
        options = cli.Options()
        options.parseOptions(["play", "maze", "--lobby", "example.com:7001", "--name", "ada"])
        play = options.subOptions
        self.assertEqual(play["game"], "maze")
        self.assertEqual(play["name"], "ada")
        self.assertEqual(play["address"], LobbyAddress("example.com", 7001, play["address"].trust))

    def test_a_bad_option_value_is_one_line(self) -> None:
        code, out, err = run_main("bots", "-g", "maze", "--count", "x")
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(err.splitlines(), [
            "vinom: --count must be a whole number, not 'x' (vinom bots --help lists the options)"
        ])  # fmt: skip

    def test_play_needs_a_game(self) -> None:
        code, _, err = run_main("play")
        self.assertEqual(code, 2)
        self.assertIn("name the game to play", err)

    def test_unknown_game_names_the_games_a_server_offers(self) -> None:
        # duel is installed but a server refuses it unless --games names it: a
        # user told to try it would only meet the lobby's unknown_game.
        for argv in (["play", "nosuchgame"], ["bots", "--game", "nosuchgame"]):
            code, _, err = run_main(*argv)
            self.assertEqual(code, 1, argv)
            self.assertEqual(err, (
                "vinom: no game named 'nosuchgame' is installed; a server offers arena,"
                " dice, maze, owedrahn, tictactoe by default ('vinom games --all' lists"
                " every installed game, and marks those a server offers only when its --games"
                " names them)\n"
            ))  # fmt: skip

    def test_bots_needs_a_game(self) -> None:
        e = self.assertRaises(usage.UsageError, bots_options)
        self.assertIn("--game is required", str(e))

    def test_bots_numbers_are_checked(self) -> None:
        for argv in (["--count", "0"], ["--count", "x"], ["--think", "-1"], ["--timeout", "no"],
                     ["--seed", "1.5"]):
            with self.subTest(argv=argv):
                self.assertRaises(usage.UsageError, bots_options, "--game", "maze", *argv)
        options = bots_options("-g", "maze", "-c", "6", "--think", "0.5", "--seed", "7")
        self.assertEqual((options["count"], options["think"], options["seed"]), (6, 0.5, 7))

    def test_missing_trust_file(self) -> None:
        e = self.assertRaises(usage.UsageError, bots_options, "-g", "maze", "--trust",
                              "/nonexistent/cert.pem")
        self.assertIn("no such file", str(e))

    def test_trust_defaults_to_the_dev_certificate_here(self) -> None:
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "vinom-data"))
        here = os.getcwd()
        self.addCleanup(os.chdir, here)
        os.chdir(directory)
        self.assertIsNone(bots_options("-g", "maze")["address"].trust)
        Path("vinom-data", "dev-cert.pem").write_text("")
        self.assertEqual(bots_options("-g", "maze")["address"].trust, cli.DEFAULT_TRUST)

    def test_empty_name_is_refused(self) -> None:
        options = cli.PlayOptions()
        self.assertRaises(usage.UsageError, options.parseOptions, ["maze", "--name", " "])


class SignInOptionTests(SynchronousTestCase):
    """`--auth` and its options, one way for play, watch and bots (the sign-ins themselves:
    tests/client/test_cli_sign_in.py)."""

    def setUp(self) -> None:
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        for name in ("XDG_CONFIG_HOME", "HOME"):
            self.addCleanup(_restore_env, name, os.environ.get(name))
        os.environ.pop("XDG_CONFIG_HOME", None)
        os.environ["HOME"] = self.home

    def parsed(self, *argv: str) -> usage.Options:
        options = cli.Options()
        options.parseOptions(list(argv))
        return options.subOptions

    def test_a_device_key_is_made_once_in_the_users_config_directory(self) -> None:
        play = self.parsed("play", "maze", "--auth", "device", "--lobby", "games.example:7350")
        path = os.path.join(self.home, ".config", "vinom", "device.json")
        self.assertEqual(play["device-file"], path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)
        auth = play["auth-object"]
        self.assertEqual(set(auth), {"kind", "device_id", "secret"})
        self.assertEqual(auth["kind"], "device")
        # The shape the server takes (docs/accounts.md): 10-128 and 22-128 characters.
        self.assertRegex(auth["device_id"], r"^d-[0-9a-f]{32}$")
        self.assertRegex(auth["secret"], r"^[A-Za-z0-9_-]{43}$")
        # Kept: the next run signs in as the same device, the key unchanged.
        key = Path(path).read_bytes()
        again = self.parsed("play", "maze", "--auth", "device", "--lobby", "games.example")
        self.assertEqual(again["auth-object"], auth)
        self.assertEqual(Path(path).read_bytes(), key)
        # $XDG_CONFIG_HOME, when set, is where it is kept.
        os.environ["XDG_CONFIG_HOME"] = os.path.join(self.home, "xdg")
        self.assertEqual(self.parsed("play", "maze", "--auth", "device")["device-file"],
                         os.path.join(self.home, "xdg", "vinom", "device.json"))  # fmt: skip

    def test_each_bot_each_server_and_the_spectator_have_a_device_of_their_own(self) -> None:
        key = os.path.join(self.home, "key.json")
        common = ("--auth", "device", "--device-file", key)
        bots = self.parsed("bots", "-g", "maze", "-c", "3", *common)["auths"]
        self.assertEqual(len({auth["device_id"] for auth in bots}), 3)
        self.assertEqual(len({auth["secret"] for auth in bots}), 3)
        # The same names keep their devices (and so their accounts), run after run.
        self.assertEqual(self.parsed("bots", "-g", "maze", "-c", "2", *common)["auths"], bots[:2])
        player = self.parsed("play", "maze", *common)["auth-object"]
        watcher = self.parsed("watch", "m-1", *common)["auth-object"]
        elsewhere = self.parsed("play", "maze", *common, "--lobby", "other.example")
        devices = [player, watcher, elsewhere["auth-object"], *bots]
        self.assertEqual(len({auth["device_id"] for auth in devices}), len(devices))
        self.assertEqual(len({auth["secret"] for auth in devices}), len(devices))
        # Another user's key: other devices.
        os.remove(key)
        self.assertNotEqual(self.parsed("play", "maze", *common)["auth-object"], player)

    def test_tokens_one_per_bot_from_the_options_and_a_file(self) -> None:
        tokens = os.path.join(self.home, "tokens.txt")
        Path(tokens).write_text("t-two\n\nt-three\n")
        bots = self.parsed("bots", "-g", "maze", "-c", "3", "--auth", "signed",
                           "--auth-token", "t-one", "--auth-token-file", tokens)  # fmt: skip
        self.assertEqual(bots["auths"], [{"kind": "signed", "token": t}
                                         for t in ("t-one", "t-two", "t-three")])  # fmt: skip
        play = self.parsed("play", "maze", "--auth", "jwt", "--auth-token", "eyJ")
        self.assertEqual(play["auth-object"], {"kind": "jwt", "token": "eyJ"})
        self.assertEqual((play["queue"], self.parsed("play", "maze")["auth-object"]),
                         ("normal", None))  # fmt: skip
        self.assertEqual(bots_options("-g", "maze", "--queue", "ranked")["queue"], "ranked")

    def test_an_operators_mistake_is_one_line_and_status_2(self) -> None:
        malformed = os.path.join(self.home, "malformed.json")
        Path(malformed).write_text('{"key": "short"}\n')
        os.chmod(malformed, 0o600)
        open_to_all = os.path.join(self.home, "open.json")
        Path(open_to_all).write_text(json.dumps({"key": "A" * 43}))
        os.chmod(open_to_all, 0o644)
        tokens = os.path.join(self.home, "tokens.txt")
        Path(tokens).write_text("t-one\n")
        for argv, line in (
            (["play", "maze", "--auth", "device", "--device-file", malformed],
             f"--device-file {malformed}: not a vinom device file (a JSON object whose 'key' "
             "is 43 or more URL-safe base64 characters): move it away to make a new one"),
            (["watch", "m-1", "--auth", "device", "--device-file", self.home],
             f"--device-file {self.home}: cannot read it: Is a directory"),
            (["bots", "-g", "maze", "--auth", "device", "--device-file", open_to_all],
             f"--device-file {open_to_all}: others may read it (mode 644): chmod 600 "
             f"{open_to_all}"),
            (["play", "maze", "--auth", "device", "--device-file",
              os.path.join(malformed, "device.json")],
             f"--device-file {malformed}/device.json: cannot read it: Not a directory"),
            (["bots", "-g", "maze", "--auth", "jwt"],
             "--auth jwt signs in with tokens: give --auth-token or --auth-token-file"),
            (["bots", "-g", "maze", "--auth", "signed", "--auth-token-file", tokens],
             "--auth signed: 2 bots need a token each, not 1"),
            (["play", "maze", "--auth", "jwt", "--auth-token-file", malformed + ".gone"],
             f"--auth-token-file {malformed}.gone: cannot read it: No such file or directory"),
            (["play", "maze", "--auth-token", "t"],
             "tokens are for --auth jwt, signed or a plugin's kind, not --auth guest"),
            (["play", "maze", "--device-file", malformed], "--device-file is for --auth device"),
            (["bots", "-g", "maze", "--queue", "casual"],
             "--queue must be normal or ranked, not 'casual'"),
        ):  # fmt: skip
            with self.subTest(argv=argv):
                code, out, err = run_main(*argv)
                self.assertEqual((code, out), (2, ""))
                self.assertEqual(err.splitlines(), [
                    f"vinom: {line} (vinom {argv[0]} --help lists the options)"])
        # Nothing was replaced or made beside them.
        self.assertEqual(Path(malformed).read_text(), '{"key": "short"}\n')
        self.assertEqual(sorted(os.listdir(self.home)), ["malformed.json", "open.json",
                                                         "tokens.txt"])  # fmt: skip


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class GamesCommandTests(TestCase):
    def test_lists_the_built_in_games(self) -> None:
        code, out, _ = run_main("games")
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:3], ["NAME", "GAME", "PLAYERS"])
        names = [line.split()[0].rstrip("*") for line in lines[1:] if line]
        for name in BUILT_IN:
            self.assertIn(name, names)
        self.assertIn("2-4", next(line for line in lines if line.startswith("maze")))

    def test_names_people_read_and_games_not_offered(self) -> None:
        """Each game shows its display name; with --all, duel, which a server offers
        only when --games names it, is marked, and the mark is explained."""
        code, out, _ = run_main("games", "--all")
        self.assertEqual(code, 0)
        lines = out.splitlines()
        rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith("*")}
        self.assertIn("Owe Drahn", rows["owedrahn"])
        self.assertIn("Tic-tac-toe", rows["tictactoe"])
        self.assertIn("duel*", rows)
        for name in ("maze", "tictactoe", "dice", "owedrahn", "arena"):
            self.assertIn(name, rows)  # offered by default: no mark
        self.assertEqual(
            lines[-1], "* not offered by a server unless named: twistd vinom --games NAME,..."
        )

    def test_json(self) -> None:
        code, out, _ = run_main("games", "--json")
        self.assertEqual(code, 0)
        rows = {row["name"]: row for row in map(json.loads, out.splitlines())}
        self.assertTrue(set(BUILT_IN) <= set(rows))
        self.assertEqual(rows["tictactoe"]["players"], [2, 2])
        # A turn-based game sends a state after every change, not at a rate.
        self.assertEqual((rows["tictactoe"]["tick_rate"], rows["tictactoe"]["snapshot_rate"]),
                         (0.0, 0.0))  # fmt: skip

    async def test_an_installed_plugin_game_as_the_console_script_shows_it(self) -> None:
        """A game installed from outside the checkout (a plugin module on the path):
        `games --json` gives the states per second its players get, and `play` with
        a misspelt name does not suggest it, as a server does not offer it unless
        --games names it."""
        directory = os.path.abspath(self.mktemp())
        path = install_files(directory, {"twisted/plugins/ticker_game.py": TICKER_PLUGIN})
        env = {"PYTHONPATH": os.pathsep.join([SOURCE_ROOT, path]),
               "PATH": os.environ.get("PATH", "")}  # fmt: skip

        async def vinom_cli(*argv: str) -> tuple[int, str, str]:
            out, err, code = await getProcessOutputAndValue(
                sys.executable, ["-m", "vinom.cli", *argv], env=env, path=directory,
                reactor=reactor,
            )  # fmt: skip
            return code, out.decode(), err.decode()

        code, out, err = await vinom_cli("games", "--json")
        self.assertEqual(code, 0, err)
        rows = {row["name"]: row for row in map(json.loads, out.splitlines())}
        self.assertEqual(
            {key: rows["ticker"][key] for key in ("tick_rate", "snapshot_rate")},
            {"tick_rate": 20.0, "snapshot_rate": 5.0},
        )
        code, out, err = await vinom_cli("games", "--all")
        self.assertIn("ticker*", out)
        code, out, err = await vinom_cli("play", "tickr")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("a server offers arena, dice, maze, owedrahn, tictactoe by default", err)
        self.assertNotIn("ticker", err)
        self.assertNotIn("duel", err)

    async def test_console_script_in_a_fresh_process(self) -> None:
        """`python -m vinom.cli games` (what the `vinom` script runs) works from anywhere."""
        directory = self.mktemp()
        os.makedirs(directory)
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "vinom.cli", "games"],
            env={"PYTHONPATH": SOURCE_ROOT, "PATH": os.environ.get("PATH", "")},
            path=directory,
            reactor=reactor,
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"tictactoe", out)
        self.assertIn(b"maze", out)


class BotsCommandTests(TestCase):
    timeout = 60

    async def bots(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = await cli.bots_command(reactor, bots_options(*argv), out)
        return code, out.getvalue()

    async def test_bots_play_to_a_summary(self) -> None:
        server = await start_server(self, ports=4)
        lobby = f"{server.lobby.host}:{server.lobby.port}"
        code, out = await self.bots("--game", "tictactoe", "--count", "4", "--seed", "1",
                                    "--lobby", lobby, "--trust", str(server.lobby.trust))
        self.assertEqual(code, 0, out)
        lines = out.splitlines()
        per_bot = [line for line in lines if line.startswith("bot")]
        self.assertEqual(sorted(line.split()[0] for line in per_bot),
                         ["bot0", "bot1", "bot2", "bot3"])
        self.assertTrue(all(line.split()[3] == "finished" for line in per_bot), out)
        self.assertIn("tictactoe: 4 bots in 2 matches", out)
        self.assertIn("finished 4  aborted 0  error 0  timeout 0", out)

    async def test_json_summary(self) -> None:
        server = await start_server(self, ports=2)
        code, out = await self.bots("-g", "tictactoe", "-c", "2", "--json", "--name", "j",
                                    "-l", f"127.0.0.1:{server.lobby.port}",
                                    "-t", str(server.lobby.trust))
        self.assertEqual(code, 0, out)
        summary = json.loads(out)
        self.assertEqual((summary["bots"], summary["matches"], summary["finished"]), (2, 1, 2))
        self.assertEqual(sorted(r["name"] for r in summary["reports"]), ["j0", "j1"])
        self.assertEqual(len({r["match_id"] for r in summary["reports"]}), 1)
        self.assertGreater(summary["actions_sent"], 0)

    async def test_unreachable_lobby_is_one_clear_error(self) -> None:
        # A port that was just free: nothing listens there.
        port = reactor.listenTCP(0, ServerFactory(), interface="127.0.0.1")
        number = port.getHost().port  # type: ignore[attr-defined]
        await maybeDeferred(port.stopListening)
        with self.assertRaises(CommandError) as caught:
            await self.bots("-g", "maze", "-l", f"127.0.0.1:{number}")
        self.assertEqual(
            str(caught.exception),
            f"cannot reach the lobby at 127.0.0.1:{number}: connection refused "
            "(is the server running?)",
        )

    async def test_untrusted_certificate_is_one_clear_error(self) -> None:
        server = await start_server(self, ports=2)
        other = ensure_dev_certificate(self.mktemp()).certificate
        with self.assertRaises(CommandError) as caught:
            await self.bots("-g", "maze", "-l", f"127.0.0.1:{server.lobby.port}",
                            "-t", str(other))
        message = str(caught.exception)
        self.assertIn(f"TLS with the lobby at 127.0.0.1:{server.lobby.port} failed", message)
        self.assertIn("certificate verify failed", message)

    async def test_without_trust_outside_the_server_directory_names_the_file(self) -> None:
        # A second terminal, another directory: no ./vinom-data/dev-cert.pem to trust.
        server = await start_server(self, ports=2)
        elsewhere = os.path.abspath(self.mktemp())
        os.makedirs(elsewhere)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(elsewhere)
        with self.assertRaises(CommandError) as caught:
            await self.bots("-g", "maze", "-l", f"127.0.0.1:{server.lobby.port}")
        self.assertEqual(
            str(caught.exception),
            f"TLS with the lobby at 127.0.0.1:{server.lobby.port} failed: its certificate is "
            "not trusted here (no --trust given, and no vinom-data/dev-cert.pem in this "
            "directory); pass the server's certificate, e.g. --trust "
            "SERVER-DIR/vinom-data/dev-cert.pem, the file the server names when it starts",
        )


class BotFleetTests(SynchronousTestCase):
    def test_timeout_cancels_the_bots_still_waiting(self) -> None:
        clock = MemoryReactorClock()
        game = GameRegistry.from_plugins().get("maze")
        seen: list[BotReport] = []
        d = bots.run_bots(clock, LobbyAddress("127.0.0.1", 7350), game, 2, name_prefix="b",
                          timeout=5.0, on_report=seen.append)  # fmt: skip
        # The TLS connections never complete on a memory reactor.
        self.assertEqual(len(clock.tcpClients), 2)
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        reports = self.successResultOf(d)
        self.assertEqual([r.name for r in reports], ["b0", "b1"])
        self.assertEqual({r.outcome for r in reports}, {"timeout"})
        self.assertEqual(len(seen), 2)

    def test_summary_counts(self) -> None:
        reports = [
            BotReport("a", "p-1", "m-1", "finished", {"winners": ["p-1"]}, 10, 1),
            BotReport("b", "p-2", "m-1", "finished", {"winners": ["p-1"]}, 8, 0),
            BotReport("c", "p-3", "m-2", "aborted", None, 0, 0, "players_missing"),
            BotReport("d", None, None, "error", error="ConnectionLost: gone"),
        ]
        summary = bots.summarize("maze", reports, 1.23456)
        self.assertEqual(
            {k: summary[k] for k in ("bots", "matches", "finished", "aborted", "error", "wins",
                                     "actions_sent", "actions_rejected", "wall_s")},
            {"bots": 4, "matches": 2, "finished": 2, "aborted": 1, "error": 1, "wins": 1,
             "actions_sent": 18, "actions_rejected": 1, "wall_s": 1.235},
        )
        self.assertEqual(summary["errors"], ["ConnectionLost: gone"])
        text = bots.format_summary(summary)
        self.assertIn("maze: 4 bots in 2 matches", text)
        self.assertIn("wins 1  actions sent 18, rejected 1", text)
        self.assertEqual(bots.bot_line(reports[0]).split()[3:5], ["finished", "won"])
        self.assertEqual(bots.bot_line(reports[1]).split()[3:5], ["finished", "lost"])
