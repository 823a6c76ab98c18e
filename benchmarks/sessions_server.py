"""Server side of the session scenarios: vinom game hosts built directly from the pieces.

The udp-echo and handshake scenarios serve a `ServerEndpoint` behind the
real `GameHostProtocol` adapter, in a core that echoes every message
back on its channel and admits any holder of a valid
token (the tokens are sealed by the bench's load process with the key it
shares with this process). Nothing here goes through the lobby.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from benchmarks.ports import free_udp_port
from vinom.hosting.interfaces import IDatagramCore
from vinom.hosting.udp import listen_game_host
from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig, ProtocolConfig
from vinom.protocol.events import MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.protocol.server import ServerEndpoint


def admit_all(player_id: str, match_id: str, now: float) -> Admission:
    """Every player with a valid token may connect: the bench issues the tokens."""
    return Admission.ACCEPT


@implementer(IDatagramCore)
class EchoCore:
    """A session endpoint that sends every message back on the channel it arrived on.

    The same shape as `GameHostCore`, with an echo in place of the seat router.
    """

    def __init__(self, config: HostConfig) -> None:
        self.endpoint = ServerEndpoint(config, admit_all)
        self.messages = 0
        self.connected = 0
        self.closed = 0

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        self.endpoint.receive_datagram(data, addr, now)
        self._echo()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        return self.endpoint.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self.endpoint.get_timer()

    def handle_timer(self, now: float) -> None:
        self.endpoint.handle_timer(now)
        self._echo()

    def next_event(self) -> object | None:
        return None

    def _echo(self) -> None:
        endpoint = self.endpoint
        event = endpoint.next_event()
        while event is not None:
            if isinstance(event, MessageReceived):
                self.messages += 1
                endpoint.send_message(event.session_id, event.channel, event.data)
            elif isinstance(event, SessionConnected):
                self.connected += 1
            elif isinstance(event, SessionClosed):
                self.closed += 1
            event = endpoint.next_event()


class EchoHost:
    """A listening vinom echo host and its counters."""

    def __init__(self, reactor: Any, key: bytes, interface: str, port: int) -> None:
        if port == 0:
            port = free_udp_port(interface)
        config = HostConfig(
            protocol=ProtocolConfig(token_key=key),
            addresses=(HostAddress(interface, port),),
        )
        self.core = EchoCore(config)
        self.endpoint = self.core.endpoint
        # As a game host listens (vinom.hosting.inline): on a GameHostPort, which
        # reads in batches (recvmmsg on Linux).
        self.protocol, self.port = listen_game_host(
            reactor, port, self.core, reactor, interface=interface
        )

    def counters(self) -> dict[str, Any]:
        endpoint = self.endpoint
        return {
            "messages": self.core.messages,
            "connected": self.core.connected,
            "closed": self.core.closed,
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
