"""The web client's session modules under Node's test runner: `node --test` on the
`*.test.mjs` files beside this one (transport.js: which connection carries the
session, the fallback, the framing, the datagrams). Node is Debian's `nodejs`
(scripts/test installs it); a missing one fails the test with the command that
installs it, never skips."""

# slow: runs node

from __future__ import annotations

from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from tests.support.npm import PATH, tool

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


class NodeTests(TestCase):
    timeout = 120

    async def test_the_node_test_files_pass(self) -> None:
        node = tool("node")
        files = sorted(str(p) for p in HERE.glob("*.test.mjs"))
        self.assertTrue(files)
        out, err, code = await utils.getProcessOutputAndValue(
            node,
            ["--test", *files],
            path=str(ROOT),
            env={"PATH": PATH},
        )
        report = (out + err).decode(errors="replace")
        self.assertEqual(code, 0, report)
        self.assertIn("# fail 0", report, report)
