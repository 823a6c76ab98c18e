"""The test vectors of docs/protocol.md: the code must produce and accept exactly those bytes.

All randomness is replaced by counting bytes (see `Counting`), so every key,
nonce and first sequence number is fixed. To regenerate the section of the
document after a deliberate wire change: ``python -m tests.protocol.test_protocol_vectors``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.protocol.test_protocol_support import FakeAdmission
from vinom.protocol.address import HostAddress
from vinom.protocol.client import CONNECTED, ClientConnection
from vinom.protocol.config import HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.tokens import (
    PROTOCOL_VERSION,
    PrivateToken,
    PublicToken,
    TokenIssuer,
    decode_user_data,
    encode_user_data,
    seal_private_token,
    token_associated_data,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

TOKEN_KEY = bytes(range(0x00, 0x20))
APPLICATION_ID = 0x76696E6F6D
WALL = 1_700_000_000.0
NOW = 1000.0
HOST = HostAddress("127.0.0.1", 40000)
SERVER_ADDR = ("127.0.0.1", 40000)
CLIENT_ADDR = ("127.0.0.1", 50000)
ORDER = ("private_token", "request", "challenge", "response", "welcome", "payload_client",
         "payload_server", "keepalive", "disconnect", "denied")


class Counting:
    """`random_bytes` that counts: start, start+1, ... (mod 256)."""

    def __init__(self, start: int) -> None:
        self.next = start

    def __call__(self, n: int) -> bytes:
        out = bytes((self.next + i) & 0xFF for i in range(n))
        self.next += n
        return out


def protocol() -> ProtocolConfig:
    return ProtocolConfig(token_key=TOKEN_KEY, application_id=APPLICATION_ID)


def public_token() -> PublicToken:
    issuer = TokenIssuer(IssuerConfig(protocol(), token_lifetime=60.0, session_timeout=5.0),
                         random_bytes=Counting(0x20))
    return issuer.issue_token(player_id="p-0123456789abcdef", match_id="m-fedcba9876543210",
                              hosts=(HOST,), now=WALL,
                              user_data=encode_user_data("Ada", 0, 1500.0))


def server(verdict: Admission = Admission.ACCEPT) -> ServerEndpoint:
    return ServerEndpoint(HostConfig(protocol(), (HOST,)), FakeAdmission(verdict),
                          wall_clock=lambda: WALL, random_bytes=Counting(0x80))


def client(token: PublicToken) -> ClientConnection:
    return ClientConnection(token, NOW, wall_clock=lambda: WALL, random_bytes=Counting(0xC0))


def one(out: list[tuple[bytes, Any]]) -> bytes:
    assert len(out) == 1, out
    return out[0][0]


def run(feed: dict[str, bytes] | None = None) -> tuple[dict[str, bytes], list[Any], list[Any]]:
    """The vector scenario. With `feed`, each receiver gets the document's bytes
    instead of what its peer just produced. Returns the packets and both event lists."""
    token = public_token()
    host, player = server(), client(token)
    made: dict[str, bytes] = {}
    ad = token_associated_data(PROTOCOL_VERSION, APPLICATION_ID, token.expires_at)
    made["private_token"] = new_aead(TOKEN_KEY).decrypt(token.nonce, token.sealed, ad)

    def step(name: str, data: bytes) -> bytes:
        made[name] = data
        return feed[name] if feed else data

    request = step("request", one(player.datagrams_to_send(NOW)))
    host.receive_datagram(request, CLIENT_ADDR, NOW)
    challenge = step("challenge", one(host.datagrams_to_send(NOW)))
    player.receive_datagram(challenge, SERVER_ADDR, NOW)
    response = step("response", one(player.datagrams_to_send(NOW)))
    host.receive_datagram(response, CLIENT_ADDR, NOW)
    welcome = step("welcome", one(host.datagrams_to_send(NOW)))
    player.receive_datagram(welcome, SERVER_ADDR, NOW)
    player.send_message(1, b"hello")
    payload = step("payload_client", one(player.datagrams_to_send(NOW)))
    host.receive_datagram(payload, CLIENT_ADDR, NOW)
    host_events = [e for e in iter(host.next_event, None)]
    sid = host_events[0].session_id
    host.send_message(sid, 0, b"state")
    payload = step("payload_server", one(host.datagrams_to_send(NOW)))
    player.receive_datagram(payload, SERVER_ADDR, NOW)
    player.handle_timer(NOW + 2.0)
    keepalive = step("keepalive", one(player.datagrams_to_send(NOW + 2.0)))
    host.receive_datagram(keepalive, CLIENT_ADDR, NOW + 2.0)
    player.disconnect()
    disconnects = [d for d, _ in player.datagrams_to_send(NOW + 2.0)]
    host.receive_datagram(step("disconnect", disconnects[0]), CLIENT_ADDR, NOW + 2.0)
    host_events += [e for e in iter(host.next_event, None)]
    client_events = [e for e in iter(player.next_event, None)]

    full, denied_player = server(Admission.FULL), client(token)
    full.receive_datagram(one(denied_player.datagrams_to_send(NOW)), CLIENT_ADDR, NOW)
    denied = step("denied", one(full.datagrams_to_send(NOW)))
    denied_player.receive_datagram(denied, SERVER_ADDR, NOW)
    client_events += [e for e in iter(denied_player.next_event, None)]
    return made, host_events, client_events


def wrap(data: bytes) -> str:
    text = data.hex()
    return "\n".join(text[i:i + 64] for i in range(0, len(text), 64))


def render() -> str:
    made, _, _ = run()
    lines = ["<!-- vector:token -->", "```json",
             json.dumps(public_token().to_json(), indent=2), "```", ""]
    for name in ORDER:
        lines += [f"<!-- vector:{name} ({len(made[name])} bytes) -->", "```text",
                  wrap(made[name]), "```", ""]
    return "\n".join(lines)


def documented() -> tuple[dict[str, Any], dict[str, bytes]]:
    text = DOC.read_text(encoding="utf-8")
    token_match = re.search(r"<!-- vector:token -->\s*```json\n(.*?)```", text, re.S)
    assert token_match is not None, "docs/protocol.md lacks the token vector"
    packets = {
        m.group(1): bytes.fromhex("".join(m.group(2).split()))
        for m in re.finditer(r"<!-- vector:(\w+) \(\d+ bytes\) -->\s*```text\n(.*?)```", text,
                             re.S)
    }
    return json.loads(token_match.group(1)), packets


class VectorTests(SynchronousTestCase):
    def test_document_has_every_vector(self) -> None:
        _, packets = documented()
        self.assertEqual(sorted(packets), sorted(ORDER))

    def test_produces_the_documented_token(self) -> None:
        token_json, _ = documented()
        self.assertEqual(public_token().to_json(), token_json)
        self.assertEqual(PublicToken.from_json(token_json), public_token())

    def test_produces_the_documented_bytes(self) -> None:
        _, packets = documented()
        made, _, _ = run()
        for name in ORDER:
            self.assertEqual(made[name].hex(), packets[name].hex(), name)

    def test_documented_private_token_seals_to_the_documented_token(self) -> None:
        token_json, packets = documented()
        public = PublicToken.from_json(token_json)
        private = PrivateToken.unpack(packets["private_token"])
        assert private is not None
        self.assertEqual((private.player_id, private.match_id, private.hosts),
                         (public.player_id, public.match_id, public.hosts))
        self.assertEqual(private.client_to_server_key, public.client_to_server_key)
        self.assertEqual(decode_user_data(private.user_data),
                         {"name": "Ada", "team": 0, "rating": 1500.0})
        self.assertEqual(seal_private_token(private, protocol(), public.expires_at, public.nonce),
                         public.sealed)

    def test_accepts_the_documented_bytes(self) -> None:
        _, packets = documented()
        _, host_events, client_events = run(feed=packets)
        connected = host_events[0]
        self.assertIsInstance(connected, SessionConnected)
        self.assertEqual((connected.player_id, connected.match_id, connected.address),
                         ("p-0123456789abcdef", "m-fedcba9876543210", CLIENT_ADDR))
        self.assertEqual(host_events[1], MessageReceived(connected.session_id, 1, b"hello"))
        self.assertEqual(host_events[2], SessionClosed(connected.session_id, "disconnect"))
        self.assertEqual(len(host_events), 3)
        self.assertIsInstance(client_events[0], SessionConnected)
        self.assertEqual(client_events[1], MessageReceived(connected.session_id, 0, b"state"))
        self.assertEqual(client_events[2], SessionClosed(connected.session_id, "closed"))
        self.assertEqual([type(e).__name__ for e in client_events[3:]], ["ConnectFailed"])
        self.assertEqual(client_events[3].reason, "denied")

    def test_scenario_connects(self) -> None:
        token = public_token()
        host, player = server(), client(token)
        host.receive_datagram(one(player.datagrams_to_send(NOW)), CLIENT_ADDR, NOW)
        player.receive_datagram(one(host.datagrams_to_send(NOW)), SERVER_ADDR, NOW)
        host.receive_datagram(one(player.datagrams_to_send(NOW)), CLIENT_ADDR, NOW)
        player.receive_datagram(one(host.datagrams_to_send(NOW)), SERVER_ADDR, NOW)
        self.assertEqual(player.state, CONNECTED)


if __name__ == "__main__":
    print(render())
