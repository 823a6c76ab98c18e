"""`twistd vinom`'s command line: every option, its default and its check.

The options are grouped by concern, each group a small mixin of `optParameters`
(and `optFlags`, `opt_` methods) defined once in vinom.server.option_groups
(`ServerOptions`, `LobbyOptions`, `HostingOptions`, ...); each role here composes
the groups it takes, and the
installed fleet (vinom.server.fleet) adds its own (`--redis`, ...) when the
role's options are made: `twistd vinom` alone runs lobby and game hosts in one
process (`Options`), and the fleet's subcommands run one role each (`twistd
vinom lobby`, `host`, `gateway`, `relay`: `subcommands()`), with only that
role's options. Each option's own check is its coerce column
(vinom.server.checks); `RoleOptions.postOptions` checks what depends on more
than one option and adds what is derived from them (`udp-port-range`,
`token-key`, `shared`, `game-registry`, `game-url`, ...). The spellings of
the release before (`--role ROLE`, `--game-host`, `--host-workers 0`, `--NAME
VALUE` for a limit) are read as the new ones with a one-line hint
(`modern_argv`). A group's limits and timings (`optLimits`: rates, bursts,
sizes, timeouts) are not options of their own but NAMEs of one repeatable
`--limit NAME=VALUE` (`RoleOptions.opt_limit`), so that each role's `--help`
stays short; each value is still found under its NAME. Nothing here listens or
starts: the roles (vinom.server.roles) do.
"""


import os
from collections.abc import Collection
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.logger import Logger
from twisted.python import usage

from vinom.hosting.records import RecordSettings
from vinom.hosting.spectators import SpectatorSettings
from vinom.net.origins import OriginPolicy, page_origins
from vinom.server.accounts import database_url
from vinom.server.auth import auth_settings
from vinom.server.checks import (
    check_certificate,
    game_url,
    match_size_overrides,
    needs_extra,
    offered_games,
    parse_port_range,
    rating_windows,
    read_token_key,
)
from vinom.server.endpoints import LISTENER_OPTIONS, PROXIED_KIND, description_of, endpoint_port
from vinom.server.fleet import find_fleet
from vinom.server.help_text import grouped_usage, limits_help, shown
from vinom.server.logs import LOG_FORMATS
from vinom.server.option_groups import (
    MATCHES,
    AuthOptions,
    CertificateOptions,
    GameOptions,
    HostingOptions,
    LobbyOptions,
    OptionGroup,
    RecordOptions,
    RelayKeyOptions,
    ServerOptions,
    WebOptions,
)
from vinom.server.startup import PluginOptions, read_secret, warn_if_readable

# The previous release's spellings, read as today's with a one-line hint (`modern_argv`).
OLD_GAME_HOST = {"workers": "workers", "process": "per-match"}
ROLE_SUBCOMMANDS = ("lobby", "host", "gateway", "relay")
# The roles a fleet adds option groups to (`IFleet.option_groups`).
FLEET_ROLES = ("all", "lobby", "host", "gateway")

_log = Logger()




# The core's groups, in the order of the options reference (docs/operations.md, "Options");
# `groups()` adds the fleet's.
GROUPS: tuple[type, ...] = (
    ServerOptions, CertificateOptions, GameOptions, WebOptions, LobbyOptions,
    RelayKeyOptions, AuthOptions, HostingOptions, RecordOptions,
)  # fmt: skip


def groups() -> tuple[type, ...]:
    """Every group: the core's, then those the installed fleet adds (to any role)."""
    fleet = find_fleet()
    if fleet is None:
        return GROUPS
    added: list[type] = []
    for role in FLEET_ROLES:
        added += [g for g in fleet.option_groups(role) if g not in added]
    return (*GROUPS, *added)


def subcommands() -> list[list[Any]]:
    """`twistd vinom`'s subcommands: the installed fleet's roles (none without one)."""
    fleet = find_fleet()
    return [] if fleet is None else fleet.subcommands()
# Options given more than once, each a list of its values.
REPEATABLE = ("match-size", "rating-window", "no-record-game", "auth-option")


def groups_of(command: type) -> list[type[OptionGroup]]:
    """The option groups a command takes, in the order of the options reference."""
    return [g for g in groups() if issubclass(g, OptionGroup) and issubclass(command, g)]


def limits_of(command: type) -> dict[str, list[Any]]:
    """The limits and timings a command takes as `--limit NAME=VALUE`: the `optLimits`
    rows of its groups, by name, in the order of the options reference."""
    return {row[0]: row for group in groups_of(command)
            for row in getattr(group, "optLimits", ())}  # fmt: skip


