"""The game host's memory of spent connect tokens (vinom.protocol.spent_tokens).

The endpoint's behaviour (a token opens one session, over UDP or a stream) is
tested in test_protocol_handshake.py; these pin the record on its own.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from vinom.protocol.spent_tokens import SpentTokens


class SpentTokensTests(SynchronousTestCase):
    def test_a_spent_token_is_remembered_until_it_expires(self) -> None:
        spent = SpentTokens()
        spent.spend(b"a", 100)
        spent.spend(b"b", 100)
        spent.spend(b"c", 200)
        spent.forget_expired(99.5)
        self.assertEqual([n in spent for n in (b"a", b"b", b"c", b"d")], [True, True, True, False])
        spent.forget_expired(100.0)
        self.assertEqual([n in spent for n in (b"a", b"b", b"c")], [False, False, True])
        spent.forget_expired(300.0)
        self.assertNotIn(b"c", spent)
        self.assertEqual(spent.entries(), 0)

    def test_tokens_expiring_together_share_one_expiry_entry(self) -> None:
        spent = SpentTokens()
        for i in range(100):
            spent.spend(bytes([i]), 1000)
        self.assertEqual(spent.entries(), 100 + 1)
