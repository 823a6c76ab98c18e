"""vinom's licence is MIT, and every place that says so agrees: the LICENSE file
at the top of the checkout (which setuptools puts into the wheel), setup.py's
`license` and its classifier, and the web client's package.json with its own
copy of the file (npm packs a package's LICENSE, not the repository's)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
WEBCLIENT = ROOT / "vinom" / "webclient"


def setup_keywords(source: str) -> dict[str, object]:
    """The literal keyword arguments of setup.py's `setup(...)` call."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            found: dict[str, object] = {}
            for keyword in node.keywords:
                if keyword.arg is None:  # **kwargs
                    continue
                try:
                    found[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:  # a computed value (the long description, the packages)
                    continue
            return found
    raise AssertionError("setup.py calls no setup(...)")


class LicenseTests(SynchronousTestCase):
    def test_the_license_file_is_mit_for_the_vinom_developers(self) -> None:
        text = (ROOT / "LICENSE").read_text(encoding="utf-8")
        lines = text.splitlines()
        self.assertEqual(lines[0], "MIT License")
        self.assertRegex(lines[2], r"^Copyright \(c\) \d{4}(-\d{4})? the vinom developers$")
        words = " ".join(text.split())
        self.assertIn("Permission is hereby granted, free of charge, to any person", words)
        self.assertIn(
            "The above copyright notice and this permission notice shall be included in all "
            "copies or substantial portions of the Software.",
            words,
        )
        self.assertIn('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND', words)

    def test_setup_py_says_mit(self) -> None:
        keywords = setup_keywords((ROOT / "setup.py").read_text(encoding="utf-8"))
        self.assertEqual(keywords.get("license"), "MIT")
        classifiers = keywords.get("classifiers")
        assert isinstance(classifiers, list)
        licences = [c for c in classifiers if c.startswith("License ::")]
        self.assertEqual(licences, ["License :: OSI Approved :: MIT License"])

    def test_the_web_client_package_says_mit_and_ships_the_same_file(self) -> None:
        package = json.loads((WEBCLIENT / "package.json").read_text(encoding="utf-8"))
        self.assertEqual(package["license"], "MIT")
        self.assertEqual(
            (WEBCLIENT / "LICENSE").read_text(encoding="utf-8"),
            (ROOT / "LICENSE").read_text(encoding="utf-8"),
        )
