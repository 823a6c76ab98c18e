"""A hostile network: replayed, bit-flipped, truncated and random datagrams.

Every such packet must be dropped silently and counted: no event, no state
change, no reply (beyond a `welcome` repeated to the address a genuine
`response` came from, which is smaller than that response).
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Iterator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.protocol.test_protocol_handshake import state_size
from tests.protocol.test_protocol_support import (
    APPLICATION_ID,
    CLIENT_ADDR,
    OTHER_ADDR,
    SERVER_ADDR,
    WALL,
    FakeAdmission,
    Net,
)
from vinom.protocol.client import CONNECTED, REQUESTING, RESPONDING, ClientConnection
from vinom.protocol.config import DEFAULT_DISCONNECT_REDUNDANCY, ClientConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import RELIABLE, MessageReceived, SessionClosed
from vinom.protocol.interfaces import Admission
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.server_session import MALFORMED_BODIES
from vinom.protocol.wire import (
    CHALLENGE,
    DENIED,
    DISCONNECT,
    KEEPALIVE,
    PACKET_NAMES,
    PAYLOAD,
    PROTOCOL_VERSION,
    REQUEST,
    REQUEST_PADDING,
    REQUEST_SIZE,
    RESPONSE,
    SEALED_TOKEN_SIZE,
    SHORT_PAYLOAD,
    SLIM_PAYLOAD,
    WELCOME,
)


def damaged(packet: bytes) -> Iterator[bytes]:
    """Every single-byte flip (two ways) and every truncation of `packet`."""
    for i in range(len(packet)):
        for mask in (0x01, 0xFF):
            flipped = bytearray(packet)
            flipped[i] ^= mask
            yield bytes(flipped)
    for n in range(len(packet)):
        yield packet[:n]


def drain(endpoint: ServerEndpoint | ClientConnection) -> list[object]:
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events


class Handshake:
    """A client and a host moved one packet at a time, keeping every packet seen. The
    client makes no offer of short or slim payloads (§5.9, §5.10) unless `short` or
    `slim`: as an older one."""

    def __init__(self, admission: FakeAdmission | None = None, short: bool = False,
                 slim: bool = False) -> None:
        self.net = Net(admission=admission)
        self.server = self.net.server
        self.now = self.net.now
        self.token = self.net.token()
        config = ClientConfig(short_payloads=short, slim_payloads=slim)
        self.client = ClientConnection(self.token, self.now, wall_clock=lambda: WALL,
                                       config=config)
        self.packets: dict[str, bytes] = {}

    def client_sends(self) -> bytes:
        (data, _to), = self.client.datagrams_to_send(self.now)
        self.packets.setdefault("client " + PACKET_NAMES[data[0]], data)
        return data

    def server_sends(self) -> bytes:
        (data, _to), = self.server.datagrams_to_send(self.now)
        self.packets.setdefault("server " + PACKET_NAMES[data[0]], data)
        return data


class DamagedPacketTests(SynchronousTestCase):
    """Each packet type, damaged every way, reaches a receiver in the state it expects."""

    def assert_server_unmoved(self, hs: Handshake, variants: Iterator[bytes],
                              addr: tuple[str, int] = CLIENT_ADDR) -> int:
        before = state_size(hs.server)
        n = 0
        for data in variants:
            hs.server.receive_datagram(data, addr, hs.now)
            self.assertEqual(hs.server.datagrams_to_send(hs.now), [], data.hex())
            self.assertEqual(drain(hs.server), [])
            self.assertEqual(state_size(hs.server), before)
            n += 1
        return n

    def assert_client_unmoved(self, hs: Handshake, variants: Iterator[bytes]) -> int:
        state = hs.client.state
        n = 0
        for data in variants:
            hs.client.receive_datagram(data, SERVER_ADDR, hs.now)
            self.assertEqual(hs.client.state, state, data.hex())
            self.assertEqual(drain(hs.client), [])
            self.assertEqual(hs.client.datagrams_to_send(hs.now), [])
            n += 1
        return n

    def test_every_packet_type(self) -> None:
        hs = Handshake()
        request = hs.client_sends()
        self.assertEqual(len(request), REQUEST_SIZE)
        self.assert_server_unmoved(hs, damaged(request))
        self.assertEqual(hs.server.drops["token_expired"] + hs.server.drops["token_invalid"]
                         + hs.server.drops["wrong_application"] > 0, True)

        hs.server.receive_datagram(request, CLIENT_ADDR, hs.now)
        challenge = hs.server_sends()
        self.assertEqual(challenge[0], CHALLENGE)
        self.assertEqual(hs.client.state, REQUESTING)
        self.assert_client_unmoved(hs, damaged(challenge))

        hs.client.receive_datagram(challenge, SERVER_ADDR, hs.now)
        response = hs.client_sends()
        self.assertEqual((hs.client.state, response[0]), (RESPONDING, RESPONSE))
        self.assert_server_unmoved(hs, damaged(response))

        hs.server.receive_datagram(response, CLIENT_ADDR, hs.now)
        welcome = hs.server_sends()
        (connected,) = drain(hs.server)
        sid = connected.session_id  # type: ignore[attr-defined]
        self.assertEqual(welcome[0], WELCOME)
        self.assert_client_unmoved(hs, damaged(welcome))

        hs.client.receive_datagram(welcome, SERVER_ADDR, hs.now)
        self.assertEqual(hs.client.state, CONNECTED)
        drain(hs.client)

        # Payloads both ways: damaged copies change nothing, and the genuine
        # packet still gets through afterwards (forgeries did not move the window).
        hs.client.send_message(RELIABLE, b"to host")
        payload = hs.client_sends()
        self.assertEqual(payload[0], PAYLOAD)
        self.assert_server_unmoved(hs, damaged(payload))
        hs.server.receive_datagram(payload, CLIENT_ADDR, hs.now)
        self.assertEqual([(e.channel, e.data) for e in drain(hs.server)  # type: ignore[attr-defined]
                          ], [(1, b"to host")])
        hs.server.datagrams_to_send(hs.now)

        hs.server.send_message(sid, RELIABLE, b"to client")
        payload = hs.server_sends()
        self.assert_client_unmoved(hs, damaged(payload))
        hs.client.receive_datagram(payload, SERVER_ADDR, hs.now)
        self.assertEqual([e.data for e in drain(hs.client)],  # type: ignore[attr-defined]
                         [b"to client"])
        hs.client.datagrams_to_send(hs.now)

        # Keepalives both ways, once the acks each side owes have gone out.
        hs.now += 0.05
        hs.client.handle_timer(hs.now)
        hs.server.handle_timer(hs.now)
        for data, _ in hs.client.datagrams_to_send(hs.now):
            hs.server.receive_datagram(data, CLIENT_ADDR, hs.now)
        for data, _ in hs.server.datagrams_to_send(hs.now):
            hs.client.receive_datagram(data, SERVER_ADDR, hs.now)
        self.assertEqual(drain(hs.client) + drain(hs.server), [])
        hs.now += 2.0  # past the keepalive interval (timeout / 3)
        hs.client.handle_timer(hs.now)
        keepalive = hs.client_sends()
        self.assertEqual(keepalive[0], KEEPALIVE)
        info = hs.server.session_info
        last = info(sid).last_received  # type: ignore[union-attr]
        self.assert_server_unmoved(hs, damaged(keepalive))
        self.assertEqual(info(sid).last_received, last)  # type: ignore[union-attr]
        hs.server.receive_datagram(keepalive, CLIENT_ADDR, hs.now)
        self.assertEqual(info(sid).last_received, hs.now)  # type: ignore[union-attr]
        hs.server.handle_timer(hs.now)
        keepalive = hs.server_sends()
        self.assertEqual(keepalive[0], KEEPALIVE)
        self.assert_client_unmoved(hs, damaged(keepalive))

        # Disconnects both ways: a damaged one never ends the session.
        hs.server.close_session(sid)
        disconnects = [d for d, _ in hs.server.datagrams_to_send(hs.now)]
        self.assertEqual({d[0] for d in disconnects}, {DISCONNECT})
        # Five copies, as docs/protocol.md says (netcode.io's ten halved), each its own
        # packet: the last alone, the others lost, still ends the session.
        self.assertEqual(len(disconnects), DEFAULT_DISCONNECT_REDUNDANCY)
        self.assertEqual(DEFAULT_DISCONNECT_REDUNDANCY, 5)
        self.assertEqual(len(set(disconnects)), 5)
        self.assert_client_unmoved(hs, damaged(disconnects[-1]))
        hs.client.receive_datagram(disconnects[-1], SERVER_ADDR, hs.now)
        self.assertEqual(hs.client.state, "closed")

    def connected(self, hs: Handshake) -> int:
        for _ in range(2):
            hs.server.receive_datagram(hs.client_sends(), CLIENT_ADDR, hs.now)
            hs.client.receive_datagram(hs.server_sends(), SERVER_ADDR, hs.now)
        (connected,) = drain(hs.server)
        drain(hs.client)
        return connected.session_id  # type: ignore[attr-defined, no-any-return]

    def client_answers(self, hs: Handshake, came: bytes, kind: int, size: int) -> None:
        """After the host's payload `came`, the client's own goes as `kind`, `size`
        bytes: damaged every way it changes nothing, whole it is read; replayed,
        each side drops the other's packet and counts it."""
        hs.client.send_message(RELIABLE, b"back")
        mine = hs.client_sends()
        self.assertEqual((mine[0], len(mine)), (kind, size))
        self.assert_server_unmoved(hs, damaged(mine))
        hs.server.receive_datagram(mine, CLIENT_ADDR, hs.now)
        self.assertEqual([e.data for e in drain(hs.server)], [b"back"])  # type: ignore[attr-defined]
        replayed = hs.server.drops["replayed"], hs.client.drops["replayed"]
        hs.server.receive_datagram(mine, CLIENT_ADDR, hs.now)
        hs.client.receive_datagram(came, SERVER_ADDR, hs.now)
        self.assertEqual(drain(hs.server) + drain(hs.client), [])
        self.assertEqual((hs.server.drops["replayed"], hs.client.drops["replayed"]),
                         (replayed[0] + 1, replayed[1] + 1))  # fmt: skip

    def test_the_offer_and_short_payloads(self) -> None:
        """§5.9: the offer, and short payloads both ways, damaged every way and replayed."""
        hs = Handshake(short=True)
        sid = self.connected(hs)
        hs.client.send_message(RELIABLE, b"to host")
        payload, offer = [d for d, _ in hs.client.datagrams_to_send(hs.now)]
        self.assertEqual((payload[0], offer[0], len(offer)), (PAYLOAD, KEEPALIVE, 26))
        hs.server.receive_datagram(payload, CLIENT_ADDR, hs.now)
        self.assertEqual([e.data for e in drain(hs.server)], [b"to host"])  # type: ignore[attr-defined]
        hs.server.datagrams_to_send(hs.now)
        # A damaged offer is no offer: the host's payloads stay long.
        self.assert_server_unmoved(hs, damaged(offer))
        hs.server.send_message(sid, RELIABLE, b"one")
        long = hs.server_sends()
        self.assertEqual(long[0], PAYLOAD)
        hs.client.receive_datagram(long, SERVER_ADDR, hs.now)
        drain(hs.client)
        hs.client.datagrams_to_send(hs.now)
        # The offer itself: the host's payloads go short, 6 bytes fewer ...
        hs.server.receive_datagram(offer, CLIENT_ADDR, hs.now)
        hs.server.send_message(sid, RELIABLE, b"two")
        short = hs.server_sends()
        self.assertEqual((short[0], len(short)), (SHORT_PAYLOAD, len(long) - 6))
        self.assert_client_unmoved(hs, damaged(short))
        hs.client.receive_datagram(short, SERVER_ADDR, hs.now)
        self.assertEqual([e.data for e in drain(hs.client)], [b"two"])  # type: ignore[attr-defined]
        # ... and, once one came, the client's.
        self.client_answers(hs, short, SHORT_PAYLOAD, len(short) + 1)

    def test_the_offer_and_slim_payloads(self) -> None:
        """§5.10: the offer of both, and slim payloads both ways (5 bytes fewer than
        short ones for one message on a clean path), damaged every way and replayed."""
        hs = Handshake(short=True, slim=True)
        sid = self.connected(hs)
        hs.client.send_message(RELIABLE, b"to host")
        payload, offer = [d for d, _ in hs.client.datagrams_to_send(hs.now)]
        self.assertEqual((payload[0], offer[0], len(offer)), (PAYLOAD, KEEPALIVE, 26))
        hs.server.receive_datagram(payload, CLIENT_ADDR, hs.now)
        drain(hs.server)
        hs.server.datagrams_to_send(hs.now)
        hs.server.receive_datagram(offer, CLIENT_ADDR, hs.now)
        # Enough bodies both ways that either side's ack bits are all ones.
        for i in range(40):
            hs.client.send_message(RELIABLE, b"m%d" % i)
            hs.server.send_message(sid, RELIABLE, b"r%d" % i)
            for data, _ in hs.client.datagrams_to_send(hs.now):
                hs.server.receive_datagram(data, CLIENT_ADDR, hs.now)
            for data, _ in hs.server.datagrams_to_send(hs.now):
                hs.client.receive_datagram(data, SERVER_ADDR, hs.now)
            hs.now += 0.02
        for data, _ in hs.client.datagrams_to_send(hs.now):  # the last acks
            hs.server.receive_datagram(data, CLIENT_ADDR, hs.now)
        drain(hs.server)
        drain(hs.client)
        hs.server.send_message(sid, RELIABLE, b"two")
        slim = hs.server_sends()
        # 3 (short header) + 6 (form, sequence, ack, delay) + 2 (id) + 3 + 16 (tag).
        self.assertEqual((slim[0], len(slim)), (SLIM_PAYLOAD, 30))
        self.assert_client_unmoved(hs, damaged(slim))
        hs.client.receive_datagram(slim, SERVER_ADDR, hs.now)
        self.assertEqual([e.data for e in drain(hs.client)], [b"two"])  # type: ignore[attr-defined]
        # ... and, once one came, the client's.
        self.client_answers(hs, slim, SLIM_PAYLOAD, 31)

    def test_a_slim_payload_unasked_for_or_malformed(self) -> None:
        """A client that offered only short payloads (an older one) drops a slim
        payload as of an unknown type. A genuine slim payload whose slim body is
        malformed is counted as a malformed body and changes nothing."""
        hs = Handshake(short=True)
        self.connected(hs)
        base = 2**50  # above either side's sequences so far (random, below 2^48)

        def sealed(key: bytes, kind: int, seq: int, plain: bytes) -> bytes:
            header = struct.pack("<BQ", kind, seq)
            short = struct.pack("<BH", kind, seq & 0xFFFF) if kind >= SHORT_PAYLOAD else header
            return short + new_aead(key).encrypt(struct.pack("<IQ", 0, seq), plain, header)

        to_client = hs.token.server_to_client_key
        hs.client.receive_datagram(sealed(to_client, KEEPALIVE, base, b""), SERVER_ADDR, hs.now)
        one = bytes.fromhex("10" "0000" "0000" "00" "0000") + b"x"  # a slim body of one message
        hs.client.receive_datagram(sealed(to_client, SLIM_PAYLOAD, base + 1, one),
                                   SERVER_ADDR, hs.now)  # fmt: skip
        self.assertEqual(hs.client.drops["unknown_type"], 1)
        self.assertEqual(drain(hs.client), [])
        # The host, offered slim payloads: form bits 6 and 7 are reserved, bit 5
        # needs bit 4, the ack bytes the form names must be there, a body shorter
        # than 6 bytes is none.
        to_host = hs.token.client_to_server_key
        hs.server.receive_datagram(sealed(to_host, KEEPALIVE, base, b"\x03"), CLIENT_ADDR, hs.now)
        bad = ("40000000000000", "20000000000000", "0f000000000000ffff", "0000000000")
        before = state_size(hs.server)
        for n, plain in enumerate(bad, 1):
            datagram = sealed(to_host, SLIM_PAYLOAD, base + n, bytes.fromhex(plain))
            hs.server.receive_datagram(datagram, CLIENT_ADDR, hs.now)
        self.assertEqual(hs.server.drops["malformed_body"], len(bad))
        self.assertEqual(drain(hs.server), [])
        self.assertEqual(state_size(hs.server), before)
        # A well-formed one after them is delivered.
        datagram = sealed(to_host, SLIM_PAYLOAD, base + 9, bytes.fromhex("3005000300000000") + b"m")
        hs.server.receive_datagram(datagram, CLIENT_ADDR, hs.now)
        self.assertEqual([e.data for e in drain(hs.server)], [b"m"])  # type: ignore[attr-defined]

    def test_malformed_bodies_past_the_allowance_end_the_session(self) -> None:
        """Issue 73: an authenticated peer sending malformed slim bodies by the million
        cost the host an AEAD open each, for ever. MALFORMED_BODIES are counted
        `malformed_body`; the next ends the session, counted `flood` (SessionClosed
        reason `flood`, the peer told with `disconnect`s), and its datagrams then
        find no session, as a stranger's do."""
        doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
        self.assertIn(f"{MALFORMED_BODIES} in a session at most (`MALFORMED_BODIES`",
                      " ".join(doc.split()))  # fmt: skip
        hs = Handshake(slim=True)
        sid = self.connected(hs)
        base = 2**50  # above either side's sequences so far (random, below 2^48)
        to_host = new_aead(hs.token.client_to_server_key)

        def slim(seq: int, plain: bytes) -> bytes:
            header = struct.pack("<BQ", SLIM_PAYLOAD, seq)
            return (struct.pack("<BH", SLIM_PAYLOAD, seq & 0xFFFF)
                    + to_host.encrypt(struct.pack("<IQ", 0, seq), plain, header))  # fmt: skip

        # A keepalive brings the host's window up to `base` (short sequences follow it).
        header = struct.pack("<BQ", KEEPALIVE, base)
        keepalive = header + to_host.encrypt(struct.pack("<IQ", 0, base), b"\x03", header)
        hs.server.receive_datagram(keepalive, CLIENT_ADDR, hs.now)
        bad = bytes.fromhex("40000000000000")  # form bit 6 is reserved
        for n in range(1, MALFORMED_BODIES + 1):
            hs.server.receive_datagram(slim(base + n, bad), CLIENT_ADDR, hs.now)
        self.assertEqual(hs.server.drops["malformed_body"], MALFORMED_BODIES)
        self.assertEqual((drain(hs.server), hs.server.session_count), ([], 1))
        hs.server.receive_datagram(slim(base + MALFORMED_BODIES + 1, bad), CLIENT_ADDR, hs.now)
        self.assertEqual(drain(hs.server), [SessionClosed(sid, "flood")])
        self.assertEqual((hs.server.drops["flood"], hs.server.session_count), (1, 0))
        told = hs.server.datagrams_to_send(hs.now)
        self.assertEqual([data[0] for data, _ in told],
                         [DISCONNECT] * DEFAULT_DISCONNECT_REDUNDANCY)  # fmt: skip
        # A well-formed body now is a stranger's: no session, no AEAD open, no reply.
        good = slim(base + 200, bytes.fromhex("3005000300000000") + b"m")
        held = hs.server.held_entries()
        hs.server.receive_datagram(good, CLIENT_ADDR, hs.now)
        self.assertEqual(hs.server.drops["no_session"], 1)
        self.assertEqual((drain(hs.server), hs.server.datagrams_to_send(hs.now)), ([], []))
        self.assertEqual(hs.server.held_entries(), held)
        # The client hears the disconnect.
        hs.client.receive_datagram(told[0][0], SERVER_ADDR, hs.now)
        self.assertIn(SessionClosed(hs.client.session_id, "disconnect"), drain(hs.client))

    def test_a_short_sequence_past_the_largest_is_dropped(self) -> None:
        """A peer holding the keys, its sequence at 2^64 - 2: a short payload whose
        low bits reach past 2^64 - 1 has no sequence, and is dropped as replayed."""
        hs = Handshake(short=True)
        self.connected(hs)
        key = new_aead(hs.token.client_to_server_key)

        def sealed(kind: int, seq: int, plain: bytes, header: bytes) -> bytes:
            return header + key.encrypt(struct.pack("<IQ", 0, seq), plain,
                                        struct.pack("<BQ", kind, seq))  # fmt: skip

        last = 2**64 - 2
        keepalive = sealed(KEEPALIVE, last, b"", struct.pack("<BQ", KEEPALIVE, last))
        hs.server.receive_datagram(keepalive, CLIENT_ADDR, hs.now)
        body = bytes(9)  # an ack-only body
        past = sealed(SHORT_PAYLOAD, last, body, struct.pack("<BH", SHORT_PAYLOAD, 5))
        replayed = hs.server.drops["replayed"]
        hs.server.receive_datagram(past, CLIENT_ADDR, hs.now)
        self.assertEqual(hs.server.drops["replayed"], replayed + 1)
        self.assertEqual(hs.server.session_count, 1)

    def test_an_offer_unanswered_is_made_four_times(self) -> None:
        """A host that never sends a short payload (an older one; here, the offers
        are lost) costs the session four offers, a second apart, and nothing else."""
        hs = Handshake(short=True)
        self.connected(hs)
        sent: list[tuple[float, bytes]] = []
        for _ in range(80):
            hs.client.send_message(RELIABLE, b"m")
            for data, _ in hs.client.datagrams_to_send(hs.now):
                sent.append((hs.now, data))
                if data[0] == PAYLOAD:
                    hs.server.receive_datagram(data, CLIENT_ADDR, hs.now)
            for data, _ in hs.server.datagrams_to_send(hs.now):
                hs.client.receive_datagram(data, SERVER_ADDR, hs.now)
            hs.now += 0.1
            hs.client.handle_timer(hs.now)
        offers = [at for at, data in sent if data[0] == KEEPALIVE and len(data) == 26]
        self.assertEqual(len(offers), 4)
        self.assertEqual([round(b - a, 6) for a, b in itertools.pairwise(offers)], [1.0] * 3)
        self.assertEqual({data[0] for _, data in sent} - {KEEPALIVE}, {PAYLOAD})

    def test_client_disconnect_and_denied(self) -> None:
        hs = Handshake()
        hs.server.receive_datagram(hs.client_sends(), CLIENT_ADDR, hs.now)
        hs.client.receive_datagram(hs.server_sends(), SERVER_ADDR, hs.now)
        hs.server.receive_datagram(hs.client_sends(), CLIENT_ADDR, hs.now)
        hs.client.receive_datagram(hs.server_sends(), SERVER_ADDR, hs.now)
        drain(hs.server)
        hs.client.disconnect()
        disconnects = [d for d, _ in hs.client.datagrams_to_send(hs.now)]
        self.assertEqual(len(disconnects), DEFAULT_DISCONNECT_REDUNDANCY)
        self.assert_server_unmoved(hs, damaged(disconnects[0]))
        self.assertEqual(hs.server.session_count, 1)
        hs.server.receive_datagram(disconnects[3], CLIENT_ADDR, hs.now)
        self.assertEqual(hs.server.session_count, 0)

        full = Handshake(FakeAdmission(Admission.FULL))
        full.server.receive_datagram(full.client_sends(), CLIENT_ADDR, full.now)
        denied = full.server_sends()
        self.assertEqual(denied[0], DENIED)
        self.assert_client_unmoved(full, damaged(denied))
        full.client.receive_datagram(denied, SERVER_ADDR, full.now)
        self.assertEqual(full.client.state, "failed")


