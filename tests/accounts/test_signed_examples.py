"""The ten-line signed-token makers of docs/operations.md ("Authentication"), in Python
and in Node.js, as a reader copies them: each makes a token the `signed`
authenticator takes as the player it names."""

# slow: runs node

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.accounts.authenticator_suite import outcome
from tests.support.doc_examples import node_example, python_example
from vinom.accounts.interfaces import Identity
from vinom.accounts.signed import SignedTokenAuthenticator

KEY = "9e2f" * 16


def verified(token: str) -> object:
    clock = Clock()
    clock.advance(time.time())
    authenticator = SignedTokenAuthenticator(KEY.encode(), clock)
    return outcome(authenticator.authenticate({"kind": "signed", "token": token}, "p"))


class SignedTokenExampleTests(TestCase):
    def test_the_python_example_makes_a_token_vinom_takes(self) -> None:
        token = python_example()(KEY.encode(), "player-1")
        identity = verified(token)
        self.assertEqual(identity, Identity("signed", "player-1", None, identity.claims))  # type: ignore[union-attr]

    def test_the_node_example_makes_a_token_vinom_takes(self) -> None:
        node = shutil.which("node")
        if node is None:
            self.fail("node is not installed (scripts/test installs it)")
        script = os.path.join(self.mktemp() + ".js")
        with open(script, "w", encoding="utf-8") as f:
            f.write(node_example())
            f.write(f"\nprocess.stdout.write(vinomToken({json.dumps(KEY)}, 'player-2'));\n")
        token = subprocess.run([node, script], capture_output=True, text=True, check=True,
                               timeout=30).stdout  # fmt: skip
        identity = verified(token)
        self.assertIsInstance(identity, Identity, identity)
        self.assertEqual(identity.subject, "player-2")  # type: ignore[union-attr]
