"""Route tokens (vinom.protocol.route_token): the vectors of vectors/protocol.json
(docs/protocol.md §15.1), and what a relay refuses to open."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.vectors import group, unhex
from vinom.protocol.crypto import new_aead
from vinom.protocol.route_token import (
    ROUTE_TOKEN_SIZE,
    Route,
    RouteTokenIssuer,
    open_route_token,
    seal_route_token,
)

ROUTE_TOKENS = group("route_tokens")
KEY = unhex(ROUTE_TOKENS["inputs"]["key"])
NONCE = unhex(ROUTE_TOKENS["inputs"]["nonce"])


def vectors() -> list[tuple[Route, bytes]]:
    return [(Route(v["host"], v["port"], v["expires_at"]), unhex(v["hex"]))
            for v in ROUTE_TOKENS["vectors"]]  # fmt: skip


class VectorTests(SynchronousTestCase):
    def test_the_document_has_both_vectors(self) -> None:
        self.assertEqual([r.host for r, _ in vectors()], ["127.0.0.1", "2001:db8::7"])

    def test_sealing_gives_the_documented_bytes(self) -> None:
        for route, token in vectors():
            self.assertEqual(len(token), ROUTE_TOKEN_SIZE)
            self.assertEqual(seal_route_token(route, NONCE, new_aead(KEY)).hex(), token.hex())

    def test_the_plaintexts_are_the_documented_ones(self) -> None:
        for v in ROUTE_TOKENS["vectors"]:
            token = unhex(v["hex"])
            header, nonce = token[:1], token[1:13]
            self.assertEqual(new_aead(KEY).decrypt(nonce, token[13:], header).hex(), v["plaintext"])

    def test_opening_gives_the_documented_route(self) -> None:
        for route, token in vectors():
            self.assertEqual(open_route_token(token, new_aead(KEY)), route)

    def test_the_issuer_makes_the_same_token_from_the_same_nonce(self) -> None:
        route, token = vectors()[0]
        issuer = RouteTokenIssuer(KEY, lifetime=60.0, random_bytes=lambda n: NONCE[:n])
        self.assertEqual(issuer.issue(route.host, route.port, route.expires_at - 60), token)


class RefusalTests(SynchronousTestCase):
    def test_another_key_opens_nothing(self) -> None:
        _, token = vectors()[0]
        self.assertIsNone(open_route_token(token, new_aead(bytes(32))))

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, ROUTE_TOKEN_SIZE - 1), st.integers(1, 255))
    def test_any_changed_byte_opens_nothing(self, index: int, flip: int) -> None:
        _, token = vectors()[0]
        damaged = bytearray(token)
        damaged[index] ^= flip
        self.assertIsNone(open_route_token(bytes(damaged), new_aead(KEY)))

    def test_wrong_sizes_open_nothing(self) -> None:
        _, token = vectors()[0]
        for bad in (b"", token[:-1], token + b"\0"):
            self.assertIsNone(open_route_token(bad, new_aead(KEY)))

    def test_a_host_name_cannot_be_carried(self) -> None:
        issuer = RouteTokenIssuer(KEY)
        e = self.assertRaises(ValueError, issuer.issue, "game.example.com", 7400, 0.0)
        self.assertIn("IP address", str(e))
