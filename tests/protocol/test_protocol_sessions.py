"""Sessions after the handshake: messages, keepalives, timeouts, disconnects, lossy networks."""

from __future__ import annotations

import itertools
import random
import struct
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.protocol.test_protocol_support import CLIENT_ADDR, OTHER_ADDR, SERVER_ADDR, Net
from vinom.protocol.client import CLOSED, CONNECTED
from vinom.protocol.config import DEFAULT_DISCONNECT_REDUNDANCY, ClientConfig
from vinom.protocol.events import (
    RELIABLE,
    UNRELIABLE,
    SessionClosed,
    SessionConnected,
    SessionInfo,
)
from vinom.protocol.reliability import Reliability
from vinom.protocol.server import WARM_PAYLOADS, ServerEndpoint
from vinom.protocol.wire import (
    CHALLENGE,
    DISCONNECT,
    KEEPALIVE,
    MAX_SEQUENCE,
    NONCE_DOMAIN_SESSION,
    PAYLOAD,
    SEQUENCE,
    SHORT_PAYLOAD,
    SLIM_PAYLOAD,
    WELCOME,
    full_sequence,
)
from vinom.rooms.client_messages import MAX_CLIENT_MESSAGE


def connected(**kw: object) -> tuple[Net, int]:
    net = Net(**kw)  # type: ignore[arg-type]
    net.connect()
    net.run(0.1)
    event = net.connected()
    assert event is not None, "the handshake did not complete"
    return net, event.session_id


def infos(server: ServerEndpoint) -> list[SessionInfo]:
    found = [server.session_info(sid) for sid in server.session_ids()]
    return [i for i in found if i is not None]


def info(server: ServerEndpoint, session_id: int) -> SessionInfo:
    found = server.session_info(session_id)
    assert found is not None, "no such session"
    return found


def receive_ciphers(server: ServerEndpoint) -> int:
    return sum(1 for i in infos(server) if i.receive_cipher)


def count(net: Net, src: tuple[str, int], kind: int, since: float = 0.0) -> int:
    return sum(1 for t, s, _, d in net.wire if s == src and d[0] == kind and t >= since)


def count_to(net: Net, dst: tuple[str, int], kind: int, since: float = 0.0) -> int:
    return sum(1 for t, _, d, data in net.wire if d == dst and data[0] == kind and t >= since)


