"""The gateway service on a memory reactor: rule sets taken whole or refused, and the drain."""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.rules import parse_rules
from vinom.gateway.service import Gateway
from vinom.gateway.sniff import Sniffed

RULES = {"backends": {"a": {"address": "10.0.0.1:7350"}, "b": {"address": "10.0.0.2:7350"}},
         "pools": {"a": {"backends": ["a"]}, "b": {"backends": ["b"]}},
         "routes": [{"kind": "any", "pool": "a"}]}  # fmt: skip


def gateway(reactor: MemoryReactorClock) -> Gateway:
    return Gateway(parse_rules(RULES), reactor, sniff_limit=1024, sniff_timeout=5.0,
                   drain_timeout=30.0)  # fmt: skip


def connect(g: Gateway) -> tuple[object, StringTransport]:
    protocol = g.factory.buildProtocol(IPv4Address("TCP", "10.9.9.9", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.9.9.9", 5000))
    protocol.makeConnection(transport)
    # Routed (its backend never answers here): past the sniff timeout.
    protocol.dataReceived(b'{"type":"hello","name":"Ann"}\n')
    return protocol, transport


class OfferTests(SynchronousTestCase):
    def test_a_good_rule_set_is_in_force_for_the_next_pick(self) -> None:
        g = gateway(MemoryReactorClock())
        changed = {**RULES, "routes": [{"kind": "any", "pool": "b"}]}
        self.assertTrue(g.offer(json.dumps(changed), "test"))
        picked = g.router.pick(Sniffed("lobby"), "x")
        self.assertEqual(picked.backend.name, "b")  # type: ignore[union-attr]
        self.assertEqual((g.rules_loaded, g.rules_refused), (2, 0))

    def test_a_bad_one_is_refused_whole_and_the_previous_stays(self) -> None:
        g = gateway(MemoryReactorClock())
        before = g.router.rules
        half = {**RULES, "routes": [{"kind": "any", "pool": "b"}, {"kind": "udp", "pool": "b"}]}
        for text in ("{not json", json.dumps(half)):
            self.assertFalse(g.offer(text, "test"))
        self.assertIs(g.router.rules, before)
        self.assertEqual((g.rules_loaded, g.rules_refused), (1, 2))


class DrainTests(SynchronousTestCase):
    def test_open_connections_are_closed_at_the_drain_timeout(self) -> None:
        reactor = MemoryReactorClock()
        g = gateway(reactor)
        stopped = []
        g.stop_listening = lambda: stopped.append(True)
        protocol, transport = connect(g)
        drained: list[object] = []
        g.drain().addCallback(drained.append)
        self.assertEqual(stopped, [True])  # no new connections from the start of the drain
        reactor.advance(29.9)
        self.assertEqual(drained, [])
        self.assertFalse(transport.disconnecting)
        reactor.advance(0.1)
        self.assertEqual(drained, [None])
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost()  # type: ignore[attr-defined]

    def test_the_drain_ends_when_the_last_connection_closes(self) -> None:
        reactor = MemoryReactorClock()
        g = gateway(reactor)
        protocol, _ = connect(g)
        drained: list[object] = []
        g.drain().addCallback(drained.append)
        self.assertEqual(drained, [])
        protocol.connectionLost()  # type: ignore[attr-defined]
        self.assertEqual(drained, [None])
        self.assertEqual(reactor.getDelayedCalls(), [])  # the timeout is cancelled

    def test_a_second_signal_cuts_the_drain(self) -> None:
        reactor = MemoryReactorClock()
        g = gateway(reactor)
        _protocol, transport = connect(g)
        drained: list[object] = []
        g.drain().addCallback(drained.append)
        g.cut_drain()
        self.assertEqual(drained, [None])
        self.assertTrue(transport.disconnecting)
