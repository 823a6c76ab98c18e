"""`twistd vinom` and its roles as an operator runs them: `twistd vinom` alone the whole
server, `twistd vinom lobby|host|gateway|relay` one role each with that role's options
alone (its `--help` lists them; an option of another role is one line), every one of
them started as a real process that answers `/ready`; each option defined in one group
and documented once, in that group's section of docs/operations.md; and the previous
release's spellings (`--role`, `--game-host`, `--host-workers 0`, `twistd vinom-relay`)
read as today's with a one-line hint."""

# slow: starts twistd processes and a redis-server

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from twisted.internet import reactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.server.test_ops import http_get
from tests.server.test_twistd import ROOT, RUN_TWISTD, Collect
from tests.support.http import capture_log
from tests.support.lobby_players import connect_player, connect_raw
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.redis_server import RedisServer
from tests.support.servers import RunningTwistd, start_twistd
from tests.support.waiting import until
from vinom.client.lobby import PROTOCOL
from vinom.fleet.options import GatewayCommand, RelayCommand
from vinom.server.options import (
    HostCommand,
    LobbyCommand,
    Options,
    groups,
    limits_of,
    role_options,
    with_fleet,
)

DOCS = Path(ROOT) / "docs"
HINT = "the old spelling goes in the next release"


def names_of(command: usage.Options) -> set[str]:
    """The long options a command takes, as its --help lists them."""
    return {name.rstrip("=") for name in command.longOpt}


def group_names(group: type) -> set[str]:
    """The options a group of vinom.server.options defines."""
    rows = [*getattr(group, "optParameters", ()), *getattr(group, "optFlags", ())]
    methods = [m[4:].replace("_", "-") for m in vars(group) if m.startswith("opt_")]
    return {row[0] for row in rows} | set(methods)


def limit_names(group: type) -> set[str]:
    """The limits (`--limit NAME=VALUE`) a group of vinom.server.options defines."""
    return {row[0] for row in getattr(group, "optLimits", ())}


def help_sections(text: str, line: re.Pattern[str]) -> dict[str, set[str]]:
    """The names `line` finds in a --help (or `--limit help`) text, under each title
    (a line at the margin ending in a colon) they follow; the description and the
    subcommands (after a blank line that no section follows) are not read."""
    sections: dict[str, set[str]] = {}
    title = None
    for row in text.splitlines():
        if re.fullmatch(r"[A-Z].*:", row) and row != "Commands:":
            title = row[:-1]
            sections[title] = set()
        elif title is not None and (found := line.match(row)):
            sections[title].add(found[1])
    return sections


def parse(*argv: str) -> usage.Options:
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


