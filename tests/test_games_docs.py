"""docs/games.md's tutorial, run as written: a third-party game plugin in its own package."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import TestCase

import vinom

# Where `vinom` is imported from (the checkout, or site-packages under tox).
PACKAGE_ROOT = Path(vinom.__file__).resolve().parent.parent
DOC = Path(__file__).resolve().parent.parent / "docs" / "games.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


class TutorialTests(TestCase):
    def setUp(self) -> None:
        # Every block that starts with "# <path>.py" is a file of the package.
        self.root = Path(self.mktemp()).resolve()
        self.files = {}
        for block in python_blocks():
            first = block.splitlines()[0]
            if first.startswith("# ") and first.endswith(".py"):
                path = self.root / first[2:]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block, encoding="utf-8")
                self.files[first[2:]] = path
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(self.root), str(PACKAGE_ROOT)]))

    def run_python(self, script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=self.env,
            cwd=str(self.root),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def test_package_files(self) -> None:
        self.assertEqual(
            sorted(self.files),
            [
                "acme_nim/__init__.py",
                "acme_nim/nim.py",
                "setup.py",
                "twisted/plugins/acme_nim_plugin.py",
            ],
        )
        self.assertFalse((self.root / "twisted" / "plugins" / "__init__.py").exists())
        self.assertFalse((self.root / "twisted" / "__init__.py").exists())

    def test_plugin_found_and_played(self) -> None:
        out = self.run_python(
            "from vinom.games.registry import GameRegistry, format_games\n"
            "registry = GameRegistry.from_plugins()\n"
            "print(format_games(registry))\n"
        )
        names = [line.split()[0].rstrip("*") for line in out.splitlines()[1:] if line]
        for name in ("nim", "maze", "tictactoe", "dice", "owedrahn", "duel"):
            self.assertIn(name, names)
        driver = next(b for b in python_blocks() if "print(game.result(state))" in b)
        result = self.run_python(driver)
        self.assertIn("'winners': ['p-", result)
        self.assertIn("'reason': 'won'", result)
