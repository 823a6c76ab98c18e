"""The web client's session modules under Node's test runner: `node --test` on the
`*.test.mjs` files beside this one (transport.js: which connection carries the
session, the fallback, the framing, the datagrams). Node is Debian's `nodejs`
(scripts/test installs it); a missing one fails the test with the command that
installs it, never skips."""

# slow: runs node

from __future__ import annotations

import shutil
from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import TestCase

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


class NodeTests(TestCase):
    timeout = 120

    async def test_the_node_test_files_pass(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise AssertionError("the web client's tests need Node.js 20 or later: run "
                                 "scripts/test, or `apt-get install -y nodejs`")  # fmt: skip
        files = sorted(str(p) for p in HERE.glob("*.test.mjs"))
        self.assertTrue(files)
        out, err, code = await utils.getProcessOutputAndValue(
            node,
            # codec.js's "@msgpack/msgpack" is the vendored copy, as on the page.
            ["--import", "./tests/webclient/vendored-msgpack.mjs", "--test", *files],
            path=str(ROOT),
            env={"PATH": "/usr/bin:/bin"},
        )
        report = (out + err).decode(errors="replace")
        self.assertEqual(code, 0, report)
        self.assertIn("# fail 0", report, report)