class MessageTests(SynchronousTestCase):
    def test_both_ways_on_both_channels(self) -> None:
        net, sid = connected()
        client = net.clients[CLIENT_ADDR]
        client.send_message(RELIABLE, b"move north")
        client.send_message(UNRELIABLE, b"hint")
        self.assertTrue(net.server.send_message(sid, UNRELIABLE, b"state v1"))
        self.assertTrue(net.server.send_message(sid, RELIABLE, b"event"))
        net.run(0.1)
        self.assertEqual(sorted((m.session_id, m.channel, m.data) for m in net.messages(None)),
                         [(sid, 0, b"hint"), (sid, 1, b"move north")])
        at_client = net.messages(CLIENT_ADDR)
        self.assertEqual(sorted((m.session_id, m.channel, m.data) for m in at_client),
                         [(sid, 0, b"state v1"), (sid, 1, b"event")])

    def test_a_state_superseded_before_it_left_is_not_sent(self) -> None:
        # The host queues states faster than it transmits (several changes in one
        # batch of datagrams): only the newest queued one leaves; a reliable
        # message queued between them still does, once.
        net, sid = connected()
        net.server.send_message(sid, RELIABLE, b"welcome")
        net.run(0.1)  # the opening is acknowledged: states go on channel 0
        for data in (b"state v1", b"state v2"):
            self.assertTrue(net.server.send_message(sid, UNRELIABLE, data))
        net.server.send_message(sid, RELIABLE, b"event")
        net.server.send_message(sid, UNRELIABLE, b"state v3")
        net.run(0.1)
        self.assertEqual(
            [(m.channel, m.data) for m in net.messages(CLIENT_ADDR)],
            [(RELIABLE, b"welcome"), (UNRELIABLE, b"state v3"), (RELIABLE, b"event")],
        )
        layer = net.server.reliability(sid)
        assert isinstance(layer, Reliability)
        self.assertEqual(layer.unreliable_dropped, 2)
        # Nothing waits for the dropped states: the session goes on as before.
        net.server.send_message(sid, UNRELIABLE, b"state v4")
        net.run(1.0)
        self.assertEqual(net.messages(CLIENT_ADDR)[-1].data, b"state v4")
        self.assertEqual(net.closed(None), [])

    def test_large_messages_fragment_within_1200_byte_datagrams(self) -> None:
        net, sid = connected(host_config={"max_receive_message": 256 * 1024})
        big = bytes(range(256)) * 100
        net.server.send_message(sid, RELIABLE, big)
        net.clients[CLIENT_ADDR].send_message(RELIABLE, big[::-1])
        net.run(0.5)
        self.assertEqual([m.data for m in net.messages(CLIENT_ADDR)], [big])
        self.assertEqual([m.data for m in net.messages(None)], [big[::-1]])
        self.assertLessEqual(max(len(d) for _, _, _, d in net.wire), 1200)

    def test_host_accepts_only_what_its_application_does(self) -> None:
        net, sid = connected()
        self.assertEqual(net.server.config.max_receive_message, MAX_CLIENT_MESSAGE)
        client = net.clients[CLIENT_ADDR]
        client.send_message(RELIABLE, b"a" * MAX_CLIENT_MESSAGE)
        client.send_message(RELIABLE, b"b" * (MAX_CLIENT_MESSAGE + 1))
        client.send_message(RELIABLE, b"c" * 256 * 1024)
        client.send_message(UNRELIABLE, b"d" * (MAX_CLIENT_MESSAGE + 1))
        client.send_message(RELIABLE, b"small")
        big = bytes(range(256)) * 1024
        net.server.send_message(sid, RELIABLE, big)  # the host still sends large ones
        net.run(1.0)
        self.assertEqual([m.data for m in net.messages(None)],
                         [b"a" * MAX_CLIENT_MESSAGE, b"small"])
        self.assertEqual([m.data for m in net.messages(CLIENT_ADDR)], [big])
        layer = net.server.reliability(sid)
        assert isinstance(layer, Reliability)
        self.assertEqual(layer.oversized_dropped, 3)
        self.assertEqual(layer.receive_buffered_bytes, 0)
        self.assertEqual(client.reliability.buffered_bytes, 0)  # all acked, nothing resent
        self.assertEqual(net.closed(None), [])

    def test_messages_queued_before_the_welcome_are_sent_after_it(self) -> None:
        net = Net()
        client = net.connect()
        client.send_message(RELIABLE, b"early")
        net.run(0.2)
        self.assertEqual([m.data for m in net.messages(None)], [b"early"])

    def test_sequence_numbers_count_up_per_packet(self) -> None:
        net, sid = connected()
        for i in range(5):
            net.server.send_message(sid, UNRELIABLE, b"s%d" % i)
            net.run(0.05)
        # The low 16 bits: the payloads are slim once the client offered (§5.9, §5.10).
        seqs = [SEQUENCE.unpack_from(d, 1)[0] & 0xFFFF if d[0] < SHORT_PAYLOAD
                else struct.unpack_from("<H", d, 1)[0]
                for _, s, _, d in net.wire if s == SERVER_ADDR and d[0] != WELCOME
                and d[0] != CHALLENGE]  # fmt: skip
        self.assertIn(SLIM_PAYLOAD, {d[0] for _, s, _, d in net.wire if s == SERVER_ADDR})
        self.assertEqual(seqs, [(seqs[0] + n) & 0xFFFF for n in range(len(seqs))])

    def test_bad_sends(self) -> None:
        net, sid = connected()
        self.assertFalse(net.server.send_message(sid + 1, RELIABLE, b"x"))
        self.assertRaises(ValueError, net.server.send_message, sid, 2, b"x")
        self.assertRaises(ValueError, net.clients[CLIENT_ADDR].send_message, 7, b"x")

    def test_overflowing_session_is_closed(self) -> None:
        net, sid = connected()
        net.loss = 1.0  # the client stops acking
        chunk = b"x" * 60_000
        while net.server.send_message(sid, RELIABLE, chunk):
            pass
        net.drain_events()
        self.assertEqual([(e.session_id, e.reason) for e in net.closed(None)], [(sid, "overflow")])
        self.assertEqual(net.server.session_count, 0)


