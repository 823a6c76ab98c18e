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
"""

from __future__ import annotations

import getopt
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.python import usage
from twisted.python.failure import Failure

from vinom import __version__
from vinom.client.bots import (
    bot_line,
    format_summary,
    plural,
    report_json,
    run_bots,
    summarize,
)
from vinom.client.errors import DEFAULT_TRUST, describe_failure
from vinom.client.lobby import (
    Auth,
    DeviceFileError,
    LobbyAddress,
    connect_lobby,
    default_device_file,
    device_auth,
    device_key,
)
from vinom.errors import UnknownGame
from vinom.games.interfaces import IGame
from vinom.games.registry import GameRegistry, format_games
from vinom.match import NORMAL_QUEUE, QUEUES
from vinom.net.reactor import install as install_reactor
from vinom.scaffold import ScaffoldError, check_available, game_names, write_game

DEFAULT_LOBBY = "localhost:7350"
DEFAULT_PORT = 7350
# `--auth`'s kinds that take no tokens (any other is the kind of the tokens given).
GUEST_KIND, DEVICE_KIND = "guest", "device"
# More bots than this and `vinom bots` prints only the summary, not a line per bot.
BOT_LINES_UP_TO = 50


class CommandError(Exception):
    """A failure worth one clear line to the user (and exit status 1), not a traceback."""


def parse_lobby(text: str) -> tuple[str, int]:
    """'HOST:PORT', 'HOST' (port 7350) or '[IPv6]:PORT' -> (host, port)."""
    text = text.strip()
    if not text:
        raise usage.UsageError("--lobby must be HOST:PORT, e.g. localhost:7350")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise usage.UsageError(f"--lobby {text!r}: write an IPv6 address as [ADDRESS]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise usage.UsageError(f"--lobby {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    else:
        host, port_text = text, ""
    if not host:
        raise usage.UsageError(f"--lobby {text!r} names no host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise usage.UsageError(f"--lobby {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


class CommandOptions(usage.Options):
    """Every vinom (sub)command: `--version` is vinom's, options may follow arguments."""

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"vinom {__version__}")
        sys.exit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        # Twisted's parser stops at the first argument ('play maze --lobby X' would
        # leave --lobby unparsed); move every option in front of the arguments first.
        argv = list(sys.argv[1:] if options is None else options)
        if not getattr(self, "subCommands", None):
            try:
                opts, args = getopt.gnu_getopt(argv, self.shortOpt, self.longOpt)
            except getopt.error as e:
                raise usage.UsageError(str(e)) from None
            argv = [part for opt, value in opts for part in self._option_parts(opt, value)]
            argv += ["--", *args]
        super().parseOptions(argv)

    def _option_parts(self, opt: str, value: str) -> list[str]:
        if opt.startswith("--"):
            return [f"{opt}={value}"] if f"{opt[2:]}=" in self.longOpt else [opt]
        return [opt, value] if f"{opt[1:]}:" in self.shortOpt else [opt]


def parse_lobbies(values: Sequence[str]) -> list[tuple[str, int]]:
    """Every --lobby given (each may list several, comma-separated) -> [(host, port)]."""
    addresses = []
    for value in values:
        parts = value.split(",")
        if len(parts) > 1 and not all(part.strip() for part in parts):
            raise usage.UsageError(f"--lobby {value!r}: an empty address between commas")
        addresses += [parse_lobby(part) for part in parts]
    return addresses