def _defaults() -> dict[str, Any]:
    """Every option's default: a role's options it does not take hold these, so that the
    checks and the role builders (vinom.server.roles) read one dict for every role."""
    values: dict[str, Any] = {}
    for group in groups():
        for row in [*getattr(group, "optParameters", ()), *getattr(group, "optLimits", ())]:
            values[row[0]] = row[2]
        for row in getattr(group, "optFlags", ()):
            values[row[0]] = 0
    return values


def modern_argv(
    argv: list[str], roles: bool = False, limits: Collection[str] = ()
) -> list[str]:
    """`argv` with the previous release's spellings read as today's, each said in one
    hint line: `--game-host workers|process` (`--matches workers|per-match`),
    `--host-workers 0` (`--matches here`), `--NAME VALUE` for each of `limits`
    (`--limit NAME=VALUE`) and, with `roles` (`twistd vinom`'s own arguments, before
    any subcommand), `--role ROLE` (the subcommand `ROLE`)."""
    roles = roles and not (argv and argv[0] in ROLE_SUBCOMMANDS)
    out: list[str] = []
    role = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        name, eq, value = arg.partition("=")
        old_limit = name[2:] if name.startswith("--") and name[2:] in limits else None
        if (old_limit is None and name not in ("--game-host", "--host-workers")
                and not (roles and name == "--role")):  # fmt: skip
            out.append(arg)
            i += 1
            continue
        if not eq:
            if i + 1 == len(argv):
                out.append(arg)  # getopt says it needs a value
                break
            value = argv[i + 1]
            i += 1
        i += 1
        if old_limit is not None:
            new = ["--limit", f"{old_limit}={value}"]
        elif name == "--host-workers":
            if value.strip() != "0":
                out += [name, value]
                continue
            new = ["--matches", "here"]
        elif name == "--game-host":
            if value not in OLD_GAME_HOST:
                raise usage.UsageError(f"--game-host must be one of workers, process, not "
                                       f"{value!r} (it is now --matches "
                                       f"{'|'.join(MATCHES)})")  # fmt: skip
            new = ["--matches", OLD_GAME_HOST[value]]
        else:
            if value not in ("all", *ROLE_SUBCOMMANDS[:3]):
                raise usage.UsageError(f"--role must be one of all, lobby, host, gateway, not "
                                       f"{value!r} (a role is now a subcommand: twistd vinom "
                                       f"{'|'.join(ROLE_SUBCOMMANDS)} [options])")  # fmt: skip
            role, new = value, []
        now = (f"twistd vinom {value} [options]" if name == "--role" and value != "all"
               else "twistd vinom [options], with no role" if name == "--role"
               else f"--limit {old_limit}={value}" if old_limit is not None
               else " ".join(new))  # fmt: skip
        _log.warn("vinom: {old} {value} is now {now}; the old spelling goes in the next release",
                  old=name, value=value, now=now)  # fmt: skip
        out += new
    if role is not None and role != "all":
        out = [role, *_without_others(out, role)]
    return out


def _command(role: str) -> type:
    """The options class of the subcommand `role`."""
    command: type | None = next((row[2] for row in subcommands() if row[0] == role), None)
    if command is None:
        raise usage.UsageError(f"--role {role}: no fleet is installed that runs it "
                               "(vinom.server.fleet), only the whole server")
    return with_fleet(command)


