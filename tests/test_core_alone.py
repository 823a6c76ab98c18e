"""The core without the fleet: in a Python process where the fleet's packages cannot be
imported (vinom.cluster, vinom.gateway, vinom.fleet: tests/support/lanes.py's
`block_fleet`, as the core lane runs), every module of the core imports, and
`twistd vinom`'s options make the whole server in memory, its service tree built and
started on a MemoryReactor; no module of the fleet is loaded at the end.

Nor does it need vinom's extras (setup.py, extras_require): the same process cannot
import what they install (`EXTRAS`), every core module imports but the one whose job an
extra is (`EXTRA_MODULES`), and none of them is loaded at the end. A lean install in
a real virtualenv is tests/test_new_user.py's; this finds a module-level import of an
extra in the core at once."""

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

# What vinom's extras install (the cluster's, postgres', webtransport's, boards'), and the
# core module that is an extra's whole job.
EXTRAS = ("txredisapi", "hiredis", "psycopg", "qh3", "tree_sitter", "tree_sitter_javascript")
EXTRA_MODULES = frozenset({
    "vinom.hosting.webtransport", "vinom.hosting.webtransport_session", "vinom.hosting.quic",
})  # fmt: skip

PROGRAM = textwrap.dedent("""
    import importlib, importlib.abc, sys
    from tests.support.lanes import block_fleet
    block_fleet()

    class BlockExtras(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in EXTRAS:
                raise ModuleNotFoundError(f"no {name}: an extra (tests/test_core_alone.py)")

    sys.meta_path.insert(0, BlockExtras())
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
    print(" ".join(sorted(m for m in sys.modules if m.partition(".")[0] in EXTRAS)) or "-")
""")


def core_modules() -> list[str]:
    return sorted(
        name
        for name in (module_name(p) for p in PACKAGE.rglob("*.py"))
        if unit_of(name) not in FLEET and name not in EXTRA_MODULES
    )


class CoreAloneTests(SynchronousTestCase):
    def test_every_core_module_imports_and_the_server_runs_without_the_fleet(self) -> None:
        modules = core_modules()
        self.assertIn("vinom.server.tap", modules)
        self.assertNotIn("vinom.fleet.plugin", modules)
        program = f"FLEET = {tuple(FLEET_PACKAGES)!r}\nEXTRAS = {EXTRAS!r}\n{PROGRAM}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", program, *modules], input=os.path.abspath(self.mktemp()),
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)
        names, fleet_modules, extras_modules = done.stdout.splitlines()[-3:]
        self.assertEqual(names, "hosting lobby lobby-listener web ops announcement")
        self.assertEqual(fleet_modules, "-")
        self.assertEqual(extras_modules, "-")

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