class ReplayTests(SynchronousTestCase):
    def lifecycle(self) -> tuple[Net, int]:
        net = Net()
        net.connect()
        net.run(0.1)
        event = net.connected()
        assert event is not None
        sid = event.session_id
        for i in range(5):
            net.clients[CLIENT_ADDR].send_message(RELIABLE, b"c%d" % i)
            net.server.send_message(sid, RELIABLE, b"s%d" % i)
            net.run(0.05)
        net.run(2.5)  # keepalives
        return net, sid

    def replay_all(self, net: Net) -> tuple[list[object], list[object], list[bytes]]:
        recorded = list(net.wire)
        for _, src, dst, data in recorded:
            if dst == SERVER_ADDR:
                net.server.receive_datagram(data, src, net.now)
            elif dst in net.clients:
                net.clients[dst].receive_datagram(data, src, net.now)
        replies = [d for d, _ in net.server.datagrams_to_send(net.now)]
        replies += [d for c in net.clients.values() for d, _ in c.datagrams_to_send(net.now)]
        return drain(net.server), drain(net.clients[CLIENT_ADDR]), replies

    def test_replay_every_packet_mid_session(self) -> None:
        net, _sid = self.lifecycle()
        net.drain_events()
        self.assertEqual({PACKET_NAMES[d[0]] for _, _, _, d in net.wire},
                         {"request", "challenge", "response", "welcome", "payload", "keepalive",
                          "slim_payload"})  # fmt: skip
        server_events, client_events, replies = self.replay_all(net)
        self.assertEqual(server_events, [])
        self.assertEqual(client_events, [])
        # Only the response's replay earns anything: the (smaller) welcome again.
        self.assertEqual({d[0] for d in replies}, {WELCOME})
        self.assertEqual(net.server.session_count, 1)
        self.assertGreater(net.server.drops["replayed"], 10)
        self.assertGreater(net.clients[CLIENT_ADDR].drops["replayed"], 10)
        # The session is unharmed.
        net.clients[CLIENT_ADDR].send_message(RELIABLE, b"still here")
        net.run(0.1)
        self.assertEqual(net.messages(None)[-1].data, b"still here")

    def test_replay_everything_after_the_end(self) -> None:
        net, _sid = self.lifecycle()
        net.clients[CLIENT_ADDR].disconnect()
        net.run(0.1)
        net.drain_events()
        self.assertIn(DISCONNECT, {d[0] for _, _, _, d in net.wire})
        server_events, client_events, replies = self.replay_all(net)
        self.assertEqual((server_events, client_events, replies), ([], [], []))
        self.assertEqual(net.server.session_count, 0)
        self.assertGreater(net.server.drops["token_reused"], 0)

    def test_old_disconnects_cannot_end_a_new_session(self) -> None:
        net, _sid = self.lifecycle()
        net.clients[CLIENT_ADDR].disconnect()
        net.run(0.1)
        old = [d for _, s, _, d in net.wire if s == CLIENT_ADDR and d[0] == DISCONNECT]
        net.connect(net.token(), CLIENT_ADDR)  # a fresh token, same address
        net.run(0.1)
        self.assertEqual(net.server.session_count, 1)
        for data in old:
            net.server.receive_datagram(data, CLIENT_ADDR, net.now)
        self.assertEqual(net.server.session_count, 1)
        # Refused as replays if older than the new session's window, else by the AEAD.
        self.assertEqual(net.server.drops["decrypt_failed"] + net.server.drops["replayed"],
                         len(old))


