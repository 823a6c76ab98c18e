"""The inline host's stream sessions (the `/game` and WebTransport path) on a clock:
what the messages of one reactor turn make leaves once, at the turn's end
(vinom.hosting.inline, `stream_messages`), as a batch of datagrams gets one
transmit. Driven through `IGameHost` as the game socket drives it, with two peers
that record what they are handed."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from vinom.games.duel import DuelGame
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.interfaces import IGameHost, IStreamPeer, StreamOpened
from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.protocol.config import IssuerConfig, ProtocolConfig, generate_token_key
from vinom.protocol.tokens import TokenIssuer
from vinom.rooms.client_messages import encode_action
from vinom.rooms.message_reading import decode_server_message


@implementer(IStreamPeer)
class Peer:
    """A stream's peer: each `stream_output` call, as its messages' types."""

    def __init__(self) -> None:
        self.outputs: list[list[str]] = []
        self.view: Any = None

    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        decoded: list[Any] = [decode_server_message(data) for _channel, data in messages]
        self.outputs.append([m["t"] for m in decoded])
        for message in decoded:
            if message["t"] == "state":
                self.view = message["s"]

    def stream_ended(self) -> None:
        pass


class TurnTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        protocol = ProtocolConfig(token_key=generate_token_key())
        self.issuer = TokenIssuer(IssuerConfig(protocol))
        factory = InlineGameHostFactory(
            reactor=self.reactor, find_game=GameRegistry([DuelGame()]).get,
            protocol_config=protocol, public_host="127.0.0.1", interface="127.0.0.1",
        )  # fmt: skip
        self.host: IGameHost = self.successResultOf(factory.start_host(47000))
        match = Match("m-1", "duel", tuple(Ticket(p, p, "duel", None, 0.0) for p in "ab"), 0.0)
        self.successResultOf(self.host.add_match(match))
        self.peers = {p: Peer() for p in "ab"}
        self.sessions: dict[str, int] = {}
        address = HostAddress("127.0.0.1", 47000)
        for player, peer in self.peers.items():
            request = self.issuer.issue_token(player_id=player, match_id="m-1",
                                              hosts=(address,), now=time.time())  # fmt: skip
            opened = self.successResultOf(self.host.open_stream(request.request_packet(), peer))
            assert isinstance(opened, StreamOpened), opened
            self.sessions[player] = opened.session_id
        self.reactor.advance(0)

    def test_a_turns_moves_leave_once_at_its_end(self) -> None:
        before = {p: len(peer.outputs) for p, peer in self.peers.items()}
        # Both players move in one turn, as two sockets read in one reactor turn.
        for player in "ab":
            move = encode_action({"seq": 1}, 1)
            self.host.stream_messages([(self.sessions[player], move)])
        self.assertEqual({p: len(peer.outputs) for p, peer in self.peers.items()}, before,
                         "nothing leaves before the turn ends")  # fmt: skip
        self.reactor.advance(0)
        for player, peer in self.peers.items():
            # One hand-over each, whose newest state has both moves (a stream keeps
            # only the newest pending state: vinom.hosting.streams).
            self.assertEqual(len(peer.outputs), before[player] + 1, player)
            self.assertIn("state", peer.outputs[-1], player)
            self.assertEqual(peer.view, {"seq": {"a": 1, "b": 1}}, player)
