"""Server side of the session scenarios: vinom game hosts built directly from the pieces.

The udp-echo and handshake scenarios serve a `ServerEndpoint` behind the
real `GameHostProtocol` adapter, with a sink that echoes every message
back on its channel and an admission that lets in any holder of a valid
token (the tokens are sealed by the bench's load process with the key it
shares with this process). Nothing here goes through the lobby.
"""

from __future__ import annotations

import socket
from typing import Any

from zope.interface import implementer

from vinom.hosting.udp import GameHostProtocol
from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig, ProtocolConfig
from vinom.protocol.events import SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission, IAdmission, ISessionSender, ISessionSink
from vinom.protocol.server import ServerEndpoint

# Read a little more than the protocol's largest datagram, as the inline host does.
MAX_DATAGRAM = 2048


def free_udp_port(interface: str) -> int:
    """A UDP port free right now on `interface` (the endpoint must name its port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((interface, 0))
        return int(probe.getsockname()[1])


@implementer(IAdmission)
class AdmitAll:
    """Every player with a valid token may connect: the bench issues the tokens."""

    def admit(self, player_id: str, match_id: str) -> Admission:
        return Admission.ACCEPT


@implementer(ISessionSink)
class EchoSink:
    """Sends every message back to its session on the channel it arrived on."""

    def __init__(self) -> None:
        self.sender: ISessionSender | None = None
        self.messages = 0
        self.connected = 0
        self.closed = 0

    def session_connected(self, event: SessionConnected) -> None:
        self.connected += 1

    def message_received(self, session_id: int, channel: int, data: bytes) -> None:
        self.messages += 1
        assert self.sender is not None
        self.sender.send_message(session_id, channel, data)

    def session_closed(self, event: SessionClosed) -> None:
        self.closed += 1


class EchoHost:
    """A listening vinom echo host and its counters."""

    def __init__(self, reactor: Any, key: bytes, interface: str, port: int) -> None:
        if port == 0:
            port = free_udp_port(interface)
        config = HostConfig(
            protocol=ProtocolConfig(token_key=key),
            addresses=(HostAddress(interface, port),),
        )
        self.endpoint = ServerEndpoint(config, AdmitAll())
        self.sink = EchoSink()
        self.protocol = GameHostProtocol(self.endpoint, self.sink, reactor)
        self.sink.sender = self.protocol
        self.port = reactor.listenUDP(
            port, self.protocol, interface=interface, maxPacketSize=MAX_DATAGRAM
        )

    def counters(self) -> dict[str, Any]:
        endpoint = self.endpoint
        return {
            "messages": self.sink.messages,
            "connected": self.sink.connected,
            "closed": self.sink.closed,
            "sessions": endpoint.session_count,
            "datagrams_received": endpoint.datagrams_received,
            "datagrams_sent": endpoint.datagrams_sent,
            "welcomes_sent": endpoint.welcomes_sent,
            "drops": dict(endpoint.drops),
            "errors": self.protocol.errors,
        }


def start_echo_host(reactor: Any, key: bytes, interface: str, port: int) -> EchoHost:
    """A vinom session echo host listening on `interface`:`port` (0: a free port)."""
    return EchoHost(reactor, key, interface, port)