def _old_role(argv: list[str]) -> str | None:
    """The ROLE of the previous release's `--role ROLE` in `argv`, if given."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--role="):
            return arg.partition("=")[2]
        if arg == "--role" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _without_others(argv: list[str], role: str) -> list[str]:
    """`argv` without the options of other roles, which `--role ROLE` took and ignored
    (said in one hint line): `twistd vinom ROLE` refuses them."""
    command = _command(role)
    takes = {name.rstrip("=") for name in command().longOpt}
    # Every option the whole server or a role takes, and whether it takes a value.
    values: dict[str, bool] = {}
    shorts: dict[str, str] = {}
    for group in groups():
        for rows, value in ((getattr(group, "optParameters", ()), True),
                            (getattr(group, "optLimits", ()), True),
                            (getattr(group, "optFlags", ()), False)):  # fmt: skip
            for row in rows:
                values[row[0]] = value
                if row[1]:
                    shorts[f"-{row[1]}"] = row[0]
        for method in vars(group):
            if method.startswith("opt_"):
                values[method[4:].replace("_", "-")] = True
    kept: list[str] = []
    ignored: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            kept.extend(argv[i:])
            break
        name, eq, _ = arg.partition("=")
        option = name[2:] if name.startswith("--") else shorts.get(name)
        if option is None or option not in values or option in takes:
            kept.append(arg)
            i += 1
            continue
        ignored.append(f"--{option}")
        i += 1 if eq or not values[option] else 2
    if ignored:
        _log.warn("vinom: --role {role} ignores {options} (not its options; twistd vinom "
                  "{role} refuses them); the old spelling goes in the next release",
                  role=role, options=", ".join(ignored))  # fmt: skip
    return kept


class _Subcommands:
    """`Options.subCommands`, on the class or an instance: the installed fleet's, read when
    asked (`subcommands()`); none (no attribute, for usage.Options) without a fleet."""

    def __get__(self, instance: object, owner: type | None = None) -> list[list[Any]]:
        found = subcommands()
        if not found:
            raise AttributeError("subCommands")
        return found


class _Synopsis:
    """`Options.synopsis`: the subcommands there are named in it."""

    def __get__(self, instance: object, owner: type | None = None) -> str:
        names = "|".join(row[0] for row in subcommands())
        return f"[options] | {names} [options]" if names else "[options]"


_composed: dict[tuple[type, type], type] = {}


def with_fleet(cls: type) -> type:
    """`cls` (a role's options) with the option groups the installed fleet adds to its role."""
    fleet = find_fleet()
    if fleet is None or cls.__dict__.get("_with_fleet"):
        return cls
    role: str = getattr(cls, "role")  # noqa: B009 (a RoleOptions subclass, defined below)
    extra = tuple(g for g in fleet.option_groups(role) if not issubclass(cls, g))
    if not extra:
        return cls
    key = (cls, type(fleet))
    if key not in _composed:
        _composed[key] = type(cls.__name__, (cls, *extra), {
            "_with_fleet": True, "__module__": cls.__module__, "__doc__": cls.__doc__,
            "__qualname__": cls.__qualname__})  # fmt: skip
    return _composed[key]


class RoleOptions(PluginOptions):
    """The checks every role's options go through: what the coerce column cannot check
    alone. A role's own class composes the groups of options it takes."""

    # What `options["role"]` says to the role builders (vinom.server.roles).
    role = "all"
    # Set on the class `with_fleet` makes: it has the fleet's groups already.
    _with_fleet = False

    def __new__(cls, *args: Any, **kwargs: Any) -> "RoleOptions":
        # The role's class with the installed fleet's groups mixed in: the groups usage.Options
        # reads from the class, found when the options are made (no fleet: the class itself).
        return super().__new__(with_fleet(cls))

    def __init__(self) -> None:
        super().__init__()
        # An `opt_` method's docstring as one line: its indentation is no text of --help's.
        self.docs = {name: " ".join(doc.split()) for name, doc in self.docs.items()}
        for name in REPEATABLE:
            self[name] = []
        # Each limit holds its default until `--limit NAME=VALUE` sets it.
        self.limits = limits_of(type(self))
        for name, row in self.limits.items():
            self[name] = self.defaults[name] = row[2]

    def read_argv(self, argv: list[str]) -> list[str]:
        return modern_argv(argv, limits=self.limits)

    def opt_limit(self, value: str) -> None:
        """One of this role's limits and timings, NAME=VALUE (repeatable); `--limit
        help` lists each NAME, its default and its meaning (docs/operations.md,
        Limits and timings)."""
        if value.strip() == "help":
            print(limits_help(self.command_name(), groups_of(type(self))))
            raise SystemExit(0)
        name, sep, text = value.partition("=")
        name = name.strip()
        if not sep or not name:
            example, first = next(iter(self.limits.items()))
            raise usage.UsageError(f"--limit must look like NAME=VALUE "
                                   f"({example}={shown(first[2])}), not {value!r}")  # fmt: skip
        row = self.limits.get(name)
        if row is None:
            raise usage.UsageError(
                f"--limit {name!r} is not a limit of {self.command_name()}; its limits: "
                f"{', '.join(self.limits)}"
            )
        self[name] = row[4](text.strip())

    def getUsage(self, width: int | None = None) -> str:
        if hasattr(self, "subOptions"):
            return super().getUsage(width)
        return grouped_usage(self, groups_of(type(self)), width)

    def command_name(self) -> str:
        """This role's command: `twistd vinom` or `twistd vinom ROLE`."""
        return "twistd vinom" + ("" if self.role == "all" else f" {self.role}")

    compData = usage.Completions(
        optActions={
            "certificate": usage.CompleteFiles("*.pem"),
            "private-key": usage.CompleteFiles("*.pem"),
            "data-dir": usage.CompleteDirs(),
            "log-format": usage.CompleteList(list(LOG_FORMATS)),
        }
    )

    def postOptions(self) -> None:
        """What the coerce column cannot check alone: options that depend on each other.
        The options of other roles hold their defaults first: one dict for every role."""
        if isinstance(self.parent, Options):
            self.parent.check_role_first()
        self["role"] = self.role
        for name, value in _defaults().items():
            self.setdefault(name, value)
        self._check_listeners()
        low, high = self["udp-port-range"] = parse_port_range(self["udp-ports"])
        pool = high - low + 1
        if self["max-games"] is None:
            self["max-games"] = pool
        elif self["max-games"] > pool:
            raise usage.UsageError(
                f"--max-games {self['max-games']} is larger than the UDP port range "
                f"{low}-{high} ({pool} ports): every game needs a port of its own"
            )
        cert, key = self["certificate"], self["private-key"]
        if (cert is None) != (key is None):
            raise usage.UsageError("--certificate and --private-key go together: give both")
        if cert is not None and key is not None:
            check_certificate(cert, key)
        self["token-key"] = (
            None if self["token-key-file"] is None else read_token_key(self["token-key-file"])
        )
        self._check_relay()
        self._check_shared()
        self["database-url"] = database_url(self)
        if self["host-workers"] is None:
            self["host-workers"] = max(1, (os.cpu_count() or 1) - 1)
        self["ops-token"] = (
            None if self["ops-token-file"] is None
            else read_secret("--ops-token-file", self["ops-token-file"])
        )  # fmt: skip
        self["game-registry"] = offered_games(self["games"])
        self["match-sizes"] = dict(self["match-size"])
        if self["match-sizes"]:
            match_size_overrides(self["game-registry"], self["match-sizes"])
        self["rating-windows"] = rating_windows(
            self["game-registry"], dict(self["rating-window"])
        )
        self._check_websocket()
        if self["webtransport"] is not None:
            needs_extra("--webtransport", "webtransport", "qh3")
        if self["webtransport"] is not None and self["websocket"] is None:
            raise usage.UsageError("--webtransport needs --websocket: the page learns of it "
                                   "from the web server, and it admits /game's tokens")  # fmt: skip
        if self["webtransport"] is not None and low <= self["webtransport"] <= high:
            raise usage.UsageError(
                f"--webtransport {self['webtransport']} is inside --udp-ports {low}-{high}, "
                "whose ports the game hosts give to matches: choose a port outside the range"
            )
        self["auth-plugin"], self["auth-settings"] = auth_settings(self)
        unknown = [g for g in self["no-record-game"] if g not in self["game-registry"].names()]
        if unknown:
            raise usage.UsageError(
                f"--no-record-game {unknown[0]!r} is not a game this server offers"
            )
        self["spectators"] = SpectatorSettings(
            delay=self["spectator-delay"], max_per_match=self["max-spectators"]
        )
        records = self["record-dir"] or os.path.join(self["data-dir"], "records")
        if not self["no-record"] and os.path.exists(records) and not os.path.isdir(records):
            raise usage.UsageError(
                f"--record-dir {records!r} is a file, not a directory; name a directory "
                "with --record-dir (or record nothing with --no-record)"
            )
        if not self["no-record"]:
            # Records hold each match's seed: written 0600 in a directory made 0700; one
            # the operator made looser is theirs to tighten, and said so.
            warn_if_readable("--record-dir", records)
        self["recording"] = RecordSettings(
            directory=records,
            enabled=not self["no-record"],
            games_off=frozenset(self["no-record-game"]),
            hash_every=self["record-hash-every"],
            max_age=self["record-keep-days"] * 86400.0,
            max_bytes=int(self["record-max-mb"] * 1024 * 1024),
        )
        self["game-url"] = game_url(self["public-web-url"], self["websocket"],
                                    self["public-host"])  # fmt: skip

    def _check_relay(self) -> None:
        """A lobby's --relay: the UDP relay it sends its players through, and its key."""
        if (self["relay"] is None) != (self["relay-key-file"] is None):
            raise usage.UsageError("--relay and --relay-key-file go together: give both")
        self["relay-key"] = (
            None if self["relay-key-file"] is None
            else read_token_key(self["relay-key-file"], "--relay-key-file")
        )  # fmt: skip
        if self["relay"] is not None and self["role"] == "all" and not (
            isIPAddress(self["public-host"]) or isIPv6Address(self["public-host"])
        ):
            raise usage.UsageError(
                f"--relay: the game hosts behind it announce an IP address, not "
                f"--public-host {self['public-host']!r}: the route token carries an address"
            )

    def _check_shared(self) -> None:
        """What the processes share (`shared`: None, this process runs whole), and the
        rest of the installed fleet's options: its checks (vinom.server.fleet)."""
        self["shared"] = None
        fleet = find_fleet()
        if fleet is not None:
            fleet.check(self)

    def _check_listeners(self) -> None:
        """Each listener's description, its short forms read (vinom.server.endpoints)."""
        for option in LISTENER_OPTIONS:
            if option in self:  # the gateway's is the fleet's
                self[option] = description_of(option, self[option])
        for option in ("lobby", "websocket"):
            wraps = (self[option] or "").partition(":")[0].lower() == PROXIED_KIND
            if wraps and self["trusted-proxy"]:
                raise usage.UsageError(f"--trusted-proxy and a {PROXIED_KIND}: --{option} "
                                       "both say which proxies to trust: give one")  # fmt: skip

    def _check_websocket(self) -> None:
        web = self["websocket"]
        if web is None:
            self["websocket-origin-policy"] = None
            return
        if self["websocket-origins"] is None:
            port = endpoint_port(web)
            hosts = ("localhost", "127.0.0.1", self["public-host"])
            origins = page_origins(hosts, port) if port else ()
        else:
            origins = tuple(self["websocket-origins"].split(","))
        try:
            self["websocket-origin-policy"] = OriginPolicy.from_list(origins)
        except ValueError as e:
            raise usage.UsageError(f"--websocket-origins: {e}") from None


class LobbyCommand(RoleOptions, ServerOptions, CertificateOptions, GameOptions,
                   WebOptions, LobbyOptions, RelayKeyOptions, AuthOptions):  # fmt: skip
    """`twistd vinom lobby`: a lobby of a cluster (docs/scaling.md), a fleet's subcommand."""

    role = "lobby"
    synopsis = "[options]"
    longdesc = (
        "Runs a lobby of a cluster: it serves players, forms matches and places them on the "
        "game hosts it finds in Redis (--redis). It hosts no game."
    )


class HostCommand(RoleOptions, ServerOptions, CertificateOptions, GameOptions,
                  WebOptions, HostingOptions, RecordOptions):  # fmt: skip
    """`twistd vinom host`: a game host of a cluster (docs/scaling.md), a fleet's subcommand."""

    role = "host"
    synopsis = "[options]"
    longdesc = (
        "Runs a game host of a cluster: it registers in Redis (--redis) and runs the matches "
        "the lobbies place on it, on its UDP ports and its web server's /game."
    )


class Options(RoleOptions, ServerOptions, CertificateOptions, GameOptions,
              WebOptions, LobbyOptions, RelayKeyOptions, AuthOptions, HostingOptions,
              RecordOptions):  # fmt: skip
    """Options of `twistd vinom`: the whole server in one process, or with a subcommand
    one role of a cluster with that role's options alone; every value is checked before
    anything listens."""

    synopsis = _Synopsis()
    longdesc = (
        "Runs a vinom game server: a TLS lobby where players say hello and queue, "
        "a matchmaker, and game hosts on a bounded range of UDP ports. With no "
        "certificate given, a self-signed certificate for localhost is made in the "
        "data directory on first start and reused afterwards. A subcommand runs one "
        "role of a cluster instead (docs/scaling.md), with that role's options after it."
    )
    subCommands = _Subcommands()

    # The arguments as read (`modern_argv`): a subcommand's role checks it comes first.
    given: list[str] = []

    def read_argv(self, argv: list[str]) -> list[str]:
        # The old spellings of the limits of the role the arguments run (after a
        # subcommand, its own options read them).
        limits: Collection[str] = ()
        if not (argv and argv[0] in ROLE_SUBCOMMANDS):
            role = _old_role(argv)
            limits = limits_of(with_fleet(Options) if role not in ROLE_SUBCOMMANDS
                               else _command(role))
        self.given = modern_argv(argv, roles=True, limits=limits)
        return self.given

    def postOptions(self) -> None:
        # With a subcommand, its options are the process's (`role_options`), checked.
        if self.subCommand is None:
            super().postOptions()
        else:
            self.check_role_first()

    def check_role_first(self) -> None:
        """That no option came before the subcommand (it would be the whole server's)."""
        if self.given[:1] != [self.subCommand]:
            raise usage.UsageError(
                f"the role comes first and its options after it: twistd vinom "
                f"{self.subCommand} [options] (twistd vinom {self.subCommand} --help lists them)"
            )


def role_options(options: usage.Options) -> usage.Options:
    """The options of the role a parsed `twistd vinom` command line runs: its
    subcommand's, or its own (the whole server in one process)."""
    if options.subCommand is None:
        return options
    sub: usage.Options = options.subOptions
    return sub