class RandomDatagramTests(SynchronousTestCase):
    def connected(self) -> tuple[Net, int]:
        net = Net()
        net.connect()
        net.run(0.1)
        event = net.connected()
        assert event is not None
        net.drain_events()
        return net, event.session_id

    def random_datagrams(self, rng: random.Random, count: int) -> Iterator[bytes]:
        prefix = struct.pack("<BIQQ", REQUEST, PROTOCOL_VERSION, APPLICATION_ID, int(WALL) + 60)
        for _ in range(count):
            r = rng.random()
            if r < 0.05:
                # Plausible requests: right size, version, application and expiry,
                # so the token's AEAD is what refuses them.
                yield prefix + rng.randbytes(12 + SEALED_TOKEN_SIZE) + bytes(REQUEST_PADDING)
            elif r < 0.1:
                yield bytes([rng.randrange(8)]) + rng.randbytes(REQUEST_SIZE - 1)
            elif r < 0.7:
                yield bytes([rng.randrange(8)]) + rng.randbytes(rng.randrange(0, 200))
            else:
                yield rng.randbytes(rng.randrange(0, 1400))

    def test_a_hundred_thousand_random_datagrams_at_the_host(self) -> None:
        net, _sid = self.connected()
        rng = random.Random(20240501)
        server = net.server
        received = 0
        sent_before = server.unauthenticated_bytes_sent
        for i, data in enumerate(self.random_datagrams(rng, 100_000)):
            addr = CLIENT_ADDR if i % 2 else (f"203.0.113.{i % 250}", 1024 + i % 5000)
            server.receive_datagram(data, addr, net.now)
            received += len(data)
        self.assertEqual(server.datagrams_to_send(net.now), [])
        self.assertEqual(drain(server), [])
        self.assertEqual(server.session_count, 1)
        self.assertEqual(server.unauthenticated_bytes_sent, sent_before)
        self.assertGreaterEqual(server.unauthenticated_bytes_received, received)
        self.assertEqual(sum(server.drops.values()), 100_000)
        self.assertGreater(server.drops["token_invalid"], 1000)
        # The real client is unaffected.
        net.clients[CLIENT_ADDR].send_message(RELIABLE, b"ok")
        net.run(0.1)
        self.assertEqual([m.data for m in net.messages(None)], [b"ok"])

    def test_a_hundred_thousand_random_datagrams_at_the_client(self) -> None:
        net, sid = self.connected()
        client = net.clients[CLIENT_ADDR]
        rng = random.Random(7)
        for i, data in enumerate(self.random_datagrams(rng, 100_000)):
            client.receive_datagram(data, SERVER_ADDR if i % 2 else OTHER_ADDR, net.now)
        self.assertEqual(client.datagrams_to_send(net.now), [])
        self.assertEqual(drain(client), [])
        self.assertEqual(client.state, CONNECTED)
        self.assertEqual(sum(client.drops.values()), 100_000)
        net.server.send_message(sid, RELIABLE, b"ok")
        net.run(0.1)
        self.assertEqual([m.data for m in net.messages(CLIENT_ADDR)
                          if isinstance(m, MessageReceived)], [b"ok"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=1300), max_size=20), st.booleans())
    def test_arbitrary_bytes_earn_nothing(self, datagrams: list[bytes], from_peer: bool) -> None:
        net, _sid = self.connected()
        addr = CLIENT_ADDR if from_peer else OTHER_ADDR
        for data in datagrams:
            net.server.receive_datagram(data, addr, net.now)
            net.clients[CLIENT_ADDR].receive_datagram(data, SERVER_ADDR, net.now)
        self.assertEqual(net.server.datagrams_to_send(net.now), [])
        self.assertEqual(drain(net.server), [])
        self.assertEqual(drain(net.clients[CLIENT_ADDR]), [])
        self.assertEqual(net.server.session_count, 1)
