"""The `vinom` console script: play a game in the terminal, run bots, list the installed games.

    vinom games                           the games this installation knows
    vinom play maze                       a curses client (vinom.client.tui)
    vinom bots --game maze --count 10     bots that queue, play and report
    vinom new-game mygame                 a new game package to start from (vinom.scaffold)
    vinom watch m-8f3a0c2d                watch a running match (vinom.client.watch)
    vinom replay FILE [--check]           watch or check a match record (vinom.client.replay);
                                          --match ID picks one of a record file's matches
    vinom replay --redis URL MATCH_ID     the same, the record read from a deployment's Redis

`play` and `bots` talk to a running server (`twistd -n vinom`): `--lobby
HOST:PORT` (default localhost:7350) and `--trust CERT`, the certificate to
trust (default: ./vinom-data/dev-cert.pem when it exists, which is where a
server started in the same directory keeps its dev certificate; otherwise the
platform's certificate authorities). `bots` takes several lobbies (`--lobby`
repeated or comma-separated, `--trust` once or once per lobby) and moves a
bot to the next when its lobby is lost (vinom.client.failover). `play`, `watch`
and `bots` sign in as `--auth` says (`SignInOptions`; docs/client.md, "Signing
in"). The global reactor is imported only in `main`; the command bodies take a
reactor so tests can run them in-process.

Here: the top-level `Options`, the commands play, bots, games, new-game and watch, and
`main`. What every command's options share is vinom.cli.options; `vinom replay` is
vinom.cli.replay, `vinom accounts` vinom.cli.accounts; `python -m vinom.cli` runs `main`
(vinom.cli.__main__).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.python import usage
from twisted.python.failure import Failure

from vinom.cli.accounts import AccountsOptions, accounts
from vinom.cli.options import (
    DEFAULT_LOBBY,
    QUEUE_OPTION,
    ClientOptions,
    CommandError,
    CommandOptions,
    check_queue,
)
from vinom.cli.replay import ReplayOptions, replay_check_command, replay_redis_command
from vinom.client.bots import (
    bot_line,
    format_summary,
    plural,
    report_json,
    run_bots,
    summarize,
)
from vinom.client.errors import DEFAULT_TRUST, describe_failure
from vinom.client.lobby import LobbyAddress, connect_lobby
from vinom.errors import UnknownGame
from vinom.games.interfaces import IGame
from vinom.games.registry import GameRegistry, format_games
from vinom.net.reactor import install as install_reactor
from vinom.scaffold import ScaffoldError, check_available, game_names, write_game

# More bots than this and `vinom bots` prints only the summary, not a line per bot.
BOT_LINES_UP_TO = 50


def _default_player_name() -> str:
    try:
        import getpass

        name = getpass.getuser().strip()
    except Exception:  # no user database entry, no environment: any name will do
        name = ""
    return name[:32] or "player"


class PlayOptions(ClientOptions):
    synopsis = "<game> [options]"
    longdesc = (
        "Play a game in this terminal against other players or bots. The maze moves "
        "with the arrow keys or h/j/k/l, tic-tac-toe places a mark with Enter or 1-9; "
        "any game: b lets the built-in bot choose your next move, : types an action "
        "as JSON, q leaves. See docs/client.md."
    )
    def opt_lobby(self, value: str) -> None:
        ClientOptions.opt_lobby(self, value)

    opt_lobby.__doc__ = f"The lobby to connect to, HOST:PORT (default {DEFAULT_LOBBY})."
    opt_l = opt_lobby

    optParameters = [
        ["name", "n", None, "Your name in the lobby (default: your login name)."],
        ["log", None, None, "Write the client's log to this file (nothing is logged otherwise)."],
        QUEUE_OPTION,
    ]

    def parseArgs(self, game: str | None = None) -> None:
        if game is None:
            raise usage.UsageError(
                "name the game to play, e.g. 'vinom play maze' (see 'vinom games')"
            )
        self["game"] = game

    def postOptions(self) -> None:
        super().postOptions()
        if len(self["addresses"]) > 1:
            raise usage.UsageError("vinom play connects to one lobby: give --lobby once")
        if self["name"] is None:
            self["name"] = _default_player_name()
        elif not self["name"].strip():
            raise usage.UsageError("--name must not be empty")
        check_queue(self)
        [self["auth-object"]] = self.signed_in([""])


def _number(name: str, value: Any, kind: type[int] | type[float], low: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise usage.UsageError(f"--{name} must be {what}, not {value!r}") from None
    if number < low:
        raise usage.UsageError(f"--{name} must be at least {low:g}, not {value}")
    return number


class BotsOptions(ClientOptions):
    synopsis = "--game <game> [--count N] [options]"
    longdesc = (
        "Run N bots at once: each says hello, queues for the game, plays its match "
        "over UDP with the game's built-in bot, and reports; a summary follows."
    )
    optParameters = [
        ["game", "g", None, "The game to queue for (required; see 'vinom games')."],
        ["count", "c", "2", "How many bots."],
        ["name", "n", "bot", "Name prefix: the bots are called PREFIX0, PREFIX1, ..."],
        ["seed", "s", None, "Seed for the bots' choices (default: a random seed)."],
        ["think", None, "0", "Seconds each bot waits before each action."],
        ["timeout", None, "0", "Give up on bots still playing after this many seconds (0: never)."],
        QUEUE_OPTION,
    ]
    optFlags = [
        ["json", None, "Print one JSON object (the summary and every bot) instead of text."],
        ["quiet", None, "Print only the summary, not a line per bot."],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        if self["game"] is None:
            raise usage.UsageError("--game is required, e.g. 'vinom bots --game maze'")
        self["count"] = _number("count", self["count"], int, 1)
        check_queue(self)
        # Each bot its own device (or token): the same names keep their accounts.
        self["auths"] = self.signed_in([f"bot:{self['name']}{i}"
                                          for i in range(self["count"])])  # fmt: skip
        self["think"] = _number("think", self["think"], float, 0)
        self["timeout"] = _number("timeout", self["timeout"], float, 0)
        if self["seed"] is not None:
            self["seed"] = _number("seed", self["seed"], int, -sys.maxsize)


class GamesOptions(CommandOptions):
    synopsis = "[--all] [--json]"
    longdesc = (
        "List the games this installation can host and play (Twisted plugins); those a "
        "server offers only when its --games names them (test and benchmark games) with --all."
    )
    optFlags = [
        ["all", "a", "Every installed game: also the test and benchmark games (duel)."],
        ["json", None, "One JSON object per line, one per installed game."],
    ]


class NewGameOptions(CommandOptions):
    synopsis = "<name> [--directory DIR]"
    longdesc = (
        "Write a small installable game package to start from: the game (written with "
        "vinom.games.Game), its bot, a test, its pyproject.toml and the Twisted plugin "
        "module that registers it. See docs/getting-started.md."
    )
    optParameters = [
        ["directory", "d", None, "Where to write it (default: ./NAME); it must not exist."],
    ]

    def parseArgs(self, name: str | None = None) -> None:
        if name is None:
            raise usage.UsageError("name the game, e.g. 'vinom new-game mygame'")
        self["name"] = name


class WatchOptions(ClientOptions):
    synopsis = "<match id or room code> [options]"
    longdesc = (
        "Watch a running match in this terminal, read-only: by its id (the dashboard "
        "shows it), or by the join code of a private room whose owner allows spectators. "
        "q quits. See docs/client.md."
    )

    def parseArgs(self, what: str | None = None) -> None:
        if what is None:
            raise usage.UsageError("name the match, e.g. 'vinom watch m-8f3a0c2d'")
        self["what"] = what

    def postOptions(self) -> None:
        super().postOptions()
        if len(self["addresses"]) > 1:
            raise usage.UsageError("vinom watch connects to one lobby: give --lobby once")
        # A device of its own: signing in as the player would replace their connection.
        [self["auth-object"]] = self.signed_in(["watch"])


class Options(CommandOptions):
    longdesc = (
        "The vinom client. 'vinom <command> --help' describes each command. The lobby "
        f"defaults to {DEFAULT_LOBBY}; --trust defaults to {DEFAULT_TRUST} if it exists."
    )
    subCommands = [
        ["play", None, PlayOptions, "Play a game in this terminal (curses)."],
        ["bots", None, BotsOptions, "Run bots that queue, play and report."],
        ["games", None, GamesOptions, "List the installed games."],
        ["new-game", None, NewGameOptions, "Write a new game package to start from."],
        ["watch", None, WatchOptions, "Watch a running match in this terminal."],
        ["replay", None, ReplayOptions, "Watch or check a match record."],
        ["accounts", None, AccountsOptions, "Show, ban, unban or link player accounts."],
    ]

    def getSynopsis(self) -> str:
        # Subcommands add their own "<command> [options]" after this.
        return "Usage: vinom" if self.subCommand else "Usage: vinom <command> [options]"

    def postOptions(self) -> None:
        if self.subCommand is None:
            commands: list[Any] = list(self.subCommands)
            names = ", ".join(str(command[0]) for command in commands)
            raise usage.UsageError(f"name a command: {names} (see vinom --help)")


def find_game(name: str, registry: GameRegistry | None = None) -> IGame:
    """The installed game `name`, or a CommandError naming the games to try.

    The error names the games a server offers by default, not every installed
    one: a game such as duel is installed everywhere but refused by a server
    whose `--games` does not name it, so suggesting it sends the user to an
    `unknown_game` error from the lobby instead.
    """
    registry = registry or GameRegistry.from_plugins()
    try:
        return registry.get(name)
    except UnknownGame:
        offered = ", ".join(registry.offered().names()) or "none"
        raise CommandError(
            f"no game named {name!r} is installed; a server offers {offered} by default "
            "('vinom games --all' lists every installed game, and marks those a server offers "
            "only when its --games names them)"
        ) from None


async def check_lobby(reactor: Any, lobby: LobbyAddress) -> None:
    """Connect once and ping (so TLS is verified) and hang up; a CommandError if that fails."""
    try:
        client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
    except Exception as e:
        raise CommandError(describe_failure(e, lobby)) from None
    try:
        await client.ping()
    except Exception as e:
        raise CommandError(describe_failure(e, lobby)) from None
    finally:
        await client.close()


async def check_lobbies(reactor: Any, lobbies: Sequence[LobbyAddress], err: TextIO) -> None:
    """`check_lobby` each; a CommandError only if none answers (a note for each that
    does not: the bots will move past it)."""
    checks = [Deferred.fromCoroutine(check_lobby(reactor, lobby)) for lobby in lobbies]
    results = await DeferredList(checks, consumeErrors=True)
    failed = [str(cast(Failure, value).value) for ok, value in results if not ok]
    if len(failed) == len(lobbies):
        raise CommandError("; ".join(failed))
    for text in failed:
        err.write(f"vinom: note: {text}; the bots use the other lobbies\n")


# -- vinom games ------------------------------------------------------------


def games_command(options: GamesOptions, out: TextIO, registry: GameRegistry | None = None) -> int:
    registry = registry or GameRegistry.from_plugins()
    if options["json"]:
        # Every installed game: a script reads `offered_by_default`.
        for row in registry.describe():
            out.write(json.dumps(row, sort_keys=True) + "\n")
    elif len(registry):
        out.write(format_games(registry, options["all"]) + "\n")
    else:
        out.write("no games are installed\n")
    return 0


# -- vinom new-game ----------------------------------------------------------

# Rebuilds Twisted's plugin cache (docs/games.md says why), the same command on every page.
PLUGIN_CACHE_COMMAND = (
    'python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"'
)


def new_game_command(
    options: NewGameOptions, out: TextIO, registry: GameRegistry | None = None
) -> int:
    """Write the game package; a CommandError for a name or directory it cannot use."""
    try:
        names = game_names(options["name"])
        registry = registry or GameRegistry.from_plugins()
        check_available(names, registry.names())
        directory = options["directory"] or names.name
        written = write_game(names, Path(directory))
    except ScaffoldError as e:
        raise CommandError(str(e)) from None
    shown = directory if os.path.isabs(directory) else os.path.join(".", directory)
    out.write(f"Wrote the game {names.name!r} ({names.display_name}) in {shown}/:\n")
    out.write("".join(f"  {path.as_posix()}\n" for path in sorted(written)))
    out.write(
        "Next: install it, refresh Twisted's plugin cache, run its tests, restart the "
        "server, and play:\n"
        f"  pip install {shown}\n"
        f"  {PLUGIN_CACHE_COMMAND}\n"
        f"  (cd {shown} && python -m twisted.trial tests)\n"
        "  twistd -n vinom\n"
        f"  vinom bots --game {names.name} --count 2\n"
    )
    return 0


# -- vinom bots -------------------------------------------------------------


async def bots_command(
    reactor: Any,
    options: BotsOptions,
    out: TextIO,
    registry: GameRegistry | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the bots, print a line per bot as it ends, then the summary; 1 if any failed."""
    game = find_game(options["game"], registry)
    lobbies: tuple[LobbyAddress, ...] = options["addresses"]
    count: int = options["count"]
    started = reactor.seconds()
    lines = not options["json"] and not options["quiet"] and count <= BOT_LINES_UP_TO
    if not options["json"] and count % game.match_size:
        out.write(
            f"note: {game.name} matches {game.match_size} players; "
            f"{plural(count % game.match_size, 'bot')} will wait for other players "
            "to fill a match\n"
        )
    await check_lobbies(reactor, lobbies, err or sys.stderr)
    reports = await run_bots(
        reactor,
        lobbies,
        game,
        count,
        name_prefix=options["name"],
        seed=options["seed"],
        think_time=options["think"],
        auths=options["auths"],
        queue=options["queue"],
        timeout=options["timeout"],
        on_report=(lambda report: out.write(bot_line(report) + "\n")) if lines else None,
    )
    summary = summarize(game.name, reports, reactor.seconds() - started)
    if options["json"]:
        summary["reports"] = [report_json(r) for r in reports]
        out.write(json.dumps(summary) + "\n")
    else:
        out.write(format_summary(summary) + "\n")
    failed = summary["error"] + summary["timeout"]
    if not options["json"] and failed == count and summary["errors"]:
        # Nothing played at all: say why once, in words, rather than N times.
        first = next(r for r in reports if r.outcome in ("error", "timeout"))
        out.write(f"no bot could play: {first.error}\n")
    return 1 if failed else 0


