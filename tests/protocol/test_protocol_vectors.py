"""The session vectors of vectors/protocol.json (docs/protocol.md section 12): the code
must produce and accept exactly those bytes.

All randomness is replaced by counting bytes (see `Counting`), so every key,
nonce and first sequence number is fixed; the inputs are the file's. After a
deliberate wire change, edit the file and regenerate the document:
``python -m tests.support.vectors``.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.protocol.test_protocol_support import FakeAdmission
from tests.support.vectors import group, unhex
from vinom.protocol.address import HostAddress
from vinom.protocol.client import CONNECTED, ClientConnection
from vinom.protocol.config import ClientConfig, HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import UNRELIABLE, MessageReceived, SessionClosed, SessionConnected
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

SESSION = group("session")
INPUTS = SESSION["inputs"]
TOKEN_KEY = unhex(INPUTS["token_key"])
APPLICATION_ID = INPUTS["application_id"]
WALL = float(INPUTS["unix_time"])
NOW = INPUTS["host_time"]
[HOST] = [HostAddress(h["host"], h["port"]) for h in INPUTS["hosts"]]
SERVER_ADDR = (HOST.host, HOST.port)
CLIENT_ADDR = (INPUTS["client"]["host"], INPUTS["client"]["port"])
ORDER = ("private_token", "request", "challenge", "response", "welcome", "payload_client",
         "offer", "payload_server", "payload_client_short", "keepalive", "disconnect", "denied")
# The same scenario with a client that offers slim payloads too (§5.10): what differs.
SLIM = {"offer": "offer_slim", "payload_server": "payload_server_slim",
        "payload_client_short": "payload_client_slim"}


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


def user_data() -> bytes:
    data = INPUTS["user_data"]
    return encode_user_data(data["name"], data["team"], data["rating"])


def public_token() -> PublicToken:
    config = IssuerConfig(protocol(), token_lifetime=float(INPUTS["token_lifetime"]),
                          session_timeout=INPUTS["timeout_ms"] / 1000)  # fmt: skip
    issuer = TokenIssuer(config, random_bytes=Counting(INPUTS["issuer_random_start"]))
    return issuer.issue_token(player_id=INPUTS["player_id"], match_id=INPUTS["match_id"],
                              hosts=(HOST,), now=float(INPUTS["created_at"]),
                              user_data=user_data())  # fmt: skip


def server(verdict: Admission = Admission.ACCEPT) -> ServerEndpoint:
    config = HostConfig(protocol(), (HOST,), cookie_rotation=INPUTS["cookie_rotation"])
    return ServerEndpoint(config, FakeAdmission(verdict),
                          wall_clock=lambda: WALL,
                          random_bytes=Counting(INPUTS["host_random_start"]))  # fmt: skip


def client(token: PublicToken, slim: bool = False) -> ClientConnection:
    return ClientConnection(token, NOW, wall_clock=lambda: WALL,
                            config=ClientConfig(slim_payloads=slim),
                            random_bytes=Counting(INPUTS["client_random_start"]))  # fmt: skip


def one(out: list[tuple[bytes, Any]]) -> bytes:
    assert len(out) == 1, out
    return out[0][0]


def run(
    feed: dict[str, bytes] | None = None, slim: bool = False
) -> tuple[dict[str, bytes], list[Any], list[Any]]:
    """The vector scenario (with `slim`, the client offers slim payloads too: the
    names of SLIM stand for those that differ). With `feed`, each receiver gets the
    document's bytes instead of what its peer just produced. Returns the packets
    and both event lists."""
    token = public_token()
    host, player = server(), client(token, slim)
    made: dict[str, bytes] = {}
    ad = token_associated_data(PROTOCOL_VERSION, APPLICATION_ID, token.expires_at)
    made["private_token"] = new_aead(TOKEN_KEY).decrypt(token.nonce, token.sealed, ad)

    def step(name: str, data: bytes) -> bytes:
        if slim:
            name = SLIM.get(name, name)
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
    hello, state = INPUTS["client_message"], INPUTS["host_message"]
    player.send_message(hello["channel"], unhex(hello["hex"]))
    # The first payload, then the keepalive offering short payloads (§5.9) ...
    payload, offer = [d for d, _ in player.datagrams_to_send(NOW)]
    host.receive_datagram(step("payload_client", payload), CLIENT_ADDR, NOW)
    host.receive_datagram(step("offer", offer), CLIENT_ADDR, NOW)
    host_events = [e for e in iter(host.next_event, None)]
    sid = host_events[0].session_id
    # ... so the host's payloads go short, and then the client's.
    host.send_message(sid, state["channel"], unhex(state["hex"]))
    payload = step("payload_server", one(host.datagrams_to_send(NOW)))
    player.receive_datagram(payload, SERVER_ADDR, NOW)
    player.send_message(UNRELIABLE, unhex(hello["hex"]))  # acks the state; is never resent
    payload = step("payload_client_short", one(player.datagrams_to_send(NOW)))
    host.receive_datagram(payload, CLIENT_ADDR, NOW)
    later = INPUTS["keepalive_time"]
    player.handle_timer(later)
    keepalive = step("keepalive", one(player.datagrams_to_send(later)))
    host.receive_datagram(keepalive, CLIENT_ADDR, later)
    player.disconnect()
    disconnects = [d for d, _ in player.datagrams_to_send(later)]
    host.receive_datagram(step("disconnect", disconnects[0]), CLIENT_ADDR, later)
    host_events += [e for e in iter(host.next_event, None)]
    client_events = [e for e in iter(player.next_event, None)]

    full, denied_player = server(Admission.FULL), client(token)
    full.receive_datagram(one(denied_player.datagrams_to_send(NOW)), CLIENT_ADDR, NOW)
    denied = step("denied", one(full.datagrams_to_send(NOW)))
    denied_player.receive_datagram(denied, SERVER_ADDR, NOW)
    client_events += [e for e in iter(denied_player.next_event, None)]
    return made, host_events, client_events


def documented() -> tuple[dict[str, Any], dict[str, bytes]]:
    """The file's token (its JSON, as the lobby sends it) and packets by name."""
    return SESSION["token"], {v["name"]: unhex(v["hex"]) for v in SESSION["vectors"]}


