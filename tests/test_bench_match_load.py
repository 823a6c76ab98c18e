"""The match scenario's lean clients (benchmarks.match_load) against a real server.

A whole server (makeService, TLS lobby, inline game hosts) runs on the test's
reactor; the lean clients' poll loop runs in a thread beside it, over real
sockets on 127.0.0.1. The tests check that a lean client has the same
conversation with the server as the vinom client library (the same TLS
parameters, a full room reached, the room ended by its leave) and that
every way of failing counts as an error.
"""

# slow: starts benchmark processes

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from benchmarks.harness import decode_histogram
from benchmarks.lobby_load import connect_lobby
from benchmarks.match_load import MatchLoad
from tests.support.ports import free_tcp_port
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from vinom.server.certs import make_self_signed


async def run_load(load: MatchLoad, clients: int, in_flight: int) -> MatchLoad:
    """Run the clients to the end in a thread (the server needs this thread's reactor)."""
    try:
        await deferToThread(load.run, clients, in_flight, progress_every=0.05)
    finally:
        load.close()
    return load


class LeanMatchClients(TestCase):
    timeout = 60

    async def server(self) -> RunningServer:
        return await start_server(self, "--games", "duel", ports=4)

    async def test_clients_reach_full_rooms_and_leave(self) -> None:
        server = await self.server()
        load = MatchLoad(server.lobby.host, server.lobby.port, server.lobby.trust)
        await run_load(load, clients=6, in_flight=4)
        self.assertEqual(load.errors, {})
        self.assertEqual(load.completed, 6)
        self.assertEqual(load.send_errors, 0)
        self.assertEqual(decode_histogram(load.latencies.encoded()).get_total_count(), 6)
        self.assertEqual(load.active, {})
        # Every client left its match: the rooms end and their ports return.
        await until(lambda: server.hosting.running_games == 0)
        await until(lambda: server.hosting.allocator.available == 4)

    async def test_same_tls_parameters_as_the_client_library(self) -> None:
        server = await self.server()
        library = await connect_lobby(reactor, server.lobby)
        self.addCleanup(library.close)
        await library.hello("library")
        transport: Any = library.protocol.transport
        handle = transport.getHandle()
        expected = (
            handle.get_protocol_version_name(), handle.get_cipher_name(),
            handle.get_group_name(),
        )
        load = MatchLoad(server.lobby.host, server.lobby.port, server.lobby.trust)
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {})
        self.assertEqual(load.negotiated, expected)
        self.assertEqual(load.negotiated[0] if load.negotiated else None, "TLSv1.3")

    async def test_returning_players_resume_their_tls_sessions(self) -> None:
        # Two players play three matches each; from the second on, each resumes.
        server = await self.server()
        load = MatchLoad(server.lobby.host, server.lobby.port, server.lobby.trust, returning=2)
        await run_load(load, clients=6, in_flight=2)
        self.assertEqual(load.errors, {})
        self.assertEqual(load.completed, 6)
        self.assertEqual(load.resumed, 4)

    async def test_address_checked_against_ip_names(self) -> None:
        # The dev certificate also names 127.0.0.1 (service_identity's IP check).
        server = await self.server()
        load = MatchLoad(
            server.lobby.host, server.lobby.port, server.lobby.trust, hostname="127.0.0.1"
        )
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {})
        self.assertEqual(load.completed, 2)

    async def test_wrong_host_name_fails(self) -> None:
        server = await self.server()
        load = MatchLoad(
            server.lobby.host, server.lobby.port, server.lobby.trust, hostname="example.com"
        )
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {"tls_hostname_mismatch": 2})
        self.assertEqual(load.completed, 0)

    async def test_untrusted_certificate_fails(self) -> None:
        server = await self.server()
        # A certificate for the same name, but not the server's.
        other = Path(self.mktemp())
        other.write_bytes(make_self_signed("localhost")[0])
        load = MatchLoad(server.lobby.host, server.lobby.port, str(other))
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {"tls_Error": 2})
        self.assertEqual(load.completed, 0)

    async def test_lobby_error_frame_fails(self) -> None:
        server = await self.server()
        load = MatchLoad(server.lobby.host, server.lobby.port, server.lobby.trust, game="nope")
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {"lobby_unknown_game": 2})
        self.assertEqual(load.completed, 0)

    async def test_refused_connection_fails(self) -> None:
        server = await self.server()
        port = free_tcp_port()  # nothing listens there
        load = MatchLoad("127.0.0.1", port, server.lobby.trust)
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {"connect_ECONNREFUSED": 2})

    async def test_clients_spread_over_lobbies_in_turn(self) -> None:
        server = await self.server()
        closed = free_tcp_port()  # the second "lobby": nothing listens there
        load = MatchLoad(server.lobby.host, server.lobby.port, server.lobby.trust,
                         more_lobbies=[("127.0.0.1", closed)])  # fmt: skip
        await run_load(load, clients=4, in_flight=4)
        # Clients 0 and 2 went to the real lobby and were matched together; 1 and 3
        # to the other one, which refused them.
        self.assertEqual(load.completed_by_lobby, [2, 0])
        self.assertEqual(load.errors, {"connect_ECONNREFUSED": 2})
        self.assertEqual(load.matches_across_lobbies, 0)
        self.assertEqual([sorted(lobbies) for lobbies in load.match_lobbies.values()], [[0, 0]])

    async def test_silent_lobby_times_out(self) -> None:
        server = await self.server()
        # Accepts connections and never answers the TLS handshake.
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        load = MatchLoad("127.0.0.1", port.getHost().port, server.lobby.trust, timeout=0.2)
        await run_load(load, clients=2, in_flight=2)
        self.assertEqual(load.errors, {"timeout_tls": 2})