class SignInOptions(usage.Options):
    """How players sign in (docs/client.md, "Signing in"): the options of every client that
    says hello, here once. `check_sign_in()` (from postOptions) reads the token file and
    the device key; `credentials` gives each player's `auth`."""

    optParameters = [
        ["auth", None, GUEST_KIND, "How to sign in, as the server's --auth: guest, device "
         "(a key kept in --device-file), or the kind of the tokens given (jwt, signed, a "
         "plugin's)."],
        ["auth-token-file", None, None, "A file of tokens, one a line (instead of, or after, "
         "--auth-token)."],
        ["device-file", None, None, "--auth device: the file keeping your device key, made "
         "0600 on first use (default: $XDG_CONFIG_HOME or ~/.config, then vinom/device.json)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["auth-token"] = []

    def opt_auth_token(self, value: str) -> None:
        """A token to sign in with (repeatable: bots take one each, in order)."""
        self["auth-token"].append(value.strip())

    def check_sign_in(self) -> None:
        kind = self["auth"] = self["auth"].strip()
        tokens = self["auth-token"]
        if self["auth-token-file"] is not None:
            try:
                with open(self["auth-token-file"], encoding="utf-8") as f:
                    tokens += [line.strip() for line in f if line.strip()]
            except (OSError, UnicodeDecodeError) as e:
                reason = getattr(e, "strerror", None) or e
                raise usage.UsageError(f"--auth-token-file {self['auth-token-file']}: cannot "
                                       f"read it: {reason}") from None  # fmt: skip
        if kind in (GUEST_KIND, DEVICE_KIND) and tokens:
            raise usage.UsageError(f"tokens are for --auth jwt, signed or a plugin's kind, "
                                   f"not --auth {kind}")  # fmt: skip
        if kind not in (GUEST_KIND, DEVICE_KIND) and not tokens:
            raise usage.UsageError(f"--auth {kind} signs in with tokens: give "
                                   "--auth-token or --auth-token-file")  # fmt: skip
        if kind != DEVICE_KIND and self["device-file"] is not None:
            raise usage.UsageError("--device-file is for --auth device")
        self["device-key"] = None
        if kind == DEVICE_KIND:
            path = self["device-file"] = self["device-file"] or default_device_file()
            try:
                self["device-key"] = device_key(path)
            except DeviceFileError as e:
                raise usage.UsageError(f"--device-file {e}") from None

    def credentials(self, players: Sequence[str], host: str) -> list[Auth | None]:
        """The `auth` of each of `players` ("": the user; else a bot's or a spectator's
        own name) at the server `host`: None (a guest), the i-th token, or the device its
        name derives from the key (vinom.client.lobby.device_auth)."""
        kind = self["auth"]
        if kind == GUEST_KIND:
            return [None] * len(players)
        if kind == DEVICE_KIND:
            return [device_auth(self["device-key"], host, who) for who in players]
        tokens = self["auth-token"]
        if len(tokens) < len(players):
            raise usage.UsageError(f"--auth {kind}: {len(players)} bots need a token each, "
                                   f"not {len(tokens)}")  # fmt: skip
        return [{"kind": kind, "token": token} for token in tokens[: len(players)]]


class ClientOptions(CommandOptions, SignInOptions):
    """Options shared by the commands that talk to a lobby: where it is, and how to sign in
    (`signed_in` gives each player's `auth` at the first lobby)."""

    def __init__(self) -> None:
        super().__init__()
        self["lobby"] = []
        self["trust"] = []

    # Twisted's --help prints an option method's docstring as it is: one line each.
    def opt_lobby(self, value: str) -> None:
        self["lobby"].append(value)

    opt_lobby.__doc__ = (
        f"The lobby to connect to, HOST:PORT (default {DEFAULT_LOBBY}). Several, repeated "
        "or comma-separated: a bot moves to the next when its lobby is lost."
    )
    opt_l = opt_lobby

    def opt_trust(self, value: str) -> None:
        self["trust"].append(value)

    opt_trust.__doc__ = (
        f"Certificate (PEM) to trust for the lobby's TLS; default {DEFAULT_TRUST} when it "
        "exists, else the platform's certificate authorities. Once for every lobby, or "
        "once per lobby in their order."
    )
    opt_t = opt_trust

    def postOptions(self) -> None:
        lobbies = parse_lobbies(self["lobby"] or [DEFAULT_LOBBY])
        trusts: list[str | None] = list(self["trust"])
        for trust in trusts:
            if trust is not None and not os.path.isfile(trust):
                raise usage.UsageError(f"--trust {trust!r}: no such file")
        if not trusts:
            trusts = [DEFAULT_TRUST if os.path.isfile(DEFAULT_TRUST) else None]
        if len(trusts) == 1:
            trusts = trusts * len(lobbies)
        elif len(trusts) != len(lobbies):
            raise usage.UsageError(
                f"--trust given {len(trusts)} times for {len(lobbies)} lobbies: give it once "
                "for all of them, or once per lobby in their order"
            )
        self["addresses"] = tuple(
            LobbyAddress(host, port, trust) for (host, port), trust in zip(lobbies, trusts,
                                                                             strict=True)
        )  # fmt: skip
        self["address"] = self["addresses"][0]
        self.check_sign_in()

    def signed_in(self, players: Sequence[str]) -> list[Auth | None]:
        # Each player's devices are the first lobby's: failover keeps the account.
        return self.credentials(players, self["address"].host)


# `--queue` of the commands that queue (play, bots).
QUEUE_OPTION = ["queue", None, NORMAL_QUEUE, f"The queue: {' or '.join(QUEUES)} (rated, on a "
                "server with authentication)."]


def check_queue(options: usage.Options) -> None:
    """--queue (QUEUE_OPTION) is a queue of the lobby's."""
    if options["queue"] not in QUEUES:
        raise usage.UsageError(f"--queue must be {' or '.join(QUEUES)}, not {options['queue']!r}")


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


class ReplayOptions(CommandOptions):
    synopsis = "<file> [--match ID] [--check] | --redis URL <match id> [--check] [--save FILE]"
    longdesc = (
        "Watch a match record (a game host appends its matches' records to record files, "
        "DATA_DIR/records/*.vrec; --match picks one, and without it a file of many lists "
        "them) in this terminal at the match's pace: space pauses, + and - change the speed, the "
        "arrow keys seek, q quits. Every state hash in the record is checked; a difference "
        "stops the replay and says at which tick. With --redis, the argument is a match id "
        "and its record is read from that Redis, where the game hosts of a server run with "
        "--redis copy each finished match's record (kept --limit record-redis-hours). See "
        "docs/client.md and docs/operations.md."
    )
    optFlags = [
        ["check", None, "Replay the whole record at once, print one line and exit: 0 if it "
         "replays exactly, 1 if not (or if it cannot be read)."],
    ]
    optParameters = [
        ["match", "m", None, "The match to replay of a record file holding many (without "
         "it, their list; with --check, every one is checked)."],
        ["redis", None, None, "Read the record of the match id given from this Redis "
         "(redis://, rediss:// or redis+sentinel://, as twistd vinom's --redis) at "
         "<prefix>record:<match id>."],
        ["redis-password-file", None, None, "With --redis: the file holding its password "
         "(default: $VINOM_REDIS_PASSWORD, else the URL's)."],
        ["redis-user", None, None, "With --redis: the Redis ACL user whose password that is "
         "(default: Redis's `default` user)."],
        ["redis-sentinel-password-file", None, None, "With a redis+sentinel:// --redis: the "
         "file holding the sentinels' password (default: $VINOM_REDIS_SENTINEL_PASSWORD)."],
        ["redis-ca-file", None, None, "With a rediss:// --redis: the CA certificate(s) that "
         "issued Redis's certificate (default: the system's)."],
        ["save", None, None, "With --redis: also write the record to this file (Redis keeps "
         "it --limit record-redis-hours only)."],
    ]

    def parseArgs(self, path: str | None = None) -> None:
        if path is None:
            raise usage.UsageError(
                "name the match, e.g. 'vinom replay --redis redis://10.0.0.5 m-8f3a0c2d'"
                if self["redis"] is not None else
                "name the record file, e.g. 'vinom replay vinom-data/records/X.vrec'"
            )  # fmt: skip
        self["path"] = path

    def postOptions(self) -> None:
        self["redis-settings"] = None
        if self["redis"] is not None and self["match"] is not None:
            raise usage.UsageError("--match is for a record file; with --redis, the argument "
                                   "is the match id")
        if self["redis"] is None:
            for name in ("redis-password-file", "redis-user", "redis-sentinel-password-file",
                         "redis-ca-file", "save"):  # fmt: skip
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} is for --redis, which is not given")
            return
        self["redis-settings"] = record_fleet().record_settings(self)


def _database(value: str) -> str:
    """`--database`, checked as twistd vinom checks it (a usage mistake: exit 2)."""
    from vinom.server.accounts import database_option

    return database_option("database", value)


class AccountCommandOptions(CommandOptions):
    """What every `vinom accounts` command takes: the database and the account."""

    optFlags = [["json", None, "Print the account as one JSON object."]]
    optParameters = [
        ["database", None, None, "The account database, as twistd vinom's --database: a SQLite "
         "file or a postgresql:// URL (default: DATA_DIR/accounts.sqlite3).", _database],
        ["data-dir", "d", "vinom-data", "The server's data directory (for the default database)."],
    ]  # fmt: skip
    synopsis = "COMMAND ACCOUNT"
    # The arguments after ACCOUNT, by name.
    more: tuple[str, ...] = ()

    def getSynopsis(self) -> str:
        return f"Usage: vinom accounts {self.synopsis}"

    def parseArgs(self, account: str | None = None, *more: str) -> None:
        from vinom.client.accounts import parse_identity

        if account is None or len(more) != len(self.more):
            raise usage.UsageError(f"usage: vinom accounts {self.synopsis}")
        if not account.startswith("a-") or ":" in account:
            _usage(parse_identity, account)
        self["account"] = account
        self.update(zip(self.more, more, strict=True))
        if "identity" in self:
            _usage(parse_identity, self["identity"])


def _usage(parse: Callable[[str], object], text: str) -> None:
    """`parse(text)`, its refusal a usage mistake (exit 2), as a word of the command line."""
    from vinom.accounts.records import InvalidValue

    try:
        parse(text)
    except InvalidValue as e:
        raise usage.UsageError(str(e)) from None


class AccountShowOptions(AccountCommandOptions):
    synopsis = "show ACCOUNT [--json]"


class AccountBanOptions(AccountCommandOptions):
    synopsis = "ban ACCOUNT --reason TEXT [--duration 7d]"
    optParameters = [
        *AccountCommandOptions.optParameters,
        ["reason", "r", None, "Why (shown to the player when they are refused; required)."],
        ["duration", None, None, "How long: 90s, 30m, 12h, 7d (default: for good)."],
    ]

    def postOptions(self) -> None:
        from vinom.client.accounts import parse_duration

        if not self["reason"]:
            raise usage.UsageError("a ban needs --reason")
        if self["duration"] is not None:
            _usage(parse_duration, self["duration"])


class AccountUnbanOptions(AccountCommandOptions):
    synopsis = "unban ACCOUNT"


class AccountLinkOptions(AccountCommandOptions):
    synopsis = "link ACCOUNT PROVIDER:SUBJECT"
    more = ("identity",)


class AccountUnlinkOptions(AccountCommandOptions):
    synopsis = "unlink ACCOUNT PROVIDER:SUBJECT"
    more = ("identity",)


class AccountsOptions(CommandOptions):
    synopsis = "<show|ban|unban|link|unlink> ACCOUNT [options]"
    longdesc = (
        "The account database's operator commands (docs/accounts.md). ACCOUNT is an "
        "account id (a-...) or an identity linked to it, PROVIDER:SUBJECT."
    )
    subCommands = [
        ["show", None, AccountShowOptions, "Show an account."],
        ["ban", None, AccountBanOptions, "Ban an account (refused at its next hello)."],
        ["unban", None, AccountUnbanOptions, "Lift an account's ban."],
        ["link", None, AccountLinkOptions, "Link one more identity to an account."],
        ["unlink", None, AccountUnlinkOptions, "Unlink an identity (not the last one)."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("name a command: show, ban, unban, link, unlink")


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


def replay_check_command(
    path: str, out: TextIO, err: TextIO, registry: GameRegistry | None = None,
    match_id: str | None = None,
) -> int:  # fmt: skip
    """`vinom replay --check FILE [--match ID]`: 0 if the record replays exactly (one
    line on `out`; one per match of a file of many when none is named)."""
    from vinom.client.replay import check_record

    games = registry if registry is not None else GameRegistry.from_plugins()
    return check_record(path, games.get, out, err, match_id)


def record_fleet() -> Any:
    """The installed fleet, which keeps the records `vinom replay --redis` reads
    (vinom.server.fleet); a usage error without one."""
    from vinom.server.fleet import find_fleet

    fleet = find_fleet()
    if fleet is None:
        raise usage.UsageError("--redis needs vinom's fleet, which is not installed "
                               "($VINOM_FLEET is none)")
    return fleet


def fetch_from_redis(reactor: Any, options: ReplayOptions, err: TextIO) -> Deferred[bytes]:
    """The record of `vinom replay --redis URL MATCH_ID`, written to --save's file too."""
    async def fetch() -> bytes:
        data = await record_fleet().fetch_record(reactor, options["redis-settings"],
                                                 options["path"])
        if options["save"] is not None:
            try:
                Path(options["save"]).write_bytes(data)
            except OSError as e:
                raise CommandError(f"--save {options['save']}: {e.strerror or e}") from None
            err.write(f"vinom: match {options['path']}: record saved to {options['save']} "
                      f"({len(data):,} bytes)\n")  # fmt: skip
        return data

    return Deferred.fromCoroutine(fetch())


def replay_redis_command(
    reactor: Any, options: ReplayOptions, out: TextIO, err: TextIO,
    registry: GameRegistry | None = None,
) -> int:
    """`vinom replay --redis URL MATCH_ID [--check]`: the record read from Redis, then
    watched (a terminal) or checked as a file's would be."""
    from vinom.client.replay import (
        ReplayError,
        check_loaded,
        error_line,
        parse_record,
        run_replay,
    )

    games = registry if registry is not None else GameRegistry.from_plugins()
    label = f"match {options['path']} (Redis)"
    if not options["check"]:
        return run_replay(reactor, label, games.get,
                          fetch=lambda: fetch_from_redis(reactor, options, err))  # fmt: skip
    status: list[int] = []

    def check(data: bytes) -> None:
        try:
            record, game = parse_record(label, data, games.get)
        except ReplayError as e:
            err.write(f"vinom: {e}\n")
            status.append(1)
            return
        status.append(check_loaded(label, record, game, out, err))

    def failed(failure: Failure) -> None:
        err.write(f"vinom: {error_line(cast(BaseException, failure.value))}\n")
        status.append(1)

    def run() -> None:
        d = fetch_from_redis(reactor, options, err)
        # `failed` hears a fault in the check as well as in the fetch: one line, status 1.
        d.addCallback(check)
        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    return status[0] if status else 1


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


async def accounts(reactor: Any, command: str, options: Any) -> int:
    """`vinom accounts COMMAND`: a refusal or a database that cannot be used is one line."""
    import sqlite3

    from vinom.accounts.records import AccountError, SchemaTooNew
    from vinom.client.accounts import accounts_command

    try:
        return await accounts_command(reactor, command, options, sys.stdout)
    except Exception as e:
        refused: tuple[type[Exception], ...] = (AccountError, SchemaTooNew, sqlite3.Error)
        # Loaded by then where --database is a postgresql:// URL (vinom's postgres extra).
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None:
            refused += (psycopg.Error,)
        if not isinstance(e, refused):
            raise
        raise CommandError(str(e).strip().splitlines()[0] if str(e).strip() else repr(e)) from e


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


if __name__ == "__main__":
    sys.exit(main())
