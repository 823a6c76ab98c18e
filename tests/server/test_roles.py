"""`twistd vinom` and its roles as an operator runs them: `twistd vinom` alone the whole
server, `twistd vinom lobby|host|gateway|relay` one role each with that role's options
alone (its `--help` lists them; an option of another role is one line), every one of
them started as a real process that answers `/ready`; each option defined in one group
and documented once, in that group's section of docs/operations.md; and the previous
release's spellings (`--role`, `--game-host`, `--host-workers 0`, `twistd vinom-relay`)
read as today's with a one-line hint."""

# slow: starts twistd processes and a redis-server

from __future__ import annotations

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
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.redis_server import RedisServer
from tests.support.waiting import until
from vinom.fleet.options import GatewayCommand, RelayCommand
from vinom.server.options import HostCommand, LobbyCommand, Options, groups, role_options

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


class RoleOptionsTests(SynchronousTestCase):
    """Which options each command takes, from the groups that define them."""

    def test_each_option_is_defined_in_one_group(self) -> None:
        counts = Counter(name for group in groups() for name in group_names(group))
        self.assertEqual([name for name, n in counts.items() if n > 1], [])

    def test_each_role_takes_its_own_options_only(self) -> None:
        lobby, host = names_of(LobbyCommand()), names_of(HostCommand())
        gateway, relay, whole = names_of(GatewayCommand()), names_of(RelayCommand()), names_of(
            Options())
        for name in ("lobby", "redis", "auth", "frame-rate", "relay", "websocket", "ops-port"):
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
        self.assertEqual(whole - {"help", "version"},
                         (lobby | host) - {"help", "version", "agones", "agones-health-interval"})
        for name in ("gateway", "relay-ports", "sniff-limit", "agones"):
            self.assertNotIn(name, whole)

    def test_each_roles_help_lists_its_options_once(self) -> None:
        for command in (LobbyCommand, HostCommand, GatewayCommand, RelayCommand, Options):
            with self.subTest(command=command.__name__):
                text = str(command())
                self.assertEqual(Counter(HELP_LINE.findall(text)), Counter(names_of(command())))
        # The gateway and the relay list fewer than 40; the lobby and the game host all
        # theirs, far fewer than the whole server's.
        self.assertLessEqual(len(names_of(GatewayCommand())), 40)
        self.assertLessEqual(len(names_of(RelayCommand())), 40)
        for command in (LobbyCommand, HostCommand):
            self.assertLess(len(names_of(command())), len(names_of(Options())) - 25)

    def test_the_role_comes_first(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--data-dir", "x", "lobby")
        self.assertEqual(str(e), "the role comes first and its options after it: twistd vinom "
                                 "lobby [options] (twistd vinom lobby --help lists them)")

    def test_an_option_of_another_role_is_refused(self) -> None:
        for argv in (("lobby", "--udp-ports", "7400-7401"), ("host", "--auth", "jwt"),
                     ("gateway", "--lobby", "7350"), ("relay", "--redis", "redis://r")):
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertEqual(str(e), f"option {argv[1]} not recognized")


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
        self.assertEqual(str(e), "--role must be one of all, lobby, host, gateway, not 'proxy' "
                                 "(a role is now a subcommand: twistd vinom "
                                 "lobby|host|gateway|relay [options])")
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

    def test_the_relay_is_documented_with_the_gateway(self) -> None:
        # `twistd vinom relay`'s own table: docs/gateway.md, "UDP relay".
        guide = (DOCS / "gateway.md").read_text(encoding="utf-8")
        table = guide[guide.index("| option (relay) |"):]
        table = table[:table.index("\n\n")]
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
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH",
                                                                                   "")])}
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
        for role, command in (("lobby", LobbyCommand), ("host", HostCommand),
                              ("gateway", GatewayCommand), ("relay", RelayCommand)):
            with self.subTest(role=role):
                process = await self.twistd(role, "--help")
                self.assertEqual(await process.ended, (0, None))
                text = process.output.decode()
                self.assertEqual(Counter(HELP_LINE.findall(text)), Counter(names_of(command())))
        process = await self.twistd("lobby", "--help")
        self.assertNotIn(b"--udp-ports", process.output)
        self.assertIn(b"--redis-user", process.output)

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
