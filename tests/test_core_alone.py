"""The core without the fleet: in a Python process where the fleet's packages cannot be
imported (vinom.cluster, vinom.gateway, vinom.fleet: tests/support/lanes.py's
`block_fleet`, as the core lane runs), every module of the core imports, and
`twistd vinom`'s options make the whole server in memory, its service tree built and
started on a MemoryReactor; no module of the fleet is loaded at the end."""

# slow: starts a Python process with the fleet's packages blocked

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.support.lanes import FLEET_PACKAGES
from tests.test_layers import FLEET, PACKAGE, module_name, unit_of

ROOT = str(PACKAGE.parent)

PROGRAM = textwrap.dedent("""
    import importlib, sys
    from tests.support.lanes import block_fleet
    block_fleet()
    for name in sys.argv[1:]:
        importlib.import_module(name)
    from twisted.internet.testing import MemoryReactor
    from vinom.server.options import role_options
    from vinom.server.tap import Options, makeService
    options = Options()
    options.parseOptions(["--data-dir", sys.stdin.readline().strip(), "--matches", "here"])
    root = makeService(role_options(options), MemoryReactor())
    root.startService()
    print(" ".join(s.name for s in root))
    print(" ".join(sorted(m for m in sys.modules if m.startswith(FLEET))) or "-")
""")


def core_modules() -> list[str]:
    return sorted(
        name
        for name in (module_name(p) for p in PACKAGE.rglob("*.py"))
        if unit_of(name) not in FLEET
    )


class CoreAloneTests(SynchronousTestCase):
    def test_every_core_module_imports_and_the_server_runs_without_the_fleet(self) -> None:
        modules = core_modules()
        self.assertIn("vinom.server.tap", modules)
        self.assertNotIn("vinom.fleet.plugin", modules)
        program = f"FLEET = {tuple(FLEET_PACKAGES)!r}\n{PROGRAM}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", program, *modules], input=os.path.abspath(self.mktemp()),
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)
        names, fleet_modules = done.stdout.splitlines()[-2:]
        self.assertEqual(names, "hosting lobby lobby-listener web ops announcement")
        self.assertEqual(fleet_modules, "-")

    def test_the_guard_refuses_the_fleet(self) -> None:
        """The same process refuses to import a module of the fleet: the test above proves
        something only because this fails."""
        program = ("from tests.support.lanes import block_fleet\nblock_fleet()\n"
                   "import vinom.cluster.client\n")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              cwd=ROOT, timeout=60, check=False)  # fmt: skip
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("FleetBlocked: the core lane (tests/support/lanes.py) has no "
                      "vinom.cluster", done.stderr)  # fmt: skip
