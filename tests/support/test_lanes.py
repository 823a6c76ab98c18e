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

from tests.support.lanes import (
    ChildProcessInFastLane,
    core,
    fast,
    fleet_needs,
    forbid_child_processes,
    test_modules,
)
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


class CoreLaneTests(TestCase):
    """Which modules the core lane leaves out: those that need the fleet, Redis or pods."""

    def test_a_module_that_reaches_the_fleet_as_it_is_imported_is_left_out(self) -> None:
        tests = checkout(self, {
            "tests/test_plain.py": "from vinom.server.tap import Options\n",
            "tests/test_wing.py": "from vinom.cluster.client import RedisClient\n",
            "tests/test_redis.py": "from tests.support.redis_server import start_redis\n",
            "tests/test_later.py": "def f():\n    from tests.support.redis_server import x\n",
            # (Each word split here: this module itself needs neither.)
            "tests/test_says.py": 'ARGV = ["--re' 'dis", "x"]\n',
            "tests/test_pods.py": 'PROGRAM = "kube' 'ctl"\n',
            "tests/support/__init__.py": "",
            "tests/support/helper.py": 'from vinom.gateway import relay\nA = 1\n',
            "tests/support/words.py": 'ARGV = ["--re' 'dis", "x"]\n',
            "tests/test_helped.py": "from tests.support.helper import A\n",
            "tests/test_worded.py": "from tests.support.words import ARGV\n",
            "tests/cluster/__init__.py": "",
            "tests/cluster/test_faults.py": "",
        })  # fmt: skip
        needs = fleet_needs(tests)
        self.assertEqual(needs["tests.test_wing"], "imports vinom.cluster.client")
        self.assertEqual(needs["tests.test_redis"], "imports tests.support.redis_server")
        self.assertEqual(needs["tests.test_says"], "says --re" "dis")
        self.assertEqual(needs["tests.test_pods"], "says kube" "ctl")
        self.assertEqual(needs["tests.test_helped"],
                         "imports tests.support.helper, which needs it")  # fmt: skip
        self.assertEqual(needs["tests.cluster.test_faults"], "a test of the fleet")
        # A function's import waits for a call (the lane's guard sees it); a helper's
        # words are not a test's.
        self.assertEqual(core(tests),
                         ["tests.test_later", "tests.test_plain", "tests.test_worded"])
        self.assertEqual(core(tests, under=["tests.test_plain"]), ["tests.test_plain"])

    def test_the_suites_core_lane(self) -> None:
        lane = core()
        for module in ("tests.server.test_tap", "tests.server.test_fleet_seam",
                       "tests.test_layers", "tests.test_core_alone", "tests.rooms.test_rooms"):
            self.assertIn(module, lane)
        for module in ("tests.cluster.test_redis", "tests.gateway.test_sniff",
                       "tests.fleet.test_fleet_options", "tests.test_deploy",
                       "tests.store.test_store"):  # fmt: skip
            self.assertNotIn(module, lane)


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