def key_file(case: SynchronousTestCase) -> str:
    path = os.path.abspath(case.mktemp())
    with open(path, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return path


def rules_file(case: SynchronousTestCase, address: str, health: str | None) -> str:
    """A gateway rule set (docs/gateway.md) sending every client to one backend."""
    backend = {"address": address, **({} if health is None else {"health": health})}
    path = os.path.abspath(case.mktemp())
    with open(path, "w") as f:
        json.dump({"backends": {"a": backend}, "pools": {"p": {"backends": ["a"]}},
                   "routes": [{"kind": "any", "pool": "p"}]}, f)  # fmt: skip
    return path


# An option's line in a --help text (not a wrapped line of another's text).
HELP_LINE = re.compile(r"^(?:  -\w, |      )--([a-z0-9-]+)", re.MULTILINE)
# The most options a role's --help may list (its --help and --version lines included).
MOST_OPTIONS = 40


class RoleOptionsTests(SynchronousTestCase):
    """Which options each command takes, from the groups that define them."""

    def test_each_option_is_defined_in_one_group(self) -> None:
        counts = Counter(name for group in groups()
                         for name in [*group_names(group), *limit_names(group)])  # fmt: skip
        self.assertEqual([name for name, n in counts.items() if n > 1], [])

    def test_each_role_takes_its_own_options_only(self) -> None:
        lobby, host = names_of(LobbyCommand()), names_of(HostCommand())
        gateway, relay, whole = (
            names_of(GatewayCommand()),
            names_of(RelayCommand()),
            names_of(Options()),
        )
        for name in ("lobby", "redis", "auth", "limit", "relay", "websocket", "ops-port"):
            self.assertIn(name, lobby)
        for name in ("udp-ports", "matches", "host-workers", "no-record", "agones", "gateway",
                     "relay-ports", "webtransport"):  # fmt: skip
            self.assertNotIn(name, lobby)
        for name in ("udp-ports", "matches", "record-dir", "agones", "placement", "websocket"):
            self.assertIn(name, host)
        for name in ("lobby", "auth", "frame-rate", "relay", "match-size", "gateway", "database"):
            self.assertNotIn(name, host)
        for name in ("gateway", "gateway-rules", "relay-ports", "relay-key-file", "redis"):
            self.assertIn(name, gateway)
        for name in ("lobby", "udp-ports", "auth", "websocket", "matches", "token-key-file"):
            self.assertNotIn(name, gateway)
        self.assertEqual(relay, {"relay-ports", "relay-interface", "relay-host-interface",
                                 "relay-idle-timeout", "relay-max-routes", "relay-key-file",
                                 "ops-port", "help", "version"})  # fmt: skip
        # The whole server is a lobby and a game host, on Redis or not; not a gateway,
        # nor a host under Agones (whose lobbies run apart).
        self.assertEqual(
            whole - {"help", "version"},
            (lobby | host) - {"help", "version", "agones", "agones-health-interval"},
        )
        for name in ("gateway", "relay-ports", "agones"):
            self.assertNotIn(name, whole)
        # Each role's limits are its groups': `--limit NAME=VALUE` takes those alone.
        limits = {command: set(limits_of(with_fleet(command)))
                  for command in (LobbyCommand, HostCommand, GatewayCommand, Options)}  # fmt: skip
        self.assertLessEqual({"frame-rate", "queue-burst", "auth-timeout", "drain-timeout",
                              "max-connections-per-ip"}, limits[LobbyCommand])  # fmt: skip
        self.assertLessEqual({"reconnect-grace", "record-max-mb", "agones-health-interval",
                              "max-connections-per-ip"}, limits[HostCommand])  # fmt: skip
        self.assertEqual(limits[GatewayCommand], {"drain-timeout", "sniff-limit", "sniff-timeout"})
        self.assertEqual(limits[LobbyCommand] & {"reconnect-grace", "record-max-mb"}, set())
        self.assertEqual(limits[HostCommand] & {"frame-rate", "auth-timeout"}, set())
        self.assertEqual(limits[Options], (limits[LobbyCommand] | limits[HostCommand])
                         - {"agones-health-interval"})  # fmt: skip

    def test_each_roles_help_lists_its_options_once(self) -> None:
        for command in (LobbyCommand, HostCommand, GatewayCommand, RelayCommand, Options):
            with self.subTest(command=command.__name__):
                text = str(command())
                self.assertEqual(Counter(HELP_LINE.findall(text)), Counter(names_of(command())))
        # Each role's --help lists at most MOST_OPTIONS lines of options.
        for command in (LobbyCommand, HostCommand, GatewayCommand, RelayCommand):
            with self.subTest(command=command.__name__):
                self.assertLessEqual(len(HELP_LINE.findall(str(command()))), MOST_OPTIONS)

    def test_the_role_comes_first(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--data-dir", "x", "lobby")
        self.assertEqual(
            str(e),
            "the role comes first and its options after it: twistd vinom "
            "lobby [options] (twistd vinom lobby --help lists them)",
        )

    def test_an_option_of_another_role_is_refused(self) -> None:
        for argv in (
            ("lobby", "--udp-ports", "7400-7401"),
            ("host", "--auth", "jwt"),
            ("gateway", "--lobby", "7350"),
            ("relay", "--redis", "redis://r"),
            ("lobby", "--reconnect-grace", "4"),
        ):
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertEqual(str(e), f"option {argv[1]} not recognized")


class LimitTests(SynchronousTestCase):
    """`--limit NAME=VALUE`: each of a role's limits and timings by name, each NAME checked
    as its own option was; a mistake is one line."""

    def test_a_limit_sets_its_value_and_the_others_keep_their_defaults(self) -> None:
        options = parse("--limit", "frame-rate=30", "--limit", "reconnect-grace=4",
                        "--limit", "frame-rate=45.5")  # fmt: skip
        self.assertEqual((options["frame-rate"], options["reconnect-grace"]), (45.5, 4.0))
        self.assertEqual((options["frame-burst"], options["max-connections-per-ip"]), (40, 32))
        self.assertEqual(options["recording"].max_age, 7 * 86400.0)

    def test_each_mistake_is_one_line(self) -> None:
        redis = ("--redis", "redis://127.0.0.1:1/0", "--token-key-file", key_file(self))
        cases = [
            (("--limit", "frame-rate=0"),
             "--limit frame-rate must be a number greater than 0, not '0'"),
            (("--limit", "max-connections= many"),
             "--limit max-connections must be a whole number, not 'many'"),
            (("--limit", "frame-rate"),
             "--limit must look like NAME=VALUE (drain-timeout=600), not 'frame-rate'"),
            (("--limit", "=3"), "--limit must look like NAME=VALUE (drain-timeout=600), not '=3'"),
        ]  # fmt: skip
        for argv, line in cases:
            with self.subTest(argv=argv):
                self.assertEqual(str(self.assertRaises(usage.UsageError, parse, *argv)), line)
        # A NAME the role does not take: its line names the role's limits.
        for argv, command, role in ((("--limit", "sniff-limit=1"), "twistd vinom", Options),
                                    (("host", *redis, "--limit", "frame-rate=30"),
                                     "twistd vinom host", HostCommand)):  # fmt: skip
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                name = argv[-1].partition("=")[0]
                names = ", ".join(limits_of(with_fleet(role)))
                self.assertEqual(str(e), f"--limit {name!r} is not a limit of {command}; its "
                                         f"limits: {names}")  # fmt: skip

    def test_limit_help_lists_each_name_its_default_and_meaning(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            e = self.assertRaises(SystemExit, parse, "gateway", "--limit", "help")
        self.assertEqual(e.code, 0)
        self.assertEqual(out.getvalue().splitlines()[:4], [
            "twistd vinom gateway --limit NAME=VALUE (repeatable); each NAME:",
            "The server: its data, logs, operations endpoint and drain:",
            "  drain-timeout=600",
            "      Seconds running matches may play on after SIGTERM before they are",
        ])  # fmt: skip
        for name in limits_of(with_fleet(GatewayCommand)):
            self.assertEqual(out.getvalue().count(f"\n  {name}="), 1)
        # Each under its group's title.
        sections = help_sections(out.getvalue(), re.compile(r"^  ([a-z0-9-]+)=", re.MULTILINE))
        self.assertEqual(sections, {group.title: limit_names(group) for group in groups()
                                    if issubclass(with_fleet(GatewayCommand), group)
                                    and limit_names(group)})  # fmt: skip


class OldSpellingTests(SynchronousTestCase):
    """The previous release's spellings: read as today's, each said in one log line."""

    def test_old_spellings_are_read_with_a_hint(self) -> None:
        key = key_file(self)
        redis = ("--redis", "redis://127.0.0.1:1/0", "--token-key-file", key)
        cases = [
            (("--role", "lobby", *redis), {"role": "lobby"},
             f"vinom: --role lobby is now twistd vinom lobby [options]; {HINT}"),
            (("--role=host", *redis), {"role": "host"},
             f"vinom: --role host is now twistd vinom host [options]; {HINT}"),
            # Options of other roles, which --role took and ignored, are ignored still.
            (("--role", "lobby", "--udp-ports", "7400-7401", "--no-record", "-g", "2",
              "--auth", "guest", *redis), {"role": "lobby", "auth": "guest"},
             (f"vinom: --role lobby is now twistd vinom lobby [options]; {HINT}",
              f"vinom: --role lobby ignores --udp-ports, --no-record, --max-games (not its "
              f"options; twistd vinom lobby refuses them); {HINT}")),
            (("--role", "all"), {"role": "all"},
             f"vinom: --role all is now twistd vinom [options], with no role; {HINT}"),
            (("--game-host", "process"), {"matches": "per-match"},
             f"vinom: --game-host process is now --matches per-match; {HINT}"),
            (("--game-host=workers", "--host-workers", "2"), {"matches": "workers",
                                                              "host-workers": 2},
             f"vinom: --game-host workers is now --matches workers; {HINT}"),
            (("--host-workers", "0"), {"matches": "here"},
             f"vinom: --host-workers 0 is now --matches here; {HINT}"),
            (("host", "--host-workers=0", *redis), {"role": "host", "matches": "here"},
             f"vinom: --host-workers 0 is now --matches here; {HINT}"),
            # Each limit and timing: `--limit NAME=VALUE`.
            (("--frame-rate", "30"), {"frame-rate": 30.0},
             f"vinom: --frame-rate 30 is now --limit frame-rate=30; {HINT}"),
            (("lobby", "--max-connections-per-ip=5", *redis), {"max-connections-per-ip": 5},
             f"vinom: --max-connections-per-ip 5 is now --limit max-connections-per-ip=5; "
             f"{HINT}"),
            (("host", "--record-keep-days", "2", *redis), {"record-keep-days": 2.0},
             f"vinom: --record-keep-days 2 is now --limit record-keep-days=2; {HINT}"),
            # With --role, another role's are ignored, as they were.
            (("--role", "lobby", "--frame-rate", "30", "--reconnect-grace", "4", *redis),
             {"role": "lobby", "frame-rate": 30.0},
             (f"vinom: --role lobby is now twistd vinom lobby [options]; {HINT}",
              f"vinom: --frame-rate 30 is now --limit frame-rate=30; {HINT}",
              f"vinom: --role lobby ignores --reconnect-grace (not its options; twistd vinom "
              f"lobby refuses them); {HINT}")),
        ]  # fmt: skip
        for argv, expected, hint in cases:
            with self.subTest(argv=argv):
                lines = capture_log(self)
                options = parse(*argv)
                self.assertEqual({name: options[name] for name in expected}, expected)
                hints = [hint] if isinstance(hint, str) else list(hint)
                self.assertEqual([line for line in lines if HINT in line], hints)

    def test_todays_spellings_say_nothing(self) -> None:
        lines = capture_log(self)
        options = parse("--matches", "workers", "--host-workers", "3")
        self.assertEqual((options["matches"], options["host-workers"]), ("workers", 3))
        self.assertEqual([line for line in lines if HINT in line], [])

    def test_a_wrong_old_spelling_names_the_new_one(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--role", "proxy")
        self.assertEqual(
            str(e),
            "--role must be one of all, lobby, host, gateway, not 'proxy' "
            "(a role is now a subcommand: twistd vinom "
            "lobby|host|gateway|relay [options])",
        )
        e = self.assertRaises(usage.UsageError, parse, "--game-host", "thread")
        self.assertIn("(it is now --matches workers|here|per-match)", str(e))


class DocumentedOnceTests(SynchronousTestCase):
    """docs/operations.md's options reference: one section per group, each option of the
    group one row of it, and no option twice."""

    def sections(self) -> dict[str, list[list[str]]]:
        text = (DOCS / "operations.md").read_text(encoding="utf-8")
        found: dict[str, list[list[str]]] = {}
        for match in re.finditer(r"^### (Options: [^\n]*)\n(.*?)(?=^#)", text, re.S | re.M):
            rows = [line.split("|")[1] for line in match.group(2).splitlines()
                    if line.startswith("| `")]  # fmt: skip
            found[match.group(1)] = [re.findall(r"`--([a-z0-9-]+)`", row) for row in rows]
        return found

    def test_each_group_is_documented_once_in_its_section(self) -> None:
        sections = self.sections()
        documented = Counter(name for rows in sections.values() for row in rows for name in row)
        self.assertEqual([name for name, n in documented.items() if n > 1], [])
        by_names = {frozenset(n for row in rows for n in row): title
                    for title, rows in sections.items()}  # fmt: skip
        for group in groups():
            with self.subTest(group=group.__name__):
                self.assertIn(frozenset(group_names(group)), by_names)
        self.assertEqual(len(sections), len(groups()))

    def test_each_limit_is_documented_once_with_its_default_and_commands(self) -> None:
        text = (DOCS / "operations.md").read_text(encoding="utf-8")
        section = text[text.index("### Limits and timings\n") :]
        section = section[: section.index("\n#")]
        commands = {"`vinom`": Options, "`lobby`": LobbyCommand, "`host`": HostCommand,
                    "`gateway`": GatewayCommand}  # fmt: skip
        rows: Counter[str] = Counter()
        for line in section.splitlines():
            if not line.startswith("| `"):
                continue
            cells = [cell.strip() for cell in line.split("|")[1:-1]]
            name = cells[0].strip("`")
            rows[name] += 1
            with self.subTest(limit=name):
                row = next(row for group in groups() for row in getattr(group, "optLimits", ())
                           if row[0] == name)  # fmt: skip
                default = f"{row[2]:g}" if isinstance(row[2], float) else str(row[2])
                self.assertEqual(cells[1], f"`{default}`")
                self.assertEqual(
                    cells[2],
                    ", ".join(
                        label
                        for label, command in commands.items()
                        if name in limits_of(with_fleet(command))
                    ),
                )
        self.assertEqual(rows, Counter(name for group in groups() for name in limit_names(group)))

    def test_the_relay_is_documented_with_the_gateway(self) -> None:
        # `twistd vinom relay`'s own table: docs/gateway.md, "UDP relay".
        guide = (DOCS / "gateway.md").read_text(encoding="utf-8")
        table = guide[guide.index("| option (relay) |") :]
        table = table[: table.index("\n\n")]
        for name in names_of(RelayCommand()) - {"help", "version"}:
            self.assertIn(f"| `--{name}` |", table)


class RoleProcessTests(TestCase):
    """Each command as a real `twistd -n vinom ...` process."""

    timeout = 120

    async def twistd(
        self, *argv: str, ready: bytes | None = None, plugin: str = "vinom"
    ) -> Collect:
        """`twistd -n PLUGIN ARGV` in a fresh directory; with `ready`, once it said that,
        else once it ended."""
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
        }
        process = Collect()
        transport = reactor.spawnProcess(
            process, sys.executable,
            [sys.executable, "-c", RUN_TWISTD, "-n", "--pidfile=", plugin, *argv],
            env=env, path=where,
        )  # fmt: skip

        async def stop() -> None:
            if not process.ended.called:
                transport.signalProcess("KILL")
            await process.ended

        self.addCleanup(stop)
        if ready is None:
            await process.ended
            return process

        def said() -> bool:
            self.assertFalse(process.ended.called, process.output.decode(errors="replace"))
            return ready in process.output

        await until(said, lambda: f"{ready!r} in {process.output!r}", 60, every=0.05)
        return process

    async def ready(self, ops: int) -> None:
        """Until the operations endpoint on `ops` answers /ready with 200."""
        answers: list[tuple[int, bytes]] = []

        async def answered() -> bool:
            answers.append(await http_get(f"http://127.0.0.1:{ops}/ready"))
            return answers[-1][0] == 200

        await until(answered, lambda: f"/ready on {ops}: {answers[-1:]}", 30, every=0.1)

    def ops(self) -> tuple[int, str]:
        port = free_tcp_port()
        return port, f"tcp:{port}:interface=127.0.0.1"

    async def test_every_role_starts_and_is_ready(self) -> None:
        redis = RedisServer(os.path.abspath(self.mktemp()))
        await redis.start()
        self.addCleanup(redis.stop)
        token_key, relay_key = key_file(self), key_file(self)
        cluster = ("--redis", redis.url, "--token-key-file", token_key)
        processes = []
        host_ops, host_ops_port = self.ops()
        udp = free_udp_range(2)
        processes.append((host_ops, await self.twistd(
            "host", *cluster, "--ops-port", host_ops_port, "--websocket", "none",
            "--udp-ports", f"{udp}-{udp + 1}", "--udp-interface", "127.0.0.1",
            "--matches", "here", "--data-dir", ".", ready=b"registered")))  # fmt: skip
        lobby_ops, lobby_ops_port = self.ops()
        lobby_port = free_tcp_port()
        processes.append((lobby_ops, await self.twistd(
            "lobby", *cluster, "--ops-port", lobby_ops_port, "--websocket", "none",
            "--lobby", f"ssl:{lobby_port}:interface=127.0.0.1", "--data-dir", ".",
            ready=b"vinom: lobby on")))  # fmt: skip
        # The gateway in front of that lobby: ready once it sees it ready.
        rules = rules_file(self, f"127.0.0.1:{lobby_port}", f"127.0.0.1:{lobby_ops}")
        gateway_ops, gateway_ops_port = self.ops()
        processes.append((gateway_ops, await self.twistd(
            "gateway", "--gateway-rules", rules, "--ops-port", gateway_ops_port,
            "--gateway", f"tcp:{free_tcp_port()}:interface=127.0.0.1", "--data-dir", ".",
            "--relay-ports", str(free_udp_range(1)), "--relay-interface", "127.0.0.1",
            "--relay-key-file", relay_key, ready=b"the gateway (every client kind)")))  # fmt: skip
        relay_ops, relay_ops_port = self.ops()
        processes.append((relay_ops, await self.twistd(
            "relay", "--relay-ports", str(free_udp_range(1)), "--relay-interface", "127.0.0.1",
            "--relay-key-file", relay_key, "--ops-port", relay_ops_port,
            ready=b"vinom relay: operations on")))  # fmt: skip
        whole_ops, whole_ops_port = self.ops()
        udp = free_udp_range(2)
        processes.append((whole_ops, await self.twistd(
            "--ops-port", whole_ops_port, "--websocket", "none",
            "--lobby", f"ssl:{free_tcp_port()}:interface=127.0.0.1",
            "--udp-ports", f"{udp}-{udp + 1}", "--udp-interface", "127.0.0.1",
            "--matches", "here", "--data-dir", ".", ready=b"terminal clients")))  # fmt: skip
        for ops, process in processes:
            await self.ready(ops)
            # Today's spellings: no hint, and nothing went wrong.
            self.assertNotIn(HINT.encode(), process.output)
            self.assertNotIn(b"Traceback", process.output)

    async def test_each_roles_help_lists_its_options(self) -> None:
        for role, command in (
            ("lobby", LobbyCommand),
            ("host", HostCommand),
            ("gateway", GatewayCommand),
            ("relay", RelayCommand),
        ):
            with self.subTest(role=role):
                process = await self.twistd(role, "--help")
                self.assertEqual(await process.ended, (0, None))
                text = process.output.decode()
                self.assertEqual(Counter(HELP_LINE.findall(text)), Counter(names_of(command())))
                if role in ("lobby", "host"):
                    self.assertLessEqual(len(HELP_LINE.findall(text)), MOST_OPTIONS)
                if role != "relay":
                    # Grouped by concern: each option under its group's title, the
                    # command's own first.
                    names = names_of(command())
                    wanted = {group.title: group_names(group) & names for group in groups()
                              if issubclass(with_fleet(command), group)
                              and group_names(group) & names}  # fmt: skip
                    own = names - {n for group in wanted.values() for n in group}
                    self.assertEqual(help_sections(text, HELP_LINE),
                                     {"Options": own, **wanted})  # fmt: skip
                    self.assertEqual(own, {"help", "limit", "version"})
        process = await self.twistd("lobby", "--help")
        self.assertNotIn(b"--udp-ports", process.output)
        self.assertIn(b"--redis-user", process.output)

    async def refused_past_one_connection(self, server: RunningTwistd) -> None:
        """That a second lobby connection from this address is refused, as one more past
        --limit max-connections-per-ip=1 is."""
        await connect_player(self, server.lobby, "ada")
        again = await connect_raw(self, server.lobby)
        again.sendLine(json.dumps({"type": "hello", "name": "bo", "protocol": PROTOCOL}).encode())
        refused = await again.when(lambda frame: True)
        self.assertEqual(refused.get("code"), "too_many_connections", refused)
        await again.closed

    async def test_a_limit_changes_what_a_real_lobby_allows(self) -> None:
        server = await start_twistd(self, {}, "--limit", "max-connections-per-ip=1")
        await self.refused_past_one_connection(server)
        self.assertNotIn(HINT.encode(), server.output)

    async def test_the_old_spelling_of_a_limit_still_works_with_a_hint(self) -> None:
        server = await start_twistd(self, {}, "--max-connections-per-ip", "1")
        await self.refused_past_one_connection(server)
        self.assertIn(f"vinom: --max-connections-per-ip 1 is now --limit "
                      f"max-connections-per-ip=1; {HINT}".encode(), server.output)  # fmt: skip

    async def test_a_bad_limit_is_one_line(self) -> None:
        cases = [
            (("lobby", "--limit", "frame-rate=0"),
             "vinom: --limit frame-rate must be a number greater than 0, not '0' (twistd vinom "
             "lobby --help lists the options)"),
            (("host", "--limit", "frame-rate=30"),
             f"vinom: --limit 'frame-rate' is not a limit of twistd vinom host; its limits: "
             f"{', '.join(limits_of(with_fleet(HostCommand)))} (twistd vinom host --help lists the "
             f"options)"),
        ]  # fmt: skip
        for argv, line in cases:
            with self.subTest(argv=argv):
                process = await self.twistd(*argv)
                self.assertEqual(await process.ended, (1, None))
                lines = process.output.decode().strip().splitlines()
                self.assertEqual(lines[-1], line)
                self.assertEqual([x for x in lines if "--limit" in x], [line])

    async def test_an_option_of_another_role_is_one_line(self) -> None:
        process = await self.twistd("lobby", "--udp-ports", "7400-7401")
        self.assertEqual(await process.ended, (1, None))
        self.assertEqual(process.output.decode().strip().splitlines()[-1],
                         "vinom: option --udp-ports not recognized (twistd vinom lobby --help "
                         "lists the options)")  # fmt: skip

    async def test_the_old_spellings_start_with_a_hint(self) -> None:
        rules = rules_file(self, f"127.0.0.1:{free_tcp_port()}", None)
        gateway = await self.twistd(
            "--role", "gateway", "--gateway", f"tcp:{free_tcp_port()}:interface=127.0.0.1",
            "--gateway-rules", rules, "--ops-port", "none", "--data-dir", ".",
            ready=b"the gateway (every client kind)")  # fmt: skip
        self.assertIn(f"vinom: --role gateway is now twistd vinom gateway [options]; "
                      f"{HINT}".encode(), gateway.output)  # fmt: skip
        relay = await self.twistd(
            "--relay-ports", str(free_udp_range(1)), "--relay-interface", "127.0.0.1",
            "--relay-key-file", key_file(self), "--ops-port", "none",
            ready=b"vinom relay: players send to", plugin="vinom-relay")  # fmt: skip
        self.assertIn(f"vinom: twistd vinom-relay is now twistd vinom relay; {HINT}".encode(),
                      relay.output)  # fmt: skip
