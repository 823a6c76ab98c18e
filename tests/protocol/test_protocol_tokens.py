"""Connect tokens, the token issuer, configuration values, the replay window and cookies."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.protocol.test_protocol_support import APPLICATION_ID, HOST, TOKEN_KEY, WALL
from vinom.protocol.address import HostAddress
from vinom.protocol.config import (
    ClientConfig,
    HostConfig,
    IssuerConfig,
    ProtocolConfig,
    format_token_key,
    generate_token_key,
    parse_token_key,
)
from vinom.protocol.cookies import CookieContents, CookieJar
from vinom.protocol.crypto import new_aead
from vinom.protocol.interfaces import ITokenIssuer
from vinom.protocol.replay import WINDOW_SIZE, ReplayWindow
from vinom.protocol.tokens import (
    PrivateToken,
    PublicToken,
    TokenIssuer,
    decode_user_data,
    encode_user_data,
    open_private_token,
    seal_private_token,
    token_associated_data,
)
from vinom.protocol.wire import (
    PRIVATE_TOKEN_SIZE,
    PROTOCOL_VERSION,
    REQUEST_SIZE,
    SEALED_TOKEN_SIZE,
    address_bytes,
)

PROTOCOL = ProtocolConfig(token_key=TOKEN_KEY, application_id=APPLICATION_ID)


def issuer() -> TokenIssuer:
    return TokenIssuer(IssuerConfig(PROTOCOL, token_lifetime=30.0, session_timeout=5.0))


def private(**kw: object) -> PrivateToken:
    fields: dict[str, object] = {
        "player_id": "p-1", "match_id": "m-1", "hosts": (HOST,), "created_at": 1,
        "timeout_ms": 5000, "client_to_server_key": b"c" * 32,
        "server_to_client_key": b"s" * 32, "user_data": b"u",
    }
    fields.update(kw)
    return PrivateToken(**fields)  # type: ignore[arg-type]


class PrivateTokenTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        token = private(hosts=(HOST, HostAddress("game.example.com", 1)))
        packed = token.pack()
        self.assertEqual(len(packed), PRIVATE_TOKEN_SIZE)
        self.assertEqual(PrivateToken.unpack(packed), token)

    def test_largest_fields_fit(self) -> None:
        token = private(player_id="p" * 64, match_id="m" * 64,
                        hosts=tuple(HostAddress("h" * 64, 65535) for _ in range(8)),
                        user_data=b"x" * 256)
        self.assertEqual(PrivateToken.unpack(token.pack()), token)

    def test_refuses_what_cannot_fit_or_is_invalid(self) -> None:
        for bad in (
            private(hosts=tuple(HostAddress("h" * 255, 1) for _ in range(8))),
            private(player_id="p" * 65),
            private(player_id=""),
            private(match_id="m\u00e9"),
            private(hosts=()),
            private(hosts=(HostAddress("h", 0),)),
            private(hosts=(HostAddress("h\u00e9", 1),)),
            private(user_data=b"x" * 257),
            private(client_to_server_key=b"short"),
        ):
            self.assertRaises(ValueError, bad.pack)

    def test_unpack_rejects_garbage(self) -> None:
        self.assertIsNone(PrivateToken.unpack(b"\xff" * PRIVATE_TOKEN_SIZE))
        self.assertIsNone(PrivateToken.unpack(b"\x00" * PRIVATE_TOKEN_SIZE))
        self.assertIsNone(PrivateToken.unpack(private().pack()[:-1]))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(min_size=PRIVATE_TOKEN_SIZE, max_size=PRIVATE_TOKEN_SIZE))
    def test_unpack_never_raises(self, data: bytes) -> None:
        result = PrivateToken.unpack(data)
        if result is not None:
            self.assertIsInstance(result.player_id, str)

    def test_seal_binds_key_version_application_and_expiry(self) -> None:
        token = private()
        nonce = bytes(12)
        sealed = seal_private_token(token, PROTOCOL, 2000, nonce)
        self.assertEqual(len(sealed), SEALED_TOKEN_SIZE)
        aead = new_aead(TOKEN_KEY)
        ad = token_associated_data(PROTOCOL_VERSION, APPLICATION_ID, 2000)
        self.assertEqual(open_private_token(aead, nonce, sealed, ad), token)
        for wrong_ad in (token_associated_data(1, APPLICATION_ID, 2000),  # version 1
                         token_associated_data(PROTOCOL_VERSION, APPLICATION_ID + 1, 2000),
                         token_associated_data(PROTOCOL_VERSION, APPLICATION_ID, 2001)):
            self.assertIsNone(open_private_token(aead, nonce, sealed, wrong_ad))
        self.assertIsNone(open_private_token(new_aead(bytes(32)), nonce, sealed, ad))
        self.assertIsNone(open_private_token(aead, b"\x01" * 12, sealed, ad))


class PublicTokenTests(SynchronousTestCase):
    def test_json_shape_and_round_trip(self) -> None:
        token = issuer().issue_token(player_id="p-1", match_id="m-1", hosts=(HOST,), now=WALL)
        obj = json.loads(json.dumps(token.to_json()))
        self.assertEqual(
            set(obj),
            {"version", "application_id", "player_id", "match_id", "created_at", "expires_at",
             "timeout_ms", "hosts", "nonce", "token", "client_to_server_key",
             "server_to_client_key"},
        )
        self.assertEqual(obj["hosts"], [{"host": "10.0.0.1", "port": 40000}])
        self.assertEqual(obj["expires_at"], int(WALL) + 30)
        self.assertEqual(obj["timeout_ms"], 5000)
        self.assertEqual(len(base64.b64decode(obj["token"])), SEALED_TOKEN_SIZE)
        self.assertEqual(PublicToken.from_json(obj), token)
        self.assertEqual(len(token.request_packet()), REQUEST_SIZE)

    def test_from_json_says_what_is_wrong(self) -> None:
        good = issuer().issue_token(player_id="p-1", match_id="m-1", hosts=(HOST,),
                                    now=WALL).to_json()
        cases = {
            "lacks 'nonce'": {k: v for k, v in good.items() if k != "nonce"},
            "nonce must be 12 bytes": {**good, "nonce": base64.b64encode(b"x").decode()},
            "token is not valid base64": {**good, "token": "@@@"},
            "expires_at must be an integer": {**good, "expires_at": True},
            "timeout_ms must be an integer": {**good, "timeout_ms": 0},
            "application_id must be an integer": {**good, "application_id": 2**60},
            "hosts must be a list": {**good, "hosts": []},
            "port must be an integer": {**good, "hosts": [{"host": "h", "port": 70000}]},
            "player_id must be ASCII": {**good, "player_id": "\u00e9"},
            "match_id must be 1..64": {**good, "match_id": "m" * 65},
            "client_to_server_key must be a base64 string": {**good,
                                                              "client_to_server_key": 5},
        }
        for message, obj in cases.items():
            with self.assertRaises(ValueError) as caught:
                PublicToken.from_json(obj)
            self.assertIn(message, str(caught.exception))
        self.assertRaises(ValueError, PublicToken.from_json, [])  # type: ignore[arg-type]


class TokenIssuerTests(SynchronousTestCase):
    def test_issue_for_a_match(self) -> None:
        iss = issuer()
        verifyObject(ITokenIssuer, iss)
        address = HostAddress("127.0.0.1", 40001)
        obj = iss.issue("p-b", "m-1", address, WALL, name="Bob", team=1)
        public = PublicToken.from_json(obj)
        self.assertEqual((public.player_id, public.match_id), ("p-b", "m-1"))
        self.assertEqual(public.hosts, (address,))
        opened = open_private_token(
            new_aead(TOKEN_KEY), public.nonce, public.sealed,
            token_associated_data(PROTOCOL_VERSION, APPLICATION_ID, public.expires_at),
        )
        assert opened is not None
        self.assertEqual(opened.player_id, "p-b")
        self.assertEqual(opened.client_to_server_key, public.client_to_server_key)
        self.assertEqual(opened.server_to_client_key, public.server_to_client_key)
        self.assertEqual(decode_user_data(opened.user_data),
                         {"name": "Bob", "team": 1, "rating": None})

    def test_every_token_has_fresh_keys_and_nonce(self) -> None:
        iss = issuer()
        a = iss.issue_token(player_id="p", match_id="m", hosts=(HOST,), now=WALL)
        b = iss.issue_token(player_id="p", match_id="m", hosts=(HOST,), now=WALL)
        self.assertNotEqual(a.nonce, b.nonce)
        self.assertNotEqual(a.client_to_server_key, b.client_to_server_key)
        self.assertNotEqual(a.client_to_server_key, a.server_to_client_key)

    def test_user_data(self) -> None:
        data = encode_user_data("\u00e9" * 40, 2, 1200.5)
        decoded = decode_user_data(data)
        self.assertEqual(decoded["name"], "\u00e9" * 32)  # cut to 64 UTF-8 bytes
        self.assertEqual((decoded["team"], decoded["rating"]), (2, 1200.5))
        self.assertLessEqual(len(encode_user_data("x" * 1000, 3, None)), 256)
        self.assertEqual(decode_user_data(b""), {})
        self.assertEqual(decode_user_data(b"\xc1"), {})
        self.assertEqual(decode_user_data(b"\x01"), {})


class ConfigTests(SynchronousTestCase):
    def test_token_key_text_form(self) -> None:
        key = generate_token_key()
        self.assertEqual(parse_token_key(format_token_key(key)), key)
        self.assertEqual(parse_token_key(" " + format_token_key(key) + "\n"), key)
        for bad in ("", "zz" * 32, "00" * 31):
            self.assertRaises(ValueError, parse_token_key, bad)

    def test_validation(self) -> None:
        self.assertRaises(ValueError, ProtocolConfig, token_key=b"short")
        self.assertRaises(ValueError, ProtocolConfig, token_key=TOKEN_KEY, application_id=2**53)
        for old_or_unknown in (1, 2, 4):
            self.assertRaises(ValueError, ProtocolConfig, token_key=TOKEN_KEY,
                              protocol_version=old_or_unknown)
        self.assertRaises(ValueError, HostConfig, PROTOCOL, ())
        self.assertRaises(ValueError, HostConfig, PROTOCOL, (HOST,), keepalive_interval=0)
        self.assertRaises(ValueError, HostConfig, PROTOCOL, (HOST,) * 9)
        self.assertRaises(ValueError, ClientConfig, handshake_interval=-1)
        self.assertNotIn(TOKEN_KEY.hex(), repr(PROTOCOL))
        self.assertEqual(HostConfig(PROTOCOL, [HOST]).addresses, (HOST,))


class ReplayWindowTests(SynchronousTestCase):
    def test_basics(self) -> None:
        w = ReplayWindow()
        self.assertFalse(w.is_replay(0))
        w.mark(10)
        self.assertTrue(w.is_replay(10))
        self.assertFalse(w.is_replay(9))
        self.assertFalse(w.is_replay(11))
        w.mark(10 + WINDOW_SIZE)
        self.assertTrue(w.is_replay(10))  # too old
        self.assertFalse(w.is_replay(11))  # still inside the window, never seen
        w.mark(10 + 10 * WINDOW_SIZE)
        self.assertTrue(w.is_replay(11 + WINDOW_SIZE))
        self.assertFalse(w.is_replay(11 + 10 * WINDOW_SIZE))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=2000), max_size=300))
    def test_matches_a_model(self, sequences: list[int]) -> None:
        w = ReplayWindow()
        accepted: set[int] = set()
        for seq in sequences:
            newest = max(accepted, default=-1)
            expected = seq in accepted or seq <= newest - WINDOW_SIZE
            self.assertEqual(w.is_replay(seq), expected)
            if not expected:
                w.mark(seq)
                accepted.add(seq)


class CookieTests(SynchronousTestCase):
    contents = CookieContents(2000, b"n" * 12, 5000, b"c" * 32, b"s" * 32, b"p-1", b"m-1",
                              b"user")
    here = address_bytes(("192.0.2.1", 5000))

    def test_round_trip_and_binding(self) -> None:
        jar = CookieJar(10.0, lambda n: b"k" * n)
        cookie = jar.seal(self.contents, 7, self.here, now=100.0)
        self.assertEqual(jar.open(cookie, self.here, now=105.0), self.contents)
        self.assertIsNone(jar.open(cookie, address_bytes(("192.0.2.1", 5001)), now=105.0))
        self.assertIsNone(jar.open(cookie, address_bytes(("192.0.2.2", 5000)), now=105.0))
        for i in range(len(cookie)):
            flipped = bytearray(cookie)
            flipped[i] ^= 0x01
            self.assertIsNone(jar.open(bytes(flipped), self.here, now=105.0), i)
        self.assertIsNone(jar.open(cookie[:-1], self.here, now=105.0))

    def test_rotation(self) -> None:
        keys = iter([b"a" * 32, b"b" * 32, b"c" * 32])
        jar = CookieJar(10.0, lambda n: next(keys))
        cookie = jar.seal(self.contents, 1, self.here, now=100.0)  # epoch 10
        self.assertEqual(jar.open(cookie, self.here, now=119.9), self.contents)  # epoch 11
        jar.seal(self.contents, 2, self.here, now=125.0)  # epoch 12 forgets epoch 10's key
        self.assertIsNone(jar.open(cookie, self.here, now=125.0))
        other = CookieJar(10.0, lambda n: b"a" * n)  # another host: its own keys
        self.assertIsNone(other.open(jar.seal(self.contents, 3, self.here, 125.0),
                                     self.here, 125.0))

    def test_ipv4_and_mapped_ipv6_bind_alike(self) -> None:
        self.assertEqual(address_bytes(("127.0.0.1", 1)), address_bytes(("::ffff:127.0.0.1", 1)))
        self.assertNotEqual(address_bytes(("::1", 1)), address_bytes(("127.0.0.1", 1)))
        self.assertEqual(len(address_bytes(("::1", 1, 0, 0))), 18)
