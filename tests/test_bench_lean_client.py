"""The udp-echo and play loads' lean client sends exactly what ClientConnection would.

Two twin `ClientConnection`s (same token, same first sequence) complete the
handshake with a real `ServerEndpoint`; one twin then becomes a
`LeanSession`. Every datagram the host sends goes to both; each answers every
message it delivers (echo: on channel 0; play: one reliable message); the
datagrams they produce must be the same bytes, and the host must accept them
all.
"""

# slow: starts benchmark processes

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from benchmarks.lean_client import LeanSession
from tests.protocol.test_protocol_support import CLIENT_ADDR, HOST, SERVER_ADDR, WALL, FakeAdmission
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import ClientConfig, HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import RELIABLE, UNRELIABLE, MessageReceived
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.tokens import TokenIssuer
from vinom.protocol.wire import DISCONNECT, KEEPALIVE, PAYLOAD, SHORT_PAYLOAD

KEY = bytes(range(32))


def fixed(n: int) -> bytes:
    return bytes(range(7, 7 + n))


class Twins:
    """Two clients of one session, the real one and a twin handed to a LeanSession;
    both offer short payloads (docs/protocol.md §5.9) unless `short` is False."""

    def __init__(self, short: bool = True) -> None:
        self.now = 1000.0
        protocol = ProtocolConfig(token_key=KEY)
        self.server = ServerEndpoint(
            HostConfig(protocol, (HOST,)), FakeAdmission(), wall_clock=lambda: WALL
        )
        token = TokenIssuer(IssuerConfig(protocol)).issue_token(
            player_id="p-1", match_id="m-1", hosts=(HOST,), now=WALL
        )
        config = ClientConfig(short_payloads=short, slim_payloads=False)
        self.real = ClientConnection(token, self.now, addresses=[SERVER_ADDR], config=config,
                                     wall_clock=lambda: WALL, random_bytes=fixed)
        twin = ClientConnection(token, self.now, addresses=[SERVER_ADDR], config=config,
                                wall_clock=lambda: WALL, random_bytes=fixed)
        for _ in range(3):  # request, response: the handshake
            out = self.real.datagrams_to_send(self.now)
            self.assertSame(out, twin.datagrams_to_send(self.now))
            for datagram, _ in out:
                self.server.receive_datagram(datagram, CLIENT_ADDR, self.now)
            for datagram, _ in self.server.datagrams_to_send(self.now):
                self.real.receive_datagram(datagram, SERVER_ADDR, self.now)
                twin.receive_datagram(datagram, SERVER_ADDR, self.now)
        assert self.real.is_connected and twin.is_connected
        while self.real.next_event() is not None:
            pass
        self.lean = LeanSession(twin, clock=lambda: self.now)
        self.session_id = self.server.session_ids()[0]
        self.echoed = 0

    @staticmethod
    def assertSame(a: object, b: object) -> None:
        assert a == b, (a, b)

    def host_sends(self, messages: list[bytes]) -> list[bytes]:
        for message in messages:
            self.server.send_message(self.session_id, UNRELIABLE, message)
        return [d for d, _ in self.server.datagrams_to_send(self.now)]

    def both_receive(self, datagram: bytes, reliable: bool = False) -> list[bytes]:
        """Both twins take `datagram` and answer what it delivers (`reliable`: with one
        reliable message for the lot, as a play client moves); returns what the real
        one sent, after checking the lean one sent the same."""
        self.real.receive_datagram(datagram, SERVER_ADDR, self.now)
        replies = []
        while (event := self.real.next_event()) is not None:
            if isinstance(event, MessageReceived):
                replies.append(b"re:" + event.data)
        if reliable and replies:
            self.real.send_message(RELIABLE, b"move after " + replies[-1])
        else:
            for reply in replies:
                self.real.send_message(UNRELIABLE, reply)
        sent = [d for d, _ in self.real.datagrams_to_send(self.now)]
        delivered = self.lean.receive(datagram)
        self.assertSame([b"re:" + m for m in delivered], replies)
        if reliable and delivered:
            lean_sent = [self.lean.send_reliable(b"move after re:" + delivered[-1])]
        else:
            lean_sent = self.lean.seal([b"re:" + m for m in delivered])
        self.assertSame(lean_sent, sent)
        self.echoed += len(replies)
        return sent

    def to_host(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            self.server.receive_datagram(datagram, CLIENT_ADDR, self.now)
        while self.server.next_event() is not None:
            pass


class LeanSessionTests(SynchronousTestCase):
    def test_one_message_each_way(self) -> None:
        twins = Twins()
        for n in range(300):
            twins.now += 0.001
            (datagram,) = twins.host_sends([b"state %d" % n])
            sent = twins.both_receive(datagram)
            # Short both ways: the host had the offer; the twins had a short one.
            self.assertEqual({datagram[0]} | {d[0] for d in sent}, {SHORT_PAYLOAD})
            twins.to_host(sent)
        self.assertEqual(twins.echoed, 300)
        self.assertEqual(dict(twins.server.drops), {})
        reliability = twins.server.reliability(twins.session_id)
        assert reliability is not None
        self.assertEqual(reliability.lost_packets, 0)
        self.assertGreaterEqual(reliability.acked_packets, 299)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.integers(1, 80), st.integers(1, 300),
                              st.sampled_from(["deliver", "duplicate", "drop", "reverse"])),
                    min_size=1, max_size=25))
    def test_same_datagrams_whatever_the_host_sends(
        self, rounds: list[tuple[int, int, str]]
    ) -> None:
        """Batches of snapshots (several per body, several bodies), duplicates, losses
        and reordering: the lean session answers with the same bytes."""
        twins = Twins()
        for count, size, fate in rounds:
            twins.now += 0.002
            datagrams = twins.host_sends([bytes([n % 256]) * size for n in range(count)])
            if fate == "drop":
                datagrams = datagrams[1:]
            elif fate == "duplicate":
                datagrams = datagrams + datagrams[:1]
            elif fate == "reverse":
                datagrams = datagrams[::-1]
            for datagram in datagrams:
                twins.to_host(twins.both_receive(datagram))
        self.assertEqual(dict(twins.server.drops), {})
        self.assertFalse(twins.lean.closed)

    def test_keepalives_are_taken_and_disconnect_closes(self) -> None:
        twins = Twins()
        twins.now += 2.0
        twins.server.handle_timer(twins.now)
        out = [d for d, _ in twins.server.datagrams_to_send(twins.now)]
        self.assertEqual([d[0] for d in out], [KEEPALIVE])
        self.assertEqual(twins.both_receive(out[0]), [])
        self.assertEqual(twins.lean.receive(out[0]), [])  # a replay now
        twins.server.close_session(twins.session_id)
        out = [d for d, _ in twins.server.datagrams_to_send(twins.now)]
        self.assertEqual(out[0][0], DISCONNECT)
        self.assertEqual(twins.lean.receive(out[0]), [])
        self.assertTrue(twins.lean.closed)

    def test_play_moves_on_the_reliable_channel(self) -> None:
        """States in (sometimes two a datagram, sometimes a reliable one from the host),
        one reliable move out per datagram that delivers any: the same bytes."""
        twins = Twins()
        for n in range(200):
            twins.now += 0.001
            if n % 7 == 3:
                twins.server.send_message(twins.session_id, RELIABLE, b"event %d" % n)
            states = [b"state %d" % n] + ([b"other %d" % n] if n % 3 == 0 else [])
            for datagram in twins.host_sends(states):
                twins.to_host(twins.both_receive(datagram, reliable=True))
        self.assertEqual(dict(twins.server.drops), {})
        self.assertFalse(twins.lean.closed)
        reliability = twins.server.reliability(twins.session_id)
        assert reliability is not None
        self.assertEqual(reliability.duplicates_dropped, 0)

    def test_reliable_messages_in_order_and_a_resend(self) -> None:
        twins = Twins()
        twins.server.send_message(twins.session_id, RELIABLE, b"first")
        twins.server.send_message(twins.session_id, RELIABLE, b"x" * 1160)  # next packet
        first, second = [d for d, _ in twins.server.datagrams_to_send(twins.now)]
        self.assertEqual(twins.lean.receive(second), [])  # held until "first" arrives
        self.assertEqual(twins.lean.receive(first), [b"first", b"x" * 1160])
        self.assertTrue(twins.lean.ack_owed)
        datagram = twins.lean.send_reliable(b"move")
        self.assertFalse(twins.lean.ack_owed)
        again = twins.lean.resend()
        self.assertNotEqual(again, datagram)  # a new packet sequence
        for d in (datagram, again):
            twins.server.receive_datagram(d, CLIENT_ADDR, twins.now)
        messages = [e.data for e in iter(twins.server.next_event, None)
                    if isinstance(e, MessageReceived)]
        self.assertEqual(messages, [b"move"])  # the resend is a duplicate to the host
        self.assertEqual(dict(twins.server.drops), {})

    def test_the_ack_owed_for_a_reliable_message(self) -> None:
        """ClientConnection sends it 10 ms later if nothing else goes; the lean client
        sends the same body when asked (at once)."""
        twins = Twins()
        twins.server.send_message(twins.session_id, RELIABLE, b"event")
        (datagram,) = twins.host_sends([])
        twins.real.receive_datagram(datagram, SERVER_ADDR, twins.now)
        self.assertEqual(twins.lean.receive(datagram), [b"event"])  # at the same time
        self.assertEqual([d for d, _ in twins.real.datagrams_to_send(twins.now)], [])
        twins.now += 0.011
        twins.real.handle_timer(twins.now)
        owed = [d for d, _ in twins.real.datagrams_to_send(twins.now)]
        self.assertEqual(len(owed), 1)  # saying it held the ack 11 ms (protocol.md 13.3)
        self.assertTrue(twins.lean.ack_owed)
        self.assertEqual(twins.lean.seal([]), owed)
        self.assertFalse(twins.lean.ack_owed)
        self.assertEqual(twins.lean.seal([]), [])

    def test_an_ack_only_body_from_the_host(self) -> None:
        """The host acks a resent move with an ack-only body: recorded for our acks,
        nothing delivered, the session goes on, and the next datagrams still match."""
        twins = Twins()
        (state,) = twins.host_sends([b"state 1"])
        twins.to_host(twins.both_receive(state, reliable=True))
        # The move again, as a resend: a duplicate to the host, which owes an ack.
        resent: list[tuple[bytes, object]] = []
        while not resent:  # the real twin resends it when its timer says so
            due = twins.real.get_timer()
            assert due is not None
            twins.now = max(twins.now, due)
            twins.real.handle_timer(twins.now)
            resent = twins.real.datagrams_to_send(twins.now)
        self.assertEqual([d for d, _ in resent], [twins.lean.resend()])
        twins.server.receive_datagram(resent[0][0], CLIENT_ADDR, twins.now)
        twins.now += 0.011
        twins.server.handle_timer(twins.now)
        (ack_only,) = [d for d, _ in twins.server.datagrams_to_send(twins.now)]
        self.assertEqual(twins.both_receive(ack_only, reliable=True), [])
        self.assertFalse(twins.lean.closed)
        self.assertEqual(twins.lean.unexpected, 0)
        for n in range(2, 5):
            (state,) = twins.host_sends([b"state %d" % n])
            twins.to_host(twins.both_receive(state, reliable=True))
        self.assertEqual(dict(twins.server.drops), {})

    def test_long_payloads_as_with_a_host_before_short_ones(self) -> None:
        twins = Twins(short=False)
        for n in range(50):
            twins.now += 0.001
            (datagram,) = twins.host_sends([b"state %d" % n])
            self.assertEqual(datagram[0], PAYLOAD)
            twins.to_host(twins.both_receive(datagram))
        self.assertEqual(twins.echoed, 50)
        self.assertEqual(dict(twins.server.drops), {})

    def test_a_fragmented_message_ends_the_lean_session(self) -> None:
        """Neither bench host sends one: counted, and the session ends."""
        twins = Twins()
        twins.server.send_message(twins.session_id, RELIABLE, b"y" * 3000)
        datagram = next(d for d, _ in twins.server.datagrams_to_send(twins.now))
        self.assertEqual(datagram[0], SHORT_PAYLOAD)  # the twins offered them (§5.9)
        self.assertEqual(twins.lean.receive(datagram), [])
        self.assertEqual(twins.lean.unexpected, 1)
        self.assertTrue(twins.lean.closed)

    def test_garbage_and_forgeries_deliver_nothing(self) -> None:
        twins = Twins()
        (datagram,) = twins.host_sends([b"state"])
        forged = bytearray(datagram)
        forged[-1] ^= 1
        for bad in (b"", b"\x05", b"\x08", bytes(forged), b"\x09" + datagram[1:], datagram[:18],
                    b"\x05" + datagram[1:]):  # fmt: skip
            self.assertEqual(twins.lean.receive(bytes(bad)), [])
        self.assertEqual(twins.lean.receive(datagram), [b"state"])
        self.assertFalse(twins.lean.closed)

    def test_only_a_connected_connection_can_be_taken_over(self) -> None:
        protocol = ProtocolConfig(token_key=KEY)
        token = TokenIssuer(IssuerConfig(protocol)).issue_token(
            player_id="p-1", match_id="m-1", hosts=(HOST,), now=WALL
        )
        conn = ClientConnection(token, 0.0, addresses=[SERVER_ADDR], wall_clock=lambda: WALL)
        with self.assertRaises(ValueError):
            LeanSession(conn)


class LatePlayMoves(SynchronousTestCase):
    def test_a_move_not_seen_applied_goes_again_while_the_room_plays(self) -> None:
        from benchmarks.room_load import RESEND_S, LeanPlay, Player

        sent: list[tuple[int, bytes]] = []

        class Session:
            def resend(self) -> bytes:
                return b"again"

        play = LeanPlay.__new__(LeanPlay)
        players = [Player("p-0"), Player("p-1"), Player("p-2")]
        play.clients = [type("C", (), {"data": p})() for p in players]  # type: ignore[misc]
        play.sessions = [Session(), Session(), Session()]  # type: ignore[list-item]
        play.resends = 0
        play.send = lambda index, datagram: sent.append((index, datagram))  # type: ignore[method-assign]
        for player in players:
            player.sent, player.sent_at, player.playing = 3, 10.0, True
        players[1].playing = False  # its room ended: nothing to resend
        players[2].sent_at = 10.0 + RESEND_S  # recent
        play.resend_late(10.0 + RESEND_S + 0.01)
        self.assertEqual(sent, [(0, b"again")])
        self.assertEqual(play.resends, 1)
        self.assertEqual(players[0].sent_at, 10.0 + RESEND_S + 0.01)