class LivenessTests(SynchronousTestCase):
    def test_keepalives_when_idle(self) -> None:
        """By default both sides send one every timeout / 3 (5 s / 3 with the default
        token), the shorter of that and `keepalive_interval` (2 s)."""
        net, _ = connected()
        start = net.now
        net.run(10.5)  # 6.3 intervals of 5/3 s
        self.assertIn(count(net, CLIENT_ADDR, KEEPALIVE, start), (6, 7))
        self.assertIn(count(net, SERVER_ADDR, KEEPALIVE, start), (6, 7))
        self.assertEqual(net.closed(None), [])
        self.assertEqual(net.clients[CLIENT_ADDR].state, CONNECTED)

    def test_idle_sessions_share_wake_ups(self) -> None:
        """Keepalives and timeouts fall on a 1/32 s grid: many sessions, few wake-ups;
        a keepalive is never late and a timeout never early."""
        net = Net(host_config={"keepalive_interval": 1.0})
        addrs = [(f"192.0.2.{i}", 5000 + i) for i in range(40)]
        for i, addr in enumerate(addrs):
            net.connect(net.token(f"p-{i}"), addr)
            net.run(0.004)  # staggered: without the grid, 40 different wake-up times
        net.run(1.0)
        start = net.now
        wake_ups: set[float] = set()
        for _ in range(300):
            net.run(0.01)
            when = net.server.get_timer()
            if when is not None:
                wake_ups.add(when)
        sent = [(t, dst) for t, src, dst, d in net.wire if src == SERVER_ADDR and t >= start]
        self.assertGreaterEqual(len(sent), 40 * 3)  # every session heard from the host
        self.assertLessEqual(len({t for t, _ in sent}), 3 * 32 // 5)  # in a few slots
        self.assertLessEqual(len(wake_ups), 3 * 32 // 5)
        for addr in addrs:
            times = [t for t, dst in sent if dst == addr]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            self.assertTrue(gaps and max(gaps) <= 1.0 + 1e-9, gaps)  # never late
        self.assertEqual(net.closed(None), [])
        # Timeouts: never early, at most one slot late.
        silent = addrs[0]
        last_heard = max(t for t, src, _, _ in net.wire if src == silent) + net.latency
        del net.clients[silent]
        net.run(last_heard + 5.0 - net.now - 1e-6)
        self.assertEqual(net.closed(None), [])
        net.run(1.0 / 32 + 1e-6)
        self.assertEqual([e.reason for e in net.closed(None)], ["timeout"])

    def test_sessions_sharing_wake_ups_end_each_on_its_own(self) -> None:
        """Sessions that wake at the same times: closing some and silencing others
        ends just those, the rest keep alive, and nothing is left once all ended."""
        net = Net(host_config={"keepalive_interval": 1.0})
        addrs = [(f"192.0.2.{i}", 6000 + i) for i in range(30)]
        for i, addr in enumerate(addrs):
            net.connect(net.token(f"p-{i}"), addr)
        net.run(0.5)
        ids = {e.address: e.session_id for e in net.events_of(SessionConnected)}
        closed, silent, kept = addrs[0::3], addrs[1::3], addrs[2::3]
        for addr in closed:
            net.server.close_session(ids[addr])
        for addr in silent:
            del net.clients[addr]
        start = net.now
        net.run(6.0)
        reasons = {e.session_id: e.reason for e in net.closed(None)}
        self.assertEqual(
            reasons, {ids[a]: "closed" for a in closed} | {ids[a]: "timeout" for a in silent}
        )
        self.assertEqual(sorted(net.server.session_ids()), sorted(ids[a] for a in kept))
        for addr in kept:
            self.assertGreaterEqual(count_to(net, addr, KEEPALIVE, start), 5)
            net.clients[addr].disconnect()
        net.run(0.5)
        self.assertEqual(net.server.session_count, 0)
        self.assertIsNone(net.server.get_timer())
        # Only the spent tokens remain (30 nonces, issued within one or two seconds).
        self.assertIn(net.server.held_entries(), (31, 32))

    def test_no_keepalives_while_talking(self) -> None:
        net, sid = connected()
        start = net.now
        for i in range(30):
            net.clients[CLIENT_ADDR].send_message(RELIABLE, b"%d" % i)
            net.server.send_message(sid, UNRELIABLE, b"%d" % i)
            net.run(0.2)
        self.assertEqual(count(net, CLIENT_ADDR, KEEPALIVE, start), 0)
        self.assertEqual(count(net, SERVER_ADDR, KEEPALIVE, start), 0)

    def test_host_times_out_a_silent_client(self) -> None:
        net, sid = connected()
        gone_at = net.now
        del net.clients[CLIENT_ADDR]
        net.run(4.9)
        self.assertEqual(net.closed(None), [])
        net.run(0.2)
        self.assertEqual([(e.session_id, e.reason) for e in net.closed(None)], [(sid, "timeout")])
        self.assertEqual(net.server.session_count, 0)
        self.assertEqual(net.server.get_timer(), None)
        self.assertEqual(
            count(net, SERVER_ADDR, DISCONNECT, gone_at), DEFAULT_DISCONNECT_REDUNDANCY
        )

    def test_client_times_out_a_silent_host(self) -> None:
        net, sid = connected()
        net.loss = 1.0
        net.run(5.1)
        closed = net.closed(CLIENT_ADDR)
        self.assertEqual([(e.session_id, e.reason) for e in closed], [(sid, "timeout")])
        self.assertEqual(net.clients[CLIENT_ADDR].state, CLOSED)
        self.assertEqual(net.clients[CLIENT_ADDR].get_timer(), None)

    def test_session_timeout_comes_from_the_token(self) -> None:
        net = Net(session_timeout=2.0)
        net.connect()
        net.run(0.1)
        del net.clients[CLIENT_ADDR]
        net.run(2.1)
        self.assertEqual([e.reason for e in net.closed(None)], ["timeout"])

    def test_idle_session_with_a_short_timeout_stays_up(self) -> None:
        # Keepalives come at least three times per timeout on both sides, even
        # when the timeout is shorter than the configured keepalive interval.
        net = Net(session_timeout=1.0)
        net.connect()
        net.run(0.1)
        start = net.now
        net.run(10.0)
        self.assertEqual(net.closed(None), [])
        self.assertEqual(net.closed(CLIENT_ADDR), [])
        self.assertGreaterEqual(count(net, CLIENT_ADDR, KEEPALIVE, start), 27)
        self.assertGreaterEqual(count(net, SERVER_ADDR, KEEPALIVE, start), 27)


class DisconnectTests(SynchronousTestCase):
    def test_a_message_queued_just_before_disconnect_is_sent_first(self) -> None:
        net, sid = connected()
        client = net.clients[CLIENT_ADDR]
        client.send_message(RELIABLE, b"leave")
        client.disconnect()
        net.run(0.5)
        self.assertIn(b"leave", [m.data for m in net.messages(None)])
        self.assertEqual([(e.session_id, e.reason) for e in net.closed(None)],
                         [(sid, "disconnect")])

    def test_client_disconnect_is_redundant_and_frees_the_session(self) -> None:
        net, sid = connected()
        client = net.clients[CLIENT_ADDR]
        client.disconnect()
        net.run(0.1)
        self.assertEqual(count(net, CLIENT_ADDR, DISCONNECT), DEFAULT_DISCONNECT_REDUNDANCY)
        self.assertEqual([(e.session_id, e.reason) for e in net.closed(None)],
                         [(sid, "disconnect")])
        self.assertEqual([(e.session_id, e.reason) for e in net.closed(CLIENT_ADDR)],
                         [(sid, "closed")])
        self.assertEqual(net.server.session_count, 0)
        self.assertIsNone(net.server.session_info(sid))
        self.assertEqual(net.server.held_entries(), 2, "only the spent token (nonce, expiry)")
        self.assertRaises(ValueError, client.send_message, RELIABLE, b"late")

    def test_disconnect_survives_heavy_loss(self) -> None:
        # At 30% loss all five copies are lost once in about 400 disconnects (the peer
        # then times out, as a silent one would): docs/protocol.md, "Disconnect
        # redundancy".
        for seed in range(10):
            net, _sid = connected(seed=seed)
            net.loss = 0.3
            net.clients[CLIENT_ADDR].disconnect()
            net.run(0.1)
            self.assertEqual([e.reason for e in net.closed(None)], ["disconnect"], seed)

    def test_host_closes_a_session(self) -> None:
        net, sid = connected()
        net.server.close_session(sid)
        net.server.close_session(sid)  # twice is harmless
        net.run(0.1)
        self.assertEqual([(e.session_id, e.reason) for e in net.closed(None)], [(sid, "closed")])
        self.assertEqual([e.reason for e in net.closed(CLIENT_ADDR)], ["disconnect"])
        self.assertEqual(count(net, SERVER_ADDR, DISCONNECT), DEFAULT_DISCONNECT_REDUNDANCY)
        # Whatever the client still sends is dropped without a reply.
        before = len(net.sent_by(SERVER_ADDR))
        header = struct.pack("<BQ", PAYLOAD, 99)
        net.server.receive_datagram(header + bytes(40), CLIENT_ADDR, net.now)
        self.assertEqual(net.server.drops["no_session"], 1)
        net.run(0.1)
        self.assertEqual(len(net.sent_by(SERVER_ADDR)), before)

    def test_cancel_a_handshake(self) -> None:
        net = Net()
        client = net.connect()
        client.disconnect()
        net.run(0.5)
        failed = net.failed()
        assert failed is not None
        self.assertEqual(failed.reason, "cancelled")
        self.assertLessEqual(len(net.sent_by(CLIENT_ADDR)), 1)

    def test_two_clients_one_host(self) -> None:
        net = Net()
        net.connect(net.token("p-1"), CLIENT_ADDR)
        net.connect(net.token("p-2"), OTHER_ADDR)
        net.run(0.1)
        ids = {e.player_id: e.session_id for e in net.events_of(type(net.connected()))
               if e.address != SERVER_ADDR}
        self.assertEqual(set(ids), {"p-1", "p-2"})
        net.server.send_message(ids["p-2"], RELIABLE, b"to two")
        net.run(0.1)
        self.assertEqual([m.data for m in net.messages(OTHER_ADDR)], [b"to two"])
        self.assertEqual(net.messages(CLIENT_ADDR), [])
        net.clients[OTHER_ADDR].disconnect()
        net.run(0.1)
        self.assertEqual(net.server.session_ids(), [ids["p-1"]])


class LossyNetworkTests(SynchronousTestCase):
    @settings(max_examples=25, deadline=None)
    @given(
        seed=st.integers(0, 2**32 - 1),
        loss=st.floats(0.0, 0.3),
        duplicate=st.floats(0.0, 0.3),
        jitter=st.floats(0.0, 0.08),
    )
    def test_reliable_exactly_once_in_order_snapshots_never_backwards(
        self, seed: int, loss: float, duplicate: float, jitter: float
    ) -> None:
        # A long session timeout and a long run: with resends backed off to one a
        # second, 30 s make an undelivered message astronomically unlikely.
        net = Net(seed=seed, loss=loss, duplicate=duplicate, jitter=jitter, latency=0.02,
                  session_timeout=60.0)
        client = net.connect()
        net.run(3.0)
        event = net.connected()
        assert event is not None
        sid = event.session_id
        for i in range(60):
            client.send_message(RELIABLE, b"c%d" % i)
            net.server.send_message(sid, RELIABLE, b"s%d" % i)
            net.server.send_message(sid, UNRELIABLE, struct.pack("<I", i))
            client.send_message(UNRELIABLE, struct.pack("<I", i))
            net.run(0.01)
        net.run(30.0)
        self.assertEqual([m.data for m in net.messages(None) if m.channel == RELIABLE],
                         [b"c%d" % i for i in range(60)])
        # The server's snapshots (4 bytes) sent before the client acknowledged the
        # session's opening came reliably (ServerEndpoint.send_message), each once,
        # in order, behind s0; the others on channel 0, never backwards.
        reliable = [m.data for m in net.messages(CLIENT_ADDR) if m.channel == RELIABLE]
        self.assertEqual([d for d in reliable if len(d) != 4], [b"s%d" % i for i in range(60)])
        early = [struct.unpack("<I", d)[0] for d in reliable if len(d) == 4]
        self.assertEqual(early, sorted(set(early)))
        if early:
            self.assertGreater(reliable.index(struct.pack("<I", early[0])), reliable.index(b"s0"))
        for side in (None, CLIENT_ADDR):
            snaps = [struct.unpack("<I", m.data)[0] for m in net.messages(side)
                     if m.channel == UNRELIABLE]
            self.assertEqual(snaps, sorted(set(snaps)))
        self.assertEqual(net.events_of(SessionClosed), [])


class OpeningTests(SynchronousTestCase):
    def test_states_go_unreliably_once_the_opening_is_acknowledged_on_a_slow_link(self) -> None:
        # 50 ms each way and a state every 25 ms: the round trip is longer than
        # the gap between states, so states keep being sent while the welcome's
        # acknowledgement is on its way. Only those go reliably; the rest of the
        # match goes on channel 0.
        net = Net(latency=0.05, session_timeout=60.0)
        net.connect()
        net.run(1.0)
        event = net.connected()
        assert event is not None
        net.server.send_message(event.session_id, RELIABLE, b"welcome")
        for i in range(200):
            net.server.send_message(event.session_id, UNRELIABLE, struct.pack("<I", i))
            net.run(0.025)
        net.run(2.0)
        got = net.messages(CLIENT_ADDR)
        self.assertEqual(got[0].data, b"welcome")
        reliably = [m for m in got if m.channel == RELIABLE and len(m.data) == 4]
        unreliably = [m for m in got if m.channel == UNRELIABLE]
        # About one round trip's worth (0.1 s + the ack delay) went reliably.
        self.assertLess(len(reliably), 10)
        self.assertGreater(len(unreliably), 190)


class CipherMemoryTests(SynchronousTestCase):
    def test_only_recently_busy_sessions_keep_cipher_objects(self) -> None:
        net = Net(host_config={"cipher_sessions": 2})
        addrs = [(f"192.0.2.{i}", 5000 + i) for i in range(5)]
        for i, addr in enumerate(addrs):
            net.connect(net.token(f"p-{i}"), addr)
        net.run(0.1)
        server = net.server
        self.assertEqual(server.session_count, 5)
        self.assertLessEqual(receive_ciphers(server), 2)
        # Every session still works both ways, keepalives included.
        for rounds in range(3):
            for i, addr in enumerate(addrs):
                net.clients[addr].send_message(RELIABLE, b"%d-%d" % (i, rounds))
            net.run(0.05)
        for e in net.events_of(type(net.connected(addrs[0]))):
            if e.address != SERVER_ADDR:
                net.server.send_message(e.session_id, RELIABLE, b"back")
        net.run(3.0)
        self.assertEqual(sorted(m.data for m in net.messages(None)),
                         sorted(b"%d-%d" % (i, r) for i in range(5) for r in range(3)))
        for addr in addrs:
            self.assertEqual([m.data for m in net.messages(addr)], [b"back"])
        self.assertEqual(net.closed(None), [])
        self.assertLessEqual(receive_ciphers(server), 2)

    def test_a_busy_session_keeps_its_cipher_objects(self) -> None:
        net = Net(host_config={"cipher_sessions": 2})
        addrs = [(f"192.0.2.{i}", 5000 + i) for i in range(5)]
        for i, addr in enumerate(addrs):
            # Staggered, so that the idle sessions' keepalives come one at a time.
            net.connect(net.token(f"p-{i}"), addr)
            net.run(0.15)
        # Traffic between the idle sessions' keepalives keeps the ciphers in place.
        server = net.server
        busy = next(i for i in infos(server) if i.address == addrs[0]).session_id
        for _ in range(30):  # until the timer has seen it busy: warm
            net.clients[addrs[0]].send_message(RELIABLE, b"busy")
            net.run(0.05)
        self.assertTrue(info(server, busy).warm)
        for _ in range(60):
            net.clients[addrs[0]].send_message(RELIABLE, b"busy")
            net.run(0.05)
            self.assertTrue(info(server, busy).receive_cipher)
        idle = [i for i in infos(server) if i.session_id != busy]
        self.assertLessEqual(sum(1 for i in idle if i.receive_cipher), 1)
        self.assertEqual(net.closed(None), [])

    def test_forged_packets_build_no_kept_cipher_and_evict_no_one(self) -> None:
        net = Net(host_config={"cipher_sessions": 2})
        addrs = [(f"192.0.2.{i}", 5000 + i) for i in range(5)]
        for i, addr in enumerate(addrs):
            net.connect(net.token(f"p-{i}"), addr)
        net.run(0.1)
        server = net.server
        ciphers = {i.session_id: (i.receive_cipher, i.send_cipher) for i in infos(server)}
        disarmed = [i for i in infos(server) if not (i.receive_cipher or i.send_cipher)]
        self.assertGreaterEqual(len(disarmed), 3)
        victim = disarmed[0]
        junk = bytes([PAYLOAD]) + SEQUENCE.pack(victim.latest_sequence + 1) + bytes(40)
        for kind in (PAYLOAD, KEEPALIVE, DISCONNECT):
            server.receive_datagram(bytes([kind]) + junk[1:], victim.address, net.now)
        self.assertEqual(server.drops["decrypt_failed"], 3)
        self.assertEqual({i.session_id: (i.receive_cipher, i.send_cipher)
                          for i in infos(server)}, ciphers)
        self.assertEqual(server.session_count, 5)
        # A genuine keepalive keeps no cipher either (the session is idle)...
        client = net.clients[victim.address]
        sent_now: list[tuple[bytes, object]] = []
        while not sent_now:  # its timer, until its next keepalive
            due = client.get_timer()
            assert due is not None
            net.now = max(net.now, due)
            client.handle_timer(net.now)
            sent_now = client.datagrams_to_send(net.now)
        (keepalive, _), = sent_now
        self.assertEqual(keepalive[0], KEEPALIVE)
        server.receive_datagram(keepalive, victim.address, net.now)
        self.assertEqual(server.drops["decrypt_failed"], 3)
        self.assertEqual({i.session_id: (i.receive_cipher, i.send_cipher)
                          for i in infos(server)}, ciphers)
        self.assertEqual(server.datagrams_to_send(net.now), [])
        # ... nor genuine payloads, until the session has carried enough to be warm ...
        sent = 0
        while not info(server, victim.session_id).warm:
            client.send_message(UNRELIABLE, b"hello %d" % sent)
            (payload, _), = client.datagrams_to_send(net.now)
            server.receive_datagram(payload, victim.address, net.now)
            now = info(server, victim.session_id)
            self.assertEqual((now.receive_cipher, now.send_cipher), (False, False))
            sent += 1
        self.assertLessEqual(sent, WARM_PAYLOADS)
        # ... then a payload keeps the receiving one.
        client.send_message(UNRELIABLE, b"again")
        (payload, _), = client.datagrams_to_send(net.now)
        server.receive_datagram(payload, victim.address, net.now)
        now = info(server, victim.session_id)
        self.assertEqual((now.receive_cipher, now.send_cipher), (True, False))
        self.assertLessEqual(sum(1 for i in infos(server) if i.receive_cipher or i.send_cipher),
                             2)

    def test_quiet_sessions_give_back_grown_tables_before_they_are_idle(self) -> None:
        """At the first timer look with nothing in flight, a session that had traffic
        gives back the tables its burst grew (records kept), an idle round early."""
        net, sid = connected()
        tracemalloc.start()  # it sees only what is freed of what it saw allocated
        try:
            for n in range(40):
                net.server.send_message(sid, RELIABLE, b"burst %d" % n)
            net.run(0.1)  # delivered and acked
            layer = net.server.reliability(sid)
            assert layer is not None
            self.assertIsNone(layer.next_timer())  # all acked: nothing in flight
            before = tracemalloc.get_traced_memory()[0]
            net.run(info(net.server, sid).next_look - net.now + 0.001)  # the next look
            freed = before - tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        self.assertEqual(info(net.server, sid).activity, "quiet")  # not idle yet
        # The tables the burst of 40 grew went back (at least one dict's table).
        self.assertGreater(freed, 1000)
        self.assertEqual(net.closed(None), [])

    def test_a_session_is_warm_again_only_after_traffic_since_it_was_idle(self) -> None:
        net, sid = connected()
        client = net.clients[CLIENT_ADDR]
        for n in range(30):
            client.send_message(RELIABLE, b"tick %d" % n)
            net.run(0.05)
        self.assertTrue(info(net.server, sid).warm)
        net.run(4.0)  # idle: ciphers and the warmth go
        now = info(net.server, sid)
        self.assertEqual((now.activity, now.warm, now.receive_cipher, now.send_cipher),
                         ("idle", False, False, False))
        client.send_message(RELIABLE, b"one more")
        net.run(0.05)
        now = info(net.server, sid)
        self.assertEqual((now.receive_cipher, now.send_cipher), (False, False))  # not warm yet
        self.assertEqual(net.messages(None)[-1].data, b"one more")

    def test_idle_sessions_hold_no_cipher_objects(self) -> None:
        net = Net()
        addrs = [(f"192.0.2.{i}", 5000 + i) for i in range(3)]
        for i, addr in enumerate(addrs):
            net.connect(net.token(f"p-{i}"), addr)
        net.run(0.1)
        for addr in addrs:
            net.clients[addr].send_message(RELIABLE, b"hello")
        net.run(0.05)
        server = net.server

        def ciphers() -> list[tuple[bool, bool]]:
            return [(i.receive_cipher, i.send_cipher) for i in infos(server)]

        # A first exchange keeps no cipher objects: the session may go quiet after it.
        self.assertEqual(ciphers(), [(False, False)] * 3)
        # Traffic the timer sees, and then more: now they are kept.
        for n in range(30):
            for addr in addrs:
                net.clients[addr].send_message(UNRELIABLE, b"tick %d" % n)
            net.run(0.05)
        self.assertTrue(all(i.warm for i in infos(server)))
        self.assertEqual(ciphers(), [(True, True)] * 3)
        # Keepalives only, both ways: the ciphers go after a keepalive interval or two.
        net.run(4.0)
        self.assertGreaterEqual(count(net, SERVER_ADDR, KEEPALIVE), 2 * len(addrs))
        self.assertEqual(ciphers(), [(False, False)] * 3)
        self.assertEqual(net.closed(None), [])
        # Traffic resumes as before; only the session carrying it keeps ciphers, once
        # the timer has seen it busy again.
        for _ in range(30):
            net.clients[addrs[0]].send_message(RELIABLE, b"again")
            net.run(0.05)
        received = [m.data for m in net.messages(None) if not m.data.startswith(b"tick")]
        self.assertEqual(received, [b"hello"] * 3 + [b"again"] * 30)
        busy = next(i for i in infos(server) if i.address == addrs[0])
        self.assertTrue(busy.receive_cipher)
        self.assertEqual([(i.receive_cipher, i.send_cipher) for i in infos(server)
                          if i.session_id != busy.session_id], [(False, False)] * 2)
        server.send_message(busy.session_id, RELIABLE, b"back")
        net.run(0.05)
        self.assertEqual([m.data for m in net.messages(addrs[0])], [b"back"])


class ShortSequenceTests(SynchronousTestCase):
    """A short payload's sequence (docs/protocol.md §5.9): the one nearest the newest."""

    def test_the_nearest_sequence(self) -> None:
        for low, latest, full in (
            (5, 3, 5), (2, 3, 2), (0x0000, 0x1FFFF, 0x20000), (0xFFFF, 0x20001, 0x1FFFF),
            (0x8002, 3, 0x8002), (0x8003, 3, -1), (0x8003, 0x10003, 0x8003), (0xFFFF, 5, -1),
            (0x0000, MAX_SEQUENCE, -1), (0xFFFF, MAX_SEQUENCE, MAX_SEQUENCE),
        ):  # fmt: skip
            self.assertEqual(full_sequence(low, latest), full, (low, latest))
        # Within the replay window's reach either way, always the sent one.
        rng = random.Random(7)
        for _ in range(1000):
            latest = rng.randrange(2**47, 2**48)
            sent = latest + rng.randrange(-32768, 32768)
            self.assertEqual(full_sequence(sent & 0xFFFF, latest), sent)

    def test_across_the_16_bit_wrap_both_ways(self) -> None:
        # Short payloads, then slim ones (what an older client offers, then vinom's).
        for config, kind in ((ClientConfig(slim_payloads=False), SHORT_PAYLOAD),
                             (ClientConfig(), SLIM_PAYLOAD)):  # fmt: skip
            self.wrap_both_ways(config, kind)

    def wrap_both_ways(self, config: ClientConfig, kind: int) -> None:
        # Every random byte 0xff: both sides' sequences start at 2^48 - 1, so the
        # low 16 bits wrap at once.
        net = Net(random_bytes=lambda n: b"\xff" * n)
        net.connect(config=config)
        net.run(0.1)
        event = net.connected()
        assert event is not None
        client = net.clients[CLIENT_ADDR]
        for i in range(40):
            client.send_message(RELIABLE, b"c%d" % i)
            net.server.send_message(event.session_id, RELIABLE, b"s%d" % i)
            net.run(0.05)
        short = {src: [d for _, s, _, d in net.wire if s == src and d[0] == kind]
                 for src in (CLIENT_ADDR, SERVER_ADDR)}  # fmt: skip
        self.assertGreater(min(map(len, short.values())), 30)
        self.assertEqual([m.data for m in net.messages(None)], [b"c%d" % i for i in range(40)])
        self.assertEqual([m.data for m in net.messages(CLIENT_ADDR)],
                         [b"s%d" % i for i in range(40)])  # fmt: skip
        self.assertEqual(dict(net.server.drops), {})
        self.assertEqual(dict(client.drops), {})


class HandOverTests(SynchronousTestCase):
    """`ClientConnection.hand_over()`: a connected session given to another driver."""

    def test_the_new_driver_can_speak_for_the_session(self) -> None:
        net, sid = connected()
        client = net.clients[CLIENT_ADDR]
        net.server.send_message(sid, RELIABLE, b"event")
        net.run(0.1)
        handover = client.hand_over()
        seen = list(net.wire)
        self.assertEqual(client.state, CLOSED)
        self.assertEqual(client.datagrams_to_send(net.now), [])
        self.assertIsNone(client.get_timer())
        layer = handover.reliability
        self.assertEqual(layer.next_reliable_expected, 1, "the host's event was delivered")
        # A reliable message sealed from the handover alone is one the host accepts.
        body = struct.pack(
            "<HHIBHH", layer.next_body_sequence, layer.latest_received & 0xFFFF,
            layer.received_bits, 0, (RELIABLE << 14) | 4, layer.next_reliable_id,
        ) + b"move"
        seq = handover.next_packet_sequence
        header = struct.pack("<BQ", PAYLOAD, seq)
        nonce = struct.pack("<IQ", NONCE_DOMAIN_SESSION, seq)
        sealed = header + handover.send_aead.encrypt(nonce, body, header)
        net.server.receive_datagram(sealed, CLIENT_ADDR, net.now)
        net.run(0.05)
        self.assertEqual([(m.channel, m.data) for m in net.messages(None)], [(RELIABLE, b"move")])
        # Its replay window is the session's: what the host sent before is a replay now.
        last = [d for _, s, _, d in seen if s == SERVER_ADDR and d[0] == SLIM_PAYLOAD][-1]
        window = handover.replay_window
        low = struct.unpack_from("<H", last, 1)[0]
        self.assertTrue(window.is_replay(full_sequence(low, window.latest)))
        self.assertTrue(handover.sends_short, "a slim payload came: ours go short")
        self.assertTrue(handover.sends_slim, "... and slim")

    def test_only_a_connected_session_at_rest(self) -> None:
        net = Net()
        net.connect()
        client = net.clients[CLIENT_ADDR]
        with self.assertRaises(ValueError):
            client.hand_over()  # still in its handshake
        net.run(0.1)
        client.send_message(RELIABLE, b"not yet acked")
        with self.assertRaises(ValueError):
            client.hand_over()
        self.assertEqual(client.state, CONNECTED, "a refused hand-over changes nothing")
