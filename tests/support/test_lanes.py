"""The fast lane (tests/support/lanes.py): which modules it leaves out, and its guard."""

# slow: starts child processes (the fast lane's guard)

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase

from tests.support.lanes import ChildProcessInFastLane, fast, forbid_child_processes, test_modules
from tests.support.lanes import without as every_module_without


def checkout(case: TestCase, files: dict[str, str]) -> Path:
    """A tests/ folder holding only these files (paths relative to the checkout)."""
    root = Path(case.mktemp())
    for name, source in {"tests/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root / "tests"


SLOW = '''"""Starts Redis."""

# slow: starts Redis
import os
'''


class MarkTests(TestCase):
    def test_a_module_is_slow_when_it_says_so_under_its_docstring(self) -> None:
        tests = checkout(self, {
            "tests/test_top.py": '"""Plain."""\nimport os\n',
            "tests/store/test_store.py": SLOW,
            "tests/store/helper.py": SLOW,  # not a test module
            "tests/store/test_quoted.py": '"""Says #slow: in a line of its own, indented."""\n'
                                          'TEXT = """\n  # slow: no\n"""\n',
        })  # fmt: skip
        self.assertEqual(test_modules(tests), {
            "tests.store.test_quoted": None,
            "tests.store.test_store": "starts Redis",
            "tests.test_top": None,
        })  # fmt: skip
        self.assertEqual(fast(tests), ["tests.store.test_quoted", "tests.test_top"])

    def test_the_suites_own_slow_modules_are_marked(self) -> None:
        modules = test_modules()
        self.assertEqual(modules["tests.cluster.test_redis"],
                         "starts Redis (tests/support/redis_server.py)")  # fmt: skip
        self.assertIn("Chromium", modules["tests.server.test_web_client"] or "")
        self.assertIsNone(modules["tests.protocol.test_protocol_vectors"])


class WithoutTests(TestCase):
    def test_every_module_but_those_of_the_packages_named(self) -> None:
        tests = checkout(self, {
            "tests/test_top.py": "",
            "tests/test_deploy.py": "",
            "tests/cluster/__init__.py": "",
            "tests/cluster/test_faults.py": "",
            "tests/clusters/test_other.py": "",
            "tests/lobby/test_lobby.py": "",
        })  # fmt: skip
        self.assertEqual(
            every_module_without(["tests.cluster", "tests.test_deploy"], tests),
            ["tests.clusters.test_other", "tests.lobby.test_lobby", "tests.test_top"],
        )


class GuardTests(TestCase):
    def setUp(self) -> None:
        spawn, execute = PosixReactorBase.spawnProcess, subprocess.Popen._execute_child  # type: ignore[attr-defined]

        def restore() -> None:
            PosixReactorBase.spawnProcess = spawn  # type: ignore[method-assign]
            subprocess.Popen._execute_child = execute  # type: ignore[attr-defined]

        self.addCleanup(restore)
        forbid_child_processes()

    def test_a_child_started_through_subprocess_fails_the_test(self) -> None:
        with self.assertRaises(ChildProcessInFastLane) as caught:
            subprocess.run(["true"], check=True)
        self.assertIn("['true']", str(caught.exception))

    def test_a_child_started_through_the_reactor_fails_the_test(self) -> None:
        with self.assertRaises(ChildProcessInFastLane) as caught:
            reactor.spawnProcess(ProcessProtocol(), "true", ["true", "now"])
        self.assertIn("['true', 'now']", str(caught.exception))