class VectorTests(SynchronousTestCase):
    def test_document_has_every_vector(self) -> None:
        _, packets = documented()
        self.assertEqual(sorted(packets), sorted([*ORDER, *SLIM.values()]))

    def test_produces_the_documented_token(self) -> None:
        token_json, _ = documented()
        self.assertEqual(public_token().to_json(), token_json)
        self.assertEqual(PublicToken.from_json(token_json), public_token())

    def test_produces_the_documented_bytes(self) -> None:
        _, packets = documented()
        made, _, _ = run()
        for name in ORDER:
            self.assertEqual(made[name].hex(), packets[name].hex(), name)
        # With slim payloads offered: those three differ, the others are the same.
        made, _, _ = run(slim=True)
        for name in [*ORDER, *SLIM.values()]:
            if name not in SLIM:
                self.assertEqual(made[name].hex(), packets[name].hex(), name)
        self.assertEqual(made["payload_server_slim"][0], 9)
        self.assertEqual(made["payload_client_slim"][0], 9)

    def test_documented_private_token_seals_to_the_documented_token(self) -> None:
        token_json, packets = documented()
        public = PublicToken.from_json(token_json)
        private = PrivateToken.unpack(packets["private_token"])
        assert private is not None
        self.assertEqual((private.player_id, private.match_id, private.hosts),
                         (public.player_id, public.match_id, public.hosts))
        self.assertEqual(private.client_to_server_key, public.client_to_server_key)
        self.assertEqual(decode_user_data(private.user_data), INPUTS["user_data"])
        self.assertEqual(private.user_data.hex(), INPUTS["user_data_hex"])
        self.assertEqual(seal_private_token(private, protocol(), public.expires_at, public.nonce),
                         public.sealed)

    def test_accepts_the_documented_bytes(self) -> None:
        _, packets = documented()
        _, host_events, client_events = run(feed=packets)
        connected = host_events[0]
        self.assertIsInstance(connected, SessionConnected)
        self.assertEqual((connected.player_id, connected.match_id, connected.address),
                         (INPUTS["player_id"], INPUTS["match_id"], CLIENT_ADDR))  # fmt: skip
        hello, state = INPUTS["client_message"], INPUTS["host_message"]
        sent = MessageReceived(connected.session_id, hello["channel"], unhex(hello["hex"]))
        again = MessageReceived(connected.session_id, UNRELIABLE, unhex(hello["hex"]))
        self.assertEqual(host_events[1:3], [sent, again])  # long, then short
        self.assertEqual(host_events[3], SessionClosed(connected.session_id, "disconnect"))
        self.assertEqual(len(host_events), 4)
        self.assertIsInstance(client_events[0], SessionConnected)
        self.assertEqual(client_events[1], MessageReceived(connected.session_id, state["channel"],
                                                           unhex(state["hex"])))  # fmt: skip
        self.assertEqual(client_events[2], SessionClosed(connected.session_id, "closed"))
        self.assertEqual([type(e).__name__ for e in client_events[3:]], ["ConnectFailed"])
        self.assertEqual(client_events[3].reason, "denied")
        # The slim vectors deliver the same messages.
        self.assertEqual(run(feed=packets, slim=True)[1:], (host_events, client_events))

    def test_the_derived_values_are_the_counted_bytes(self) -> None:
        token_json, packets = documented()
        derived = SESSION["derived"]
        public = PublicToken.from_json(token_json)
        self.assertEqual((public.client_to_server_key.hex(), public.server_to_client_key.hex(),
                          public.nonce.hex()),
                         (derived["client_to_server_key"], derived["server_to_client_key"],
                          derived["token_nonce"]))  # fmt: skip
        sequence = {name: int.from_bytes(packets[name][1:7], "little")
                    for name in ("challenge", "response", "welcome", "denied")}  # fmt: skip
        self.assertEqual(sequence, {"challenge": derived["first_stateless_sequence"],
                                    "denied": derived["first_stateless_sequence"],
                                    "response": derived["client_first_sequence"],
                                    "welcome": derived["first_session_sequence"]})  # fmt: skip

    def test_scenario_connects(self) -> None:
        token = public_token()
        host, player = server(), client(token)
        host.receive_datagram(one(player.datagrams_to_send(NOW)), CLIENT_ADDR, NOW)
        player.receive_datagram(one(host.datagrams_to_send(NOW)), SERVER_ADDR, NOW)
        host.receive_datagram(one(player.datagrams_to_send(NOW)), CLIENT_ADDR, NOW)
        player.receive_datagram(one(host.datagrams_to_send(NOW)), SERVER_ADDR, NOW)
        self.assertEqual(player.state, CONNECTED)
