"""Which build of vinom this run uses, and the AEAD every build uses.

tox says which build each of its runs must be using (`VINOM_EXPECT_BUILD`:
`compiled` on the installed wheel, `pure` on the sources), so that a build that
quietly lost its compiled packet path, or a run that imported the wrong copy
of vinom, fails here instead of going unnoticed. The installed package has
every file the sources have that is not Python (Lua scripts, web pages). Every build seals with
cryptography's `AESGCM`: there is no AEAD code of vinom's own.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.trial.unittest import SynchronousTestCase

import vinom
from vinom.protocol import server
from vinom.protocol.crypto import AEAD_IMPLEMENTATION, new_aead
from vinom.server.build import build_info


class BuildTests(SynchronousTestCase):
    def test_the_build_is_the_one_this_run_asks_for(self) -> None:
        """tox's tests env must run the compiled build, tests-pure the sources."""
        info = build_info()
        expected = os.environ.get("VINOM_EXPECT_BUILD")
        if expected in ("compiled", "pure"):
            self.assertEqual(info, {"code": expected, "aead": "cryptography"})
        self.assertIn(info["code"], ("compiled", "pure"))
        self.assertEqual(info["code"] == "compiled", not server.__file__.endswith(".py"))

    def test_every_build_seals_with_cryptography(self) -> None:
        self.assertEqual(AEAD_IMPLEMENTATION, "cryptography")
        self.assertIsInstance(new_aead(bytes(32)), AESGCM)

    def test_new_aead_refuses_other_key_sizes(self) -> None:
        for size in (0, 16, 31, 33):
            self.assertRaises(ValueError, new_aead, bytes(size))

    def test_the_installed_package_has_every_data_file_of_the_sources(self) -> None:
        """A file left out of setup.py's package_data would be missing only once installed."""
        sources = Path(__file__).resolve().parents[2] / "vinom"
        installed = Path(vinom.__file__).resolve().parent
        data = [
            path.relative_to(sources)
            for path in sources.rglob("*")
            if path.is_file()
            and path.suffix not in (".py", ".pyc", ".so", ".c", ".h", ".o")
            and "__pycache__" not in path.parts
        ]
        self.assertIn(Path("cluster/checked.lua"), data)
        missing = [str(path) for path in data if not (installed / path).is_file()]
        self.assertEqual(missing, [])

    def test_every_module_setup_py_compiles_is_compiled_and_documented(self) -> None:
        """setup.py's COMPILED: each module compiled in the compiled build (and
        none in the pure one), and each named in docs/operations.md's "Building"."""
        root = Path(__file__).resolve().parents[2]
        tree = ast.parse((root / "setup.py").read_text())
        (listed,) = [
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets)
        ]
        self.assertIn("vinom/rooms/delta_wire.py", listed)
        compiled = build_info()["code"] == "compiled"
        for path in listed:
            module = importlib.import_module(path[: -len(".py")].replace("/", "."))
            self.assertEqual(not str(module.__file__).endswith(".py"), compiled, path)
        building = (root / "docs" / "operations.md").read_text().split("## Building", 1)[1]
        named = " ".join(building.split("\n\n", 2)[1].split())
        # Named by path, by file, or by a family's pattern (`reliability*.py`).
        families = [f for f in re.findall(r"`([\w*]+\.py)`", named) if "*" in f]
        for path in listed:
            name = path.rsplit("/", 1)[1]
            self.assertTrue(
                f"`{name}`" in named
                or f"`{path}`" in named
                or any(re.fullmatch(f.replace("*", r"\w*"), name) for f in families),
                (path, named),
            )
