"""The vendored @msgpack/msgpack (vinom/webclient/vendor/msgpack/) is the published
version it says it is, unmodified: the files against the SHA-256 of each that
`VERSION` pins, and those, with the npm tarball's integrity, against npm's registry
(`scripts/vendor-msgpack --check`, docs/web.md "The MessagePack library"). A hand
edit of a vendored file, or of VERSION, fails here. npm is Debian's `npm`: a
missing one fails the registry test with the command that installs it."""

# slow: runs npm (a child process, and a download from npm's registry unless cached)

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from tests.support.npm import npm_env, tool

ROOT = Path(__file__).resolve().parent.parent.parent
WEBCLIENT = ROOT / "vinom" / "webclient"
VENDOR = WEBCLIENT / "vendor" / "msgpack"


def pinned() -> tuple[dict[str, str], dict[str, str]]:
    """VERSION's fields (`package`, `version`, `integrity`) and its files' SHA-256 by name."""
    fields: dict[str, str] = {}
    files: dict[str, str] = {}
    for line in (VENDOR / "VERSION").read_text("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if key == "sha256":
            digest, _, name = rest.partition(" ")
            files[name] = digest
        else:
            fields[key] = rest
    return fields, files


class VendoredMessagePackTests(TestCase):
    timeout = 300

    def test_the_files_are_those_version_pins(self) -> None:
        fields, files = pinned()
        self.assertEqual(fields["package"], "@msgpack/msgpack")
        self.assertRegex(fields["integrity"], r"^sha512-[A-Za-z0-9+/]{86}==$")
        present = {
            str(path.relative_to(VENDOR)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in VENDOR.rglob("*")
            if path.is_file() and path.name != "VERSION"
        }
        self.assertIn("index.mjs", present)
        self.assertIn("LICENSE", present)
        self.assertEqual(present, files)

    def test_the_page_and_the_package_load_the_vendored_copy(self) -> None:
        """codec.js imports the vendored entry point by its relative path: the page needs
        no import map and the package no dependency (docs/web.md, "The MessagePack
        library"); the package ships the copy."""
        codec = (WEBCLIENT / "codec.js").read_text("utf-8")
        imports = re.findall(r'^import .* from "([^"]+)";$', codec, re.MULTILINE)
        self.assertEqual(imports, ["./vendor/msgpack/index.mjs"])
        manifest = json.loads((WEBCLIENT / "package.json").read_text("utf-8"))
        self.assertNotIn("dependencies", manifest)
        self.assertIn("vendor/msgpack/", manifest["files"])
        page = (WEBCLIENT / "index.html").read_text("utf-8")
        self.assertNotIn("importmap", page)

    async def test_the_pinned_files_are_the_registrys(self) -> None:
        tool("npm")
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            [str(ROOT / "scripts" / "vendor-msgpack"), "--check"],
            path=str(ROOT),
            env=npm_env(),
        )
        report = (out + err).decode(errors="replace")
        self.assertEqual(code, 0, report)
        self.assertIn("exactly", report)
