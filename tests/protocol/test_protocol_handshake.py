"""The connect handshake: token checks, the stateless cookie exchange, anti-amplification."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from tests.protocol.test_protocol_support import (
    APPLICATION_ID,
    CLIENT_ADDR,
    HOST,
    OTHER_ADDR,
    SERVER_ADDR,
    TOKEN_KEY,
    WALL,
    FakeAdmission,
    Net,
)
from vinom.protocol.address import HostAddress
from vinom.protocol.client import CONNECTED, FAILED, ClientConnection
from vinom.protocol.config import ClientConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import RELIABLE, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.protocol.server import RECENT_CIPHERS, ServerEndpoint
from vinom.protocol.tokens import PublicToken, TokenIssuer, decode_user_data, encode_user_data
from vinom.protocol.wire import (
    CHALLENGE,
    DENIED,
    KEEPALIVE,
    REQUEST,
    REQUEST_SIZE,
    RESPONSE,
    TAG_SIZE,
    WELCOME,
)


def state_size(server: ServerEndpoint) -> int:
    """Everything the endpoint keeps per peer."""
    return server.held_entries()


def kinds(datagrams: list[bytes]) -> list[int]:
    return [d[0] for d in datagrams]


class HandshakeTests(SynchronousTestCase):
    def test_connects(self) -> None:
        net = Net()
        user = encode_user_data("Ada", 1, 1500.0)
        client = net.connect(net.token(user_data=user))
        net.run(0.1)
        self.assertEqual(client.state, CONNECTED)
        server_side = net.connected(None)
        client_side = net.connected()
        assert server_side is not None and client_side is not None
        self.assertEqual(server_side.session_id, client_side.session_id)
        self.assertEqual((server_side.player_id, server_side.match_id), ("p-1", "m-1"))
        self.assertEqual(server_side.address, CLIENT_ADDR)
        self.assertEqual(client_side.address, SERVER_ADDR)
        self.assertEqual(decode_user_data(server_side.user_data)["name"], "Ada")
        self.assertEqual(net.admission.calls, [("p-1", "m-1"), ("p-1", "m-1")])
        # ... and, once welcomed, the keepalive offering short payloads (§5.9).
        self.assertEqual(kinds(net.sent_by(CLIENT_ADDR)), [REQUEST, RESPONSE, KEEPALIVE])
        self.assertEqual(kinds(net.sent_by(SERVER_ADDR)), [CHALLENGE, WELCOME])
        # The host stamps the welcome when the response arrives: three trips in.
        self.assertAlmostEqual(client.server_time, 1000.0 + net.latency * 3)
        self.assertEqual(dict(net.server.drops), {})

    def test_no_reply_is_larger_than_what_provoked_it(self) -> None:
        net = Net()
        net.connect()
        net.run(0.1)
        request, response, _offer = net.sent_by(CLIENT_ADDR)
        challenge, welcome = net.sent_by(SERVER_ADDR)
        self.assertEqual(len(request), REQUEST_SIZE)
        self.assertLess(len(challenge), len(request))
        self.assertLess(len(welcome), len(response))
        self.assertLessEqual(net.server.unauthenticated_bytes_sent,
                             net.server.unauthenticated_bytes_received)

    def test_host_keeps_nothing_until_the_response(self) -> None:
        net = Net()
        client = net.connect()
        request = client.datagrams_to_send(net.now)[0][0]
        for i in range(50):
            net.server.receive_datagram(request, ("192.0.2.7", 50001 + i), net.now)
        replies = net.server.datagrams_to_send(net.now)
        self.assertEqual(len(replies), 50)
        self.assertEqual(state_size(net.server), 0)
        self.assertEqual(net.server.next_event(), None)

    def test_request_resent_at_ten_hertz_until_timeout(self) -> None:
        net = Net(admission=FakeAdmission(Admission.REFUSE))
        client = net.connect(config=ClientConfig(attempt_timeout=2.0))
        net.run(1.0)
        self.assertIn(len(net.sent_by(CLIENT_ADDR)), (10, 11))
        self.assertTrue(all(len(d) == REQUEST_SIZE for d in net.sent_by(CLIENT_ADDR)))
        net.run(1.5)
        self.assertEqual(client.state, FAILED)
        failed = net.failed()
        assert failed is not None
        self.assertEqual(failed.reason, "timeout")
        self.assertEqual(net.sent_by(SERVER_ADDR), [])
        self.assertEqual(net.server.drops["not_admitted"], len(net.sent_by(CLIENT_ADDR)))
        sent = len(net.sent_by(CLIENT_ADDR))
        net.run(5.0)
        self.assertEqual(len(net.sent_by(CLIENT_ADDR)), sent)  # gave up for good

    def test_lost_welcome_is_resent_and_one_session_made(self) -> None:
        net = Net()
        client = net.connect()
        put = net._put
        lost: list[bytes] = []

        def lose_first_welcome(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
            if src == SERVER_ADDR and data[0] == WELCOME and not lost:
                lost.append(data)
                net.wire.append((net.now, src, dst, data))  # sent, never delivered
                return
            put(data, src, dst)

        net._put = lose_first_welcome  # type: ignore[method-assign]
        net.run(0.5)
        self.assertEqual(len(lost), 1)
        self.assertEqual(client.state, CONNECTED)
        self.assertEqual(net.server.session_count, 1)
        self.assertEqual(len(net.events_of(SessionConnected)), 1)
        self.assertGreaterEqual(kinds(net.sent_by(CLIENT_ADDR)).count(RESPONSE), 2)
        self.assertGreaterEqual(kinds(net.sent_by(SERVER_ADDR)).count(WELCOME), 2)

    def test_lost_challenge_and_lossy_handshake(self) -> None:
        for seed in range(20):
            net = Net(seed=seed, loss=0.5, duplicate=0.2, jitter=0.05)
            client = net.connect()
            net.run(5.0)
            self.assertEqual(client.state, CONNECTED, seed)
            self.assertEqual(net.server.session_count, 1)
            self.assertEqual(len(net.events_of(SessionConnected)), 1)


class KeptCipherTests(SynchronousTestCase):
    """The host keeps the cipher objects of its last handshake steps (RECENT_CIPHERS)
    for the next step: more handshakes at once than it keeps must all work."""

    def test_more_handshakes_in_flight_than_kept_ciphers(self) -> None:
        net = Net()
        count = 2 * RECENT_CIPHERS + 3
        addrs = [(f"192.0.2.{1 + i // 200}", 50000 + i) for i in range(count)]
        for i, addr in enumerate(addrs):
            net.connect(net.token(player_id=f"p-{i}"), addr)
        net.run(0.1)
        self.assertEqual(net.server.session_count, count)
        self.assertEqual(dict(net.server.drops), {})
        # Every session carries messages both ways, the first handshakes' (whose
        # cipher objects went long ago) as well as the last ones'.
        for i, addr in enumerate(addrs):
            net.clients[addr].send_message(RELIABLE, b"up %d" % i)
        net.run(0.1)
        got = sorted(m.data for m in net.messages(None))
        self.assertEqual(got, sorted(b"up %d" % i for i in range(count)))
        for event in net.server_events:
            if isinstance(event, SessionConnected):
                net.server.send_message(event.session_id, RELIABLE, b"down")
        net.run(0.1)
        for addr in addrs:
            self.assertEqual([m.data for m in net.messages(addr)], [b"down"])

    def test_a_session_closed_and_opened_again_with_a_new_token(self) -> None:
        net = Net()
        client = net.connect(net.token())
        net.run(0.1)
        client.disconnect()
        net.run(0.1)
        self.assertEqual(net.server.session_count, 0)
        again = net.connect(net.token(), OTHER_ADDR)
        net.run(0.1)
        self.assertEqual(again.state, CONNECTED)
        again.send_message(RELIABLE, b"back")
        net.run(0.1)
        self.assertEqual([m.data for m in net.messages(None)], [b"back"])


class TokenCheckTests(SynchronousTestCase):
    def assert_silently_dropped(self, net: Net, reason: str) -> None:
        net.run(0.35)
        self.assertEqual(net.sent_by(SERVER_ADDR), [])
        self.assertEqual(net.server.session_count, 0)
        self.assertGreaterEqual(net.server.drops[reason], 3, dict(net.server.drops))
        self.assertEqual(state_size(net.server), 0)

    def test_forged_token(self) -> None:
        net = Net()
        good = net.token()
        forged = PublicToken(good.protocol_version, good.application_id, good.player_id,
                             good.match_id, good.created_at, good.expires_at, good.timeout_ms,
                             good.hosts, good.nonce, os.urandom(len(good.sealed)),
                             good.client_to_server_key, good.server_to_client_key)
        net.connect(forged)
        self.assert_silently_dropped(net, "token_invalid")

    def test_token_sealed_under_another_key(self) -> None:
        net = Net()
        other = TokenIssuer(IssuerConfig(ProtocolConfig(token_key=bytes(32),
                                                        application_id=APPLICATION_ID)))
        net.connect(other.issue_token(player_id="p-1", match_id="m-1", hosts=(HOST,), now=WALL))
        self.assert_silently_dropped(net, "token_invalid")

    def test_claimed_expiry_is_authenticated(self) -> None:
        net = Net()
        good = net.token()
        moved = PublicToken(good.protocol_version, good.application_id, good.player_id,
                            good.match_id, good.created_at, good.expires_at + 3600,
                            good.timeout_ms, good.hosts, good.nonce, good.sealed,
                            good.client_to_server_key, good.server_to_client_key)
        net.connect(moved)
        self.assert_silently_dropped(net, "token_invalid")

    def test_expired_token(self) -> None:
        net = Net()
        token = net.token(now=WALL - 61)  # lifetime 60 s: expired a second ago
        client = net.connect(token)
        net.run(0.1)
        self.assertEqual(client.state, FAILED)
        failed = net.failed()
        assert failed is not None
        self.assertEqual(failed.reason, "token_expired")
        # A client that ignores the expiry is refused by the host anyway.
        net.server.receive_datagram(token.request_packet(), OTHER_ADDR, net.now)
        self.assertEqual(net.server.drops["token_expired"], 1)
        self.assertEqual(net.server.datagrams_to_send(), [])

    def test_wrong_application_id(self) -> None:
        net = Net()
        other = TokenIssuer(IssuerConfig(ProtocolConfig(token_key=TOKEN_KEY,
                                                        application_id=APPLICATION_ID + 1)))
        net.connect(other.issue_token(player_id="p-1", match_id="m-1", hosts=(HOST,), now=WALL))
        self.assert_silently_dropped(net, "wrong_application")

    def test_wrong_version(self) -> None:
        # Version 1 (the 8-byte body header), 2 (snaps as maps) and one from the future.
        net = Net()
        for version in (1, 2, 4):
            request = bytearray(net.token().request_packet())
            self.assertEqual(request[1:5], (3).to_bytes(4, "little"))
            request[1:5] = version.to_bytes(4, "little")
            net.server.receive_datagram(bytes(request), CLIENT_ADDR, net.now)
        self.assertEqual(net.server.drops["wrong_version"], 3)
        self.assertEqual(net.server.datagrams_to_send(), [])

    def test_wrong_host(self) -> None:
        net = Net()
        net.connect(net.token(hosts=(HostAddress("10.0.0.1", 40001),)), addresses=[SERVER_ADDR])
        self.assert_silently_dropped(net, "wrong_host")

    def test_any_named_host_will_do(self) -> None:
        net = Net()
        token = net.token(hosts=(HostAddress("10.0.0.2", 1), HOST))
        client = net.connect(token, addresses=[SERVER_ADDR])
        net.run(0.1)
        self.assertEqual(client.state, CONNECTED)

    def test_request_must_be_full_size_and_zero_padded(self) -> None:
        net = Net()
        request = net.token().request_packet()
        net.server.receive_datagram(request[:-1], CLIENT_ADDR, net.now)
        net.server.receive_datagram(request + b"\0", CLIENT_ADDR, net.now)
        net.server.receive_datagram(request[:-1] + b"\1", CLIENT_ADDR, net.now)
        self.assertEqual(net.server.drops["request_size"], 2)
        self.assertEqual(net.server.drops["request_padding"], 1)
        self.assertEqual(net.server.datagrams_to_send(), [])

    def test_not_admitted_is_silent(self) -> None:
        admission = FakeAdmission()
        admission.per_player["p-1"] = Admission.REFUSE
        net = Net(admission=admission)
        net.connect()
        self.assert_silently_dropped(net, "not_admitted")

    def test_full_room_is_denied_with_a_short_packet(self) -> None:
        net = Net(admission=FakeAdmission(Admission.FULL))
        client = net.connect()
        net.run(0.1)
        self.assertEqual(client.state, FAILED)
        failed = net.failed()
        assert failed is not None
        self.assertEqual(failed.reason, "denied")
        (denied,) = net.sent_by(SERVER_ADDR)
        self.assertEqual(denied[0], DENIED)
        self.assertEqual(len(denied), 9 + TAG_SIZE)
        self.assertLess(len(denied), REQUEST_SIZE)
        self.assertEqual(state_size(net.server), 0)

    def test_forged_denied_is_ignored(self) -> None:
        net = Net(admission=FakeAdmission(Admission.REFUSE))
        client = net.connect()
        client.receive_datagram(bytes([DENIED]) + bytes(24), SERVER_ADDR, net.now)
        self.assertEqual(client.drops["decrypt_failed"], 1)
        self.assertNotEqual(client.state, FAILED)

    def test_denied_moves_on_to_the_next_address(self) -> None:
        net = Net()
        second = ("10.0.0.2", 40000)
        token = net.token(hosts=(HostAddress("10.0.0.3", 40000), HOST))
        client = net.connect(token, addresses=[("10.0.0.3", 40000), SERVER_ADDR],
                             config=ClientConfig(attempt_timeout=0.5))
        net.run(0.3)
        self.assertEqual(client.state, "requesting")
        self.assertEqual(client.server_address, ("10.0.0.3", 40000))
        net.run(0.4)
        self.assertEqual(client.state, CONNECTED)
        self.assertEqual(client.server_address, SERVER_ADDR)
        self.assertNotEqual(second, client.server_address)

    def test_same_token_from_a_second_address(self) -> None:
        net = Net()
        token = net.token()
        net.connect(token)
        net.run(0.1)
        thief = net.connect(token, addr=OTHER_ADDR)
        net.run(0.35)
        self.assertNotEqual(thief.state, CONNECTED)
        self.assertEqual(net.server.session_count, 1)
        self.assertEqual([d for _, _, dst, d in net.wire if dst == OTHER_ADDR], [])
        self.assertGreaterEqual(net.server.drops["already_connected"], 3)

    def test_token_opens_one_session_only(self) -> None:
        net = Net()
        token = net.token()
        first = net.connect(token)
        net.run(0.1)
        first.disconnect()
        net.run(0.1)
        self.assertEqual(net.server.session_count, 0)
        again = net.connect(token, addr=OTHER_ADDR)
        net.run(0.35)
        self.assertNotEqual(again.state, CONNECTED)
        self.assertGreaterEqual(net.server.drops["token_reused"], 3)
        # A fresh token for the same player is fine.
        fresh = net.connect(net.token(), addr=("192.0.2.99", 1))
        net.run(0.1)
        self.assertEqual(fresh.state, CONNECTED)

    def test_tokens_issued_together_are_each_spent_then_forgotten(self) -> None:
        # Tokens issued in the same second expire in the same second: each one
        # still opens one session only, and all are forgotten once expired.
        net = Net()
        tokens = [net.token(player_id=f"p-{i}") for i in range(3)]
        addrs = [("192.0.2.50", 1000 + i) for i in range(3)]
        for token, addr in zip(tokens, addrs, strict=True):
            net.connect(token, addr=addr)
        net.run(0.1)
        self.assertEqual(net.server.session_count, 3)
        for addr in addrs:
            net.clients[addr].disconnect()
        net.run(0.1)
        self.assertEqual(net.server.session_count, 0)
        self.assertEqual(state_size(net.server), 3 + 1, "three nonces, one expiry second")
        for i, token in enumerate(tokens):
            again = net.connect(token, addr=("198.51.100.50", 2000 + i))
            net.run(0.35)
            self.assertNotEqual(again.state, CONNECTED)
        self.assertGreaterEqual(net.server.drops["token_reused"], 9)
        # Once they have expired, the host keeps nothing of them: the next session's
        # token is all it holds after that session closed.
        net.wall += 60.0
        later = net.connect(net.token(player_id="p-later"), addr=("192.0.2.51", 1))
        net.run(0.1)
        self.assertEqual(later.state, CONNECTED)
        later.disconnect()
        net.run(0.1)
        self.assertEqual(state_size(net.server), 2)

    def test_player_connected_with_another_token(self) -> None:
        net = Net()
        net.connect(net.token())
        net.run(0.1)
        second = net.connect(net.token(), addr=OTHER_ADDR)
        net.run(0.35)
        self.assertNotEqual(second.state, CONNECTED)
        self.assertGreaterEqual(net.server.drops["already_connected"], 3)

    def test_reconnect_outlasts_the_old_session(self) -> None:
        """A client that lost its socket comes back with a fresh token at once: the host
        refuses the player until the old session times out, and the new attempt lasts
        long enough to get in then (default config: token timeout + 1 s)."""
        net = Net()
        old = net.connect(net.token())
        net.run(0.5)
        self.assertEqual(old.state, CONNECTED)
        old.send_message(RELIABLE, b"last words")  # the host hears from it right now
        net.run(0.001)
        lost_at = net.now
        del net.clients[CLIENT_ADDR]  # the socket is gone; nothing reaches it any more
        fresh = net.connect(net.token(), addr=OTHER_ADDR)
        net.run(4.9)
        self.assertEqual(fresh.state, "requesting")
        self.assertGreater(net.server.drops["already_connected"], 40)
        net.run(1.0)
        self.assertEqual(fresh.state, CONNECTED)
        self.assertLess(net.now - lost_at, 6.0, "within the attempt's 6 s (timeout + 1 s)")
        self.assertEqual([e.reason for e in net.closed(None)], ["timeout"])
        self.assertIsNone(net.failed(OTHER_ADDR))
        self.assertEqual(net.server.session_count, 1)

    def test_attempt_timeout_follows_the_token(self) -> None:
        self.assertEqual(ClientConfig().attempt_timeout_for(5.0), 6.0)
        self.assertEqual(ClientConfig().attempt_timeout_for(1.0), 5.0)
        self.assertEqual(ClientConfig().attempt_timeout_for(30.0), 31.0)
        self.assertEqual(ClientConfig(attempt_timeout=2.0).attempt_timeout_for(30.0), 2.0)
        self.assertRaises(ValueError, ClientConfig, attempt_timeout=0)

    def test_host_session_limit(self) -> None:
        net = Net(host_config={"max_sessions": 1})
        net.connect(net.token("p-1"))
        net.run(0.1)
        other = net.connect(net.token("p-2"), addr=OTHER_ADDR)
        net.run(0.35)
        self.assertNotEqual(other.state, CONNECTED)
        self.assertGreaterEqual(net.server.drops["host_full"], 3)


class CookieExchangeTests(SynchronousTestCase):
    def challenge_for(self, net: Net, addr: tuple[str, int] = CLIENT_ADDR) -> bytes:
        client = net.connect(addr=addr)
        (request, _), = client.datagrams_to_send(net.now)
        net.server.receive_datagram(request, addr, net.now)
        (challenge, to), = net.server.datagrams_to_send(net.now)
        self.assertEqual(to, addr)
        client.receive_datagram(challenge, SERVER_ADDR, net.now)
        return challenge

    def response_for(self, net: Net, addr: tuple[str, int] = CLIENT_ADDR) -> bytes:
        self.challenge_for(net, addr)
        (response, _), = net.clients[addr].datagrams_to_send(net.now)
        self.assertEqual(response[0], RESPONSE)
        return response

    def test_cookie_is_bound_to_the_address(self) -> None:
        net = Net()
        response = self.response_for(net)
        net.server.receive_datagram(response, OTHER_ADDR, net.now)
        self.assertEqual(net.server.drops["cookie_invalid"], 1)
        self.assertEqual(net.server.session_count, 0)
        net.server.receive_datagram(response, CLIENT_ADDR, net.now)
        self.assertEqual(net.server.session_count, 1)

    def test_cookie_expires_with_key_rotation(self) -> None:
        net = Net(host_config={"cookie_rotation": 1.0})
        response = self.response_for(net)
        net.server.receive_datagram(response, CLIENT_ADDR, net.now + 2.5)
        self.assertEqual(net.server.drops["cookie_invalid"], 1)
        self.assertEqual(net.server.session_count, 0)

    def test_response_needs_the_client_key(self) -> None:
        net = Net()
        response = bytearray(self.response_for(net))
        response[-1] ^= 1
        net.server.receive_datagram(bytes(response), CLIENT_ADDR, net.now)
        self.assertEqual(net.server.drops["response_invalid"], 1)
        self.assertEqual(net.server.session_count, 0)

    def test_token_expiring_between_challenge_and_response(self) -> None:
        net = Net()
        response = self.response_for(net)
        net.wall += 61
        net.server.receive_datagram(response, CLIENT_ADDR, net.now)
        self.assertEqual(net.server.drops["token_expired"], 1)
        self.assertEqual(net.server.session_count, 0)

    def test_admission_asked_again_at_the_response(self) -> None:
        net = Net()
        response = self.response_for(net)
        net.admission.verdict = Admission.FULL
        net.server.receive_datagram(response, CLIENT_ADDR, net.now)
        ((denied, to),) = net.server.datagrams_to_send(net.now)
        self.assertEqual((denied[0], to), (DENIED, CLIENT_ADDR))
        self.assertEqual(net.server.session_count, 0)
        net.admission.verdict = Admission.REFUSE
        net.server.receive_datagram(response, CLIENT_ADDR, net.now)
        self.assertEqual(net.server.drops["not_admitted"], 1)
        self.assertEqual(net.server.datagrams_to_send(net.now), [])

    def test_challenge_from_elsewhere_or_replayed_is_ignored(self) -> None:
        net = Net()
        challenge = self.challenge_for(net)
        client = net.clients[CLIENT_ADDR]
        client.datagrams_to_send()
        client.receive_datagram(challenge, OTHER_ADDR, net.now)
        self.assertEqual(client.drops["wrong_source"], 1)
        client.receive_datagram(challenge, SERVER_ADDR, net.now)
        self.assertEqual(client.drops["replayed"], 1)
        self.assertEqual(client.datagrams_to_send(), [])


class AmplificationTests(SynchronousTestCase):
    def test_spoofed_source_requests(self) -> None:
        """An attacker replays a victim's request from spoofed addresses."""
        net = Net()
        victim = net.connect()
        (request, _), = victim.datagrams_to_send(net.now)
        spoofed = [(f"203.0.113.{i}", 1000 + i) for i in range(1, 200)]
        for addr in spoofed:
            net.server.receive_datagram(request, addr, net.now)
        replies = net.server.datagrams_to_send(net.now)
        self.assertEqual([to for _, to in replies], spoofed)  # one each, to the claimed one
        self.assertTrue(all(len(d) < len(request) for d, _ in replies))
        self.assertEqual(state_size(net.server), 0)
        # Nobody but the token holder can read those challenges, and a cookie only
        # works from the address it was sent to.
        attacker = ("203.0.113.250", 9)
        for data, _ in replies:
            net.server.receive_datagram(bytes([RESPONSE]) + data[1:], attacker, net.now)
        self.assertEqual(net.server.session_count, 0)
        self.assertLessEqual(net.server.unauthenticated_bytes_sent,
                             net.server.unauthenticated_bytes_received)

    def test_request_flood_creates_no_state(self) -> None:
        net = Net()
        tokens = [net.token(f"p-{i}") for i in range(20)]
        received = 0
        for i in range(10_000):
            data = tokens[i % 20].request_packet()
            received += len(data)
            net.server.receive_datagram(data, (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                                               1024 + i), net.now)
            if i % 100 == 0:
                sent = sum(len(d) for d, _ in net.server.datagrams_to_send(net.now))
                self.assertLessEqual(sent, received)
        net.server.datagrams_to_send(net.now)
        self.assertEqual(state_size(net.server), 0)
        self.assertEqual(net.server.challenges_sent, 10_000)
        self.assertLessEqual(net.server.unauthenticated_bytes_sent,
                             net.server.unauthenticated_bytes_received)
        self.assertEqual(net.server.unauthenticated_bytes_received, 10_000 * REQUEST_SIZE)

    def test_client_checks_the_token_before_sending(self) -> None:
        token = Net().token(now=WALL - 100)
        client = ClientConnection(token, 0.0, wall_clock=lambda: WALL)
        self.assertEqual(client.datagrams_to_send(), [])
        self.assertEqual(client.state, FAILED)
