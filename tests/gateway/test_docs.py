"""docs/gateway.md's examples, kept true: its rule set and its commands.

The rule example is parsed by the gateway's own checks and routed by its own
router: a browser's page goes to the lobbies' web servers (which the doc's
lobby command starts in clear), native clients to the lobby ports, and every
backend is checked on `/ready`, the default. Every `twistd` command gives
its own `--pidfile` (a second twistd in one directory exits 1 without) and
only options that twistd and vinom know. tests/gateway/test_gateway_processes.py
runs a browser through the same rule example (`rule_example_for`).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.rules import DEFAULT_HEALTH_PATH, Backend, RuleSet, parse_rules
from vinom.gateway.sniff import Sniffed
from vinom.server.options import Options

GATEWAY_DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def _doc() -> str:
    return GATEWAY_DOC.read_text(encoding="utf-8")


def rule_example() -> dict[str, Any]:
    """The rule set of the doc's "Rules" section, as a JSON document."""
    section = _doc().split("\n## Rules\n", 1)[1]
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    return json.loads(block)  # type: ignore[no-any-return]


def rule_example_for(addresses: Mapping[str, str]) -> dict[str, Any]:
    """The doc's rule example with its addresses replaced (`{"10.0.0.11:7350":
    "127.0.0.1:40001", ...}`): every address of the example must be given one."""
    document = rule_example()
    for backend in document["backends"].values():
        for key in ("address", "health"):
            if key in backend:
                backend[key] = addresses[backend[key]]
    return document


def shell_commands() -> Iterator[list[str]]:
    """The words of each `twistd` command in the doc's `sh` blocks (continued lines
    joined, comments dropped)."""
    for block in re.findall(r"```sh\n(.*?)```", _doc(), re.S):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words[:1] == ["twistd"]:
                yield words


def _known(options: Any) -> set[str]:
    return {f"--{name.rstrip('=')}" for name in options.longOpt}


class RuleExampleTests(SynchronousTestCase):
    def rules(self) -> RuleSet:
        return parse_rules(rule_example())

    def pool(self, sniffed: Sniffed) -> str:
        pool = self.rules().pool_for(sniffed)
        assert pool is not None, sniffed
        return pool.name

    def test_a_browsers_page_files_and_lobby_go_to_the_web_servers(self) -> None:
        # A browser's GET / is plain HTTP: the lobbies' TLS ports cannot answer it.
        for path in ("/", "/app.js", "/lobby?realm=eu"):
            self.assertEqual(self.pool(Sniffed("http", path=path)), "web")

    def test_native_clients_go_to_the_lobby_ports_by_realm(self) -> None:
        self.assertEqual(self.pool(Sniffed("tls", alpn=("http/1.1",))), "lobbies")
        self.assertEqual(self.pool(Sniffed("tls", sni="play.eu.games.example.com")), "eu")
        self.assertEqual(self.pool(Sniffed("lobby", realm="us")), "us")
        self.assertEqual(self.pool(Sniffed("lobby")), "lobbies")

    def test_every_backend_is_checked_on_ready_the_default(self) -> None:
        self.assertEqual(DEFAULT_HEALTH_PATH, "/ready")
        self.assertEqual(Backend("b", "h", 1).health_path, DEFAULT_HEALTH_PATH)
        for backend in self.rules().backends.values():
            self.assertEqual((backend.name, backend.health_path), (backend.name, "/ready"))
        # What the doc says the default is.
        said = f"`health_path` (`{DEFAULT_HEALTH_PATH}`, the default"
        self.assertTrue(said in _doc(), f"docs/gateway.md does not say {said!r}")

    def test_the_lobby_command_listens_where_the_rule_example_sends(self) -> None:
        lobby = next(c for c in shell_commands() if "lobby.pid" in c and "--websocket" in c)
        given = dict(itertools.pairwise(lobby))
        backends = rule_example()["backends"]
        host, port = backends["a"]["address"].split(":")
        self.assertEqual(given["--lobby"], f"ssl:{port}")
        # The web server in clear: the gateway passes a browser's plain HTTP on.
        self.assertEqual(given["--websocket"], f"tcp:{backends['a-web']['address'].split(':')[1]}")
        health_host, health_port = backends["a"]["health"].split(":")
        self.assertEqual(given["--ops-port"], f"tcp:{health_port}:interface={health_host}")
        self.assertEqual(health_host, host)
        self.assertIn("--trusted-proxy", given)


class CommandTests(SynchronousTestCase):
    def test_every_twistd_command_gives_its_own_pidfile(self) -> None:
        commands = list(shell_commands())
        self.assertGreaterEqual(len(commands), 7)
        for words in commands:
            self.assertTrue(any(w == "--pidfile" or w.startswith("--pidfile=") for w in words),
                            " ".join(words))  # fmt: skip

    def test_every_option_is_one_twistd_or_vinom_knows(self) -> None:
        twistd = _known(ServerOptions())
        roles = {name: _known(command()) for name, _, command, _ in Options.subCommands}
        for words in shell_commands():
            at = words.index("vinom")
            for word in words[1:at]:
                if word.startswith("--"):
                    self.assertIn(word.split("=", 1)[0], twistd, " ".join(words))
            # The whole server's options, or the role's after its subcommand.
            role = words[at + 1] if len(words) > at + 1 and words[at + 1] in roles else None
            vinom = _known(Options()) if role is None else roles[role]
            for word in words[at + 1:]:
                if word.startswith("--"):
                    self.assertIn(word.split("=", 1)[0], vinom, " ".join(words))
