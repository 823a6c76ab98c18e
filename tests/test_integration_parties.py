"""Integration: parties over real TLS lobby sockets on 127.0.0.1.

Two friends form a party, the leader queues it for a four-player maze, two
solo players queue, and all four get `match_found` for the same match, the
friends in adjacent seats. `test_..._on_two_lobbies` runs it with the friends
on two lobbies sharing a real Redis (tests/support/redis_server.py): the Redis
matchmaker and party store, `party_update` and `queued` reaching the member
through the other lobby over pub/sub. (There each lobby places the match on
its own placeholder hosts, so the friends' `match_found` name the same match
but not the same port; a `twistd vinom lobby` server places it once, through Redis:
tests/cluster/test_scaling.py.) Across two lobbies too: a member who leaves through
one lobby withdraws the ticket the other queued, and the lead passes to a
member on another lobby when the leader disconnects.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet import reactor
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from tests.store.test_store import redis_client
from tests.support.doubles import PlaceholderGameHostFactory, PlaceholderTokenIssuer
from tests.support.lobby_players import Player, abort_player
from tests.support.ports import free_udp_ports
from tests.support.redis_server import start_redis
from vinom.client.lobby import PROTOCOL
from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings
from vinom.cluster.parties import RedisPartyStore
from vinom.games.rules import GameCatalogue
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.config import LobbyConfig
from vinom.lobby.server import LobbyFactory
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.server.certs import ensure_dev_certificate
from vinom.store.memory import MemoryPlayerStore

GAMES = GameCatalogue.sized({"maze": 4})


class PartyIntegrationTests(TestCase):
    timeout = 60

    async def start_lobby(self, matchmaker: Any, parties: Any = None) -> int:
        """A TLS lobby on an ephemeral port with placeholder game hosts; its port."""
        if not hasattr(self, "server_cert"):
            # One certificate for every lobby of a test: the clients trust it.
            paths = ensure_dev_certificate(self.mktemp())
            self.cert_pem = paths.certificate.read_bytes()
            self.server_cert = PrivateCertificate.loadPEM(
                self.cert_pem + paths.private_key.read_bytes()
            )
        server_cert = self.server_cert
        store = MemoryPlayerStore()
        hosting = GameHostingService(
            PortAllocator(free_udp_ports(2)),
            PlaceholderGameHostFactory(reactor, "127.0.0.1", "127.0.0.1"),
            store=store, clock=reactor,
        )
        hosting.startService()
        self.addCleanup(hosting.stopService)
        lobby = LobbyFactory(
            config=LobbyConfig(),
            games=GAMES,
            backends=LobbyBackends(matchmaker, hosting, store,
                                   PlaceholderTokenIssuer(), parties=parties),
            clock=reactor,
        )
        lobby.startService()
        self.addCleanup(lobby.stopService)
        endpoint = SSL4ServerEndpoint(reactor, 0, server_cert.options(), interface="127.0.0.1")
        listening = await endpoint.listen(lobby)
        self.addCleanup(listening.stopListening)
        return int(listening.getHost().port)

    async def connect(self, port: int, name: str) -> Player:
        options = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(self.cert_pem))
        player = Player()
        await connectProtocol(SSL4ClientEndpoint(reactor, "127.0.0.1", port, options), player)
        self.addCleanup(abort_player, player)
        welcome = await player.request({"type": "hello", "name": name, "protocol": PROTOCOL})
        self.assertEqual(welcome["type"], "welcome")
        player.player_id = welcome["player_id"]
        return player

    async def play_party_and_two_solos(self, ann_port: int, bob_port: int, solo_port: int) -> None:
        ann = await self.connect(ann_port, "Ann")
        bob = await self.connect(bob_port, "Bob")
        party = (await ann.request({"type": "party_create"}))["party"]
        joined = await bob.request({"type": "party_join", "code": party["code"]})
        self.assertEqual(joined["type"], "party")
        update = await ann.of_type("party_update")
        self.assertEqual((update["event"], update["player_id"]), ("joined", bob.player_id))
        queued = await ann.request({"type": "queue", "game": "maze"})
        self.assertEqual((queued["type"], queued["party_id"]), ("queued", party["party_id"]))
        told = await bob.of_type("queued")
        self.assertEqual((told["game"], told["status"]), ("maze", "searching"))
        solos = [await self.connect(solo_port, name) for name in ("Sol", "Sue")]
        for solo in solos:
            self.assertEqual((await solo.request({"type": "queue", "game": "maze"}))["type"],
                             "queued")  # fmt: skip
        players = [ann, bob, *solos]
        found = [await p.of_type("match_found") for p in players]
        self.assertEqual(len({f["game_id"] for f in found}), 1)
        self.assertEqual(sorted(f["seat"] for f in found), [0, 1, 2, 3])
        # The friends sit together, the leader first.
        self.assertEqual((found[0]["seat"], found[1]["seat"]), (0, 1))
        for player in players:
            self.assertIsInstance(await player.closed, ConnectionDone)

    async def test_a_party_of_two_and_two_solo_players_make_one_maze(self) -> None:
        port = await self.start_lobby(MemoryMatchmaker(GAMES, reactor))
        await self.play_party_and_two_solos(port, port, port)

    async def test_a_party_of_two_and_two_solo_players_make_one_maze_on_two_lobbies(
        self,
    ) -> None:
        redis = await start_redis(self)
        ports = []
        for _ in range(2):
            pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=2,
                                                 reconnect=True)  # fmt: skip
            self.addCleanup(pool.disconnect)
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port)
            settings = RedisMatchmakerSettings(tick_every=0.1)
            matchmaker = RedisMatchmaker(pool, endpoint, GAMES, reactor, settings=settings)
            await matchmaker.start()
            self.addCleanup(matchmaker.stop)
            # The lobby's id with each member it holds: a party's match is published
            # to each member's lobby (as `twistd vinom` wires it).
            parties = RedisPartyStore(await redis_client(self, redis), endpoint, reactor,
                                      max_size=4, lobby_id=matchmaker.lobby_id)  # fmt: skip
            await parties.start()
            self.addCleanup(parties.stop)
            ports.append(await self.start_lobby(matchmaker, parties))
        # Ann and one solo player on the first lobby, Bob and the other on the second.
        await self.play_party_and_two_solos(ports[0], ports[1], ports[0])

    async def start_redis_lobbies(self, count: int) -> list[int]:
        """`count` lobbies sharing a real Redis (matchmaker and party store); their ports."""
        redis = await start_redis(self)
        ports = []
        for _ in range(count):
            pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=2,
                                                 reconnect=True)  # fmt: skip
            self.addCleanup(pool.disconnect)
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port)
            settings = RedisMatchmakerSettings(tick_every=0.1)
            matchmaker = RedisMatchmaker(pool, endpoint, GAMES, reactor, settings=settings)
            await matchmaker.start()
            self.addCleanup(matchmaker.stop)
            # The lobby's id with each member it holds: a party's match is published
            # to each member's lobby (as `twistd vinom` wires it).
            parties = RedisPartyStore(await redis_client(self, redis), endpoint, reactor,
                                      max_size=4, lobby_id=matchmaker.lobby_id)  # fmt: skip
            await parties.start()
            self.addCleanup(parties.stop)
            ports.append(await self.start_lobby(matchmaker, parties))
        return ports

    async def test_across_lobbies_a_member_leaving_withdraws_the_ticket_and_the_lead_passes(
        self,
    ) -> None:
        first, second = await self.start_redis_lobbies(2)
        ann = await self.connect(first, "Ann")
        bob = await self.connect(second, "Bob")
        cat = await self.connect(second, "Cat")
        code = (await ann.request({"type": "party_create"}))["party"]["code"]
        await bob.request({"type": "party_join", "code": code})
        await cat.request({"type": "party_join", "code": code})
        await ann.when(lambda f: f.get("event") == "joined" and f["player_id"] == cat.player_id)
        await ann.request({"type": "queue", "game": "maze"})
        await cat.of_type("queued")
        # Cat leaves through the second lobby: the ticket Ann's lobby queued is
        # withdrawn, and Ann and Bob are told.
        self.assertEqual((await cat.request({"type": "party_leave"}))["type"], "party_left")
        for player in (ann, bob):
            cancelled = await player.of_type("cancelled")
            self.assertEqual(cancelled["reason"], "member_left")
        # Ann's lobby let go of the ticket: she queues the two of them again.
        mark = len(bob.frames)
        again = await ann.request({"type": "queue", "game": "maze"})
        self.assertEqual(again["type"], "queued")
        await bob.when(lambda f: f["type"] == "queued", after=mark)
        # Ann disconnects: Bob, on the other lobby, leads, and is no longer queued.
        mark = len(bob.frames)
        assert ann.transport is not None
        ann.transport.loseConnection()
        update = await bob.when(lambda f: f.get("event") == "left", after=mark)
        self.assertEqual(update["player_id"], ann.player_id)
        self.assertEqual(update["party"]["leader"], bob.player_id)
        self.assertEqual([m["name"] for m in update["party"]["members"]], ["Bob"])
        cancelled = await bob.when(lambda f: f["type"] == "cancelled", after=mark)
        self.assertEqual(cancelled["reason"], "member_left")
        self.assertEqual((await bob.request({"type": "queue", "game": "maze"}))["type"],
                         "queued")  # fmt: skip
        # The last member leaves (before the test's Redis goes): the party is gone.
        self.assertEqual((await bob.request({"type": "party_leave"}))["type"], "party_left")
        gone = await cat.request({"type": "party_join", "code": code})
        self.assertEqual(gone["code"], "unknown_party")