# -- main ---------------------------------------------------------------------


def run_with_reactor(reactor: Any, command: Any) -> int:
    """Run `command(reactor) -> Deferred[int]` on the reactor and return its exit status."""
    status: list[int] = []

    def done(result: object) -> None:
        if isinstance(result, Failure):
            if result.check(CommandError):
                sys.stderr.write(f"vinom: {result.value}\n")
            else:
                sys.stderr.write(f"vinom: {result.getErrorMessage()}\n")
                result.printTraceback(file=sys.stderr)
            status.append(1)
        else:
            status.append(int(result))  # type: ignore[call-overload]
        if reactor.running:
            reactor.stop()

    def start() -> None:
        Deferred.fromCoroutine(command(reactor)).addBoth(done)

    reactor.callWhenRunning(start)
    reactor.run()
    return status[0] if status else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: returns the exit status (2 for a usage error)."""
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        if options.subCommand:
            # One line, not the command's whole --help above it.
            command = options.subCommand
            sys.stderr.write(f"vinom: {e} (vinom {command} --help lists the options)\n")
        else:
            sys.stderr.write(f"{options}\nvinom: {e}\n")
        return 2
    sub = options.subOptions
    try:
        if options.subCommand == "games":
            return games_command(sub, sys.stdout)
        if options.subCommand == "new-game":
            return new_game_command(sub, sys.stdout)
        if options.subCommand == "replay" and sub["check"] and sub["redis"] is None:
            return replay_check_command(
                sub["path"], sys.stdout, sys.stderr, match_id=sub["match"]
            )
        if options.subCommand == "play":
            game = find_game(sub["game"])
        elif options.subCommand == "bots":
            find_game(sub["game"])
    except CommandError as e:
        sys.stderr.write(f"vinom: {e}\n")
        return 1

    reactor = install_reactor()

    if options.subCommand == "watch":
        from vinom.client.watch import run_watch

        return run_watch(reactor, sub["address"], sub["what"], GameRegistry.from_plugins().get,
                         auth=sub["auth-object"])

    if options.subCommand == "replay" and sub["redis"] is not None:
        return replay_redis_command(reactor, sub, sys.stdout, sys.stderr)

    if options.subCommand == "replay":
        from vinom.client.replay import run_replay

        return run_replay(
            reactor, sub["path"], GameRegistry.from_plugins().get, match_id=sub["match"]
        )

    if options.subCommand == "accounts":
        return run_with_reactor(reactor, lambda r: accounts(r, sub.subCommand, sub.subOptions))

    if options.subCommand == "play":
        from vinom.client.tui import run_play

        return run_play(reactor, sub["address"], game, sub["name"], log_file=sub["log"],
                        auth=sub["auth-object"], queue=sub["queue"])

    async def bots(reactor: Any) -> int:
        try:
            return await bots_command(reactor, sub, sys.stdout)
        except KeyboardInterrupt:
            return 130

    return run_with_reactor(reactor, bots)


