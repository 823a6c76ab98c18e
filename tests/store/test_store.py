"""The player stores: one suite run against the in-memory store and the Redis one.

`PlayerStoreContract` is what every `IPlayerStore` must do; the Redis store's
own tests (a real redis-server from tests/support/redis_server.py) add what only it
has: stores in two processes sharing state, key lifetimes, a Redis restart.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
from typing import Any

import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from tests.support.redis_server import RedisServer, start_redis
from tests.support.waiting import until
from vinom.cluster.client import RedisClient, RedisSettings
from vinom.cluster.players import RedisPlayerStore, decode_player
from vinom.errors import BackendUnavailable
from vinom.identity import hash_secret, new_secret
from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.store.interfaces import IPlayerStore, MatchPlacement, PlayerRecord
from vinom.store.memory import MemoryPlayerStore


def placement(match_id: str, *players: str, port: int = 7400) -> MatchPlacement:
    # Ratings alternate between none and a fraction, so both survive encoding.
    tickets = tuple(
        Ticket(p, p.upper(), "tictactoe", None if i % 2 else 1500.25, 0.125 * i)
        for i, p in enumerate(players)
    )
    return MatchPlacement(
        Match(match_id, "tictactoe", tickets, 1.0), HostAddress("127.0.0.1", port), 2.0
    )


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class PlayerStoreContract:
    """The tests every player store passes; `make_store` gives a fresh empty one."""

    store: IPlayerStore

    async def make_store(self) -> IPlayerStore:
        raise NotImplementedError

    def setUp(self) -> Deferred[None]:
        async def made() -> None:
            self.store = await self.make_store()

        return Deferred.fromCoroutine(made())

    def test_provides_the_interface(self: Any) -> None:
        self.assertTrue(verifyObject(IPlayerStore, self.store))

    async def test_players_are_saved_found_and_removed(self: Any) -> None:
        record = PlayerRecord("p-1", "Ann", "ab" * 32, 5.0)
        self.assertIsNone(await self.store.save_player(record))
        self.assertEqual(await self.store.get_player("p-1"), record)
        self.assertIsNone(await self.store.get_player("p-2"))
        self.assertIsNone(await self.store.remove_player("p-1"))
        self.assertIsNone(await self.store.get_player("p-1"))
        # Removing an unknown player is not an error.
        await self.store.remove_player("p-1")

    async def test_saving_a_player_again_replaces_the_record(self: Any) -> None:
        await self.store.save_player(PlayerRecord("p-1", "Ann", "ab" * 32, 5.0))
        renamed = PlayerRecord("p-1", "Anna", "cd" * 32, 6.5)
        await self.store.save_player(renamed)
        self.assertEqual(await self.store.get_player("p-1"), renamed)

    async def test_placement_is_found_by_match_and_by_player(self: Any) -> None:
        placed = placement("m-1", "a", "b")
        self.assertIsNone(await self.store.save_placement(placed))
        self.assertEqual(await self.store.get_placement("m-1"), placed)
        self.assertEqual(await self.store.placement_for_player("b"), placed)
        self.assertIsNone(await self.store.placement_for_player("c"))
        self.assertIsNone(await self.store.get_placement("m-2"))
        self.assertEqual(placed.port, 7400)
        self.assertEqual(placed.player_ids, ("a", "b"))
        ticket = placed.ticket_of("b")
        assert ticket is not None
        self.assertEqual(ticket.name, "B")
        self.assertIsNone(placed.ticket_of("c"))

    async def test_removing_a_placement_clears_its_players(self: Any) -> None:
        await self.store.save_placement(placement("m-1", "a", "b"))
        self.assertIsNone(await self.store.remove_placement("m-1"))
        self.assertIsNone(await self.store.get_placement("m-1"))
        self.assertIsNone(await self.store.placement_for_player("a"))
        self.assertIsNone(await self.store.placement_for_player("b"))

    async def test_removing_an_old_placement_keeps_a_players_newer_match(self: Any) -> None:
        await self.store.save_placement(placement("m-1", "a", "b"))
        newer = placement("m-2", "a", "c", port=7401)
        await self.store.save_placement(newer)
        await self.store.remove_placement("m-1")
        self.assertEqual(await self.store.placement_for_player("a"), newer)
        self.assertEqual(await self.store.placement_for_player("c"), newer)
        self.assertIsNone(await self.store.placement_for_player("b"))
        self.assertEqual(await self.store.get_placement("m-2"), newer)
        # Removing an unknown placement is not an error.
        await self.store.remove_placement("m-9")

    async def test_removing_a_placement_can_forget_players_in_the_same_step(self: Any) -> None:
        for player_id in "abc":
            await self.store.save_player(PlayerRecord(player_id, player_id, "ab" * 32, 5.0))
        await self.store.save_placement(placement("m-1", "a", "b"))
        await self.store.remove_placement("m-1", forget=["a"])
        self.assertIsNone(await self.store.get_player("a"))
        self.assertEqual((await self.store.get_player("b")).name, "b")
        self.assertIsNone(await self.store.placement_for_player("b"))
        # The placement already removed (by another lobby): the players still go.
        await self.store.remove_placement("m-1", forget=["b", "c"])
        self.assertIsNone(await self.store.get_player("b"))
        self.assertIsNone(await self.store.get_player("c"))

    async def test_players_and_placements_are_independent(self: Any) -> None:
        record = PlayerRecord("a", "A", "ab" * 32, 5.0)
        await self.store.save_player(record)
        await self.store.save_placement(placement("m-1", "a", "b"))
        await self.store.remove_placement("m-1")
        self.assertEqual(await self.store.get_player("a"), record)
        await self.store.save_placement(placement("m-2", "a", "b"))
        await self.store.remove_player("a")
        self.assertEqual(await self.store.placement_for_player("a"), placement("m-2", "a", "b"))


    async def test_the_game_url_of_the_address_is_kept(self: Any) -> None:
        # A player who reconnects is told where browsers play the match, too.
        plain = placement("m-9", "a", "b")
        placed = MatchPlacement(
            plain.match,
            HostAddress("127.0.0.1", 7400, game_url="wss://games-1.example:7380/game"),
            plain.placed_at,
        )
        await self.store.save_placement(placed)
        found = await self.store.placement_for_player("a")
        assert found is not None
        self.assertEqual(found.address.game_url, "wss://games-1.example:7380/game")
        await self.store.save_placement(placement("m-10", "c", "d"))
        other = await self.store.placement_for_player("c")
        assert other is not None
        self.assertIsNone(other.address.game_url)

    async def test_ids_that_look_like_numbers_stay_strings(self: Any) -> None:
        # txredisapi by default turns replies that read as numbers into numbers.
        placed = placement("42", "7", "1.50")
        await self.store.save_placement(placed)
        self.assertEqual(await self.store.placement_for_player("7"), placed)
        await self.store.remove_placement("42")
        self.assertIsNone(await self.store.placement_for_player("1.50"))


class MemoryPlayerStoreTests(PlayerStoreContract, TestCase):
    async def make_store(self) -> IPlayerStore:
        return MemoryPlayerStore()

    def test_counts_players_and_placements(self) -> None:
        store = MemoryPlayerStore()
        store.save_player(PlayerRecord("p-1", "Ann", "ab" * 32, 5.0))
        store.save_placement(placement("m-1", "a", "b"))
        self.assertEqual((store.player_count, store.placement_count), (1, 1))
        store.remove_player("p-1")
        store.remove_placement("m-1")
        self.assertEqual((store.player_count, store.placement_count), (0, 0))


async def redis_client(case: TestCase, server: RedisServer, **settings: Any) -> RedisClient:
    """A RedisClient (its own pool, as each lobby process has) closed at cleanup."""
    client = RedisClient.open(RedisSettings("127.0.0.1", server.port, **settings), reactor)
    case.addCleanup(client.disconnect)
    return client


async def raw_connection(case: TestCase, server: RedisServer) -> Any:
    """A plain txredisapi connection, to look at the keys the way an operator would."""
    connection = await txredisapi.Connection("127.0.0.1", server.port, reconnect=False)
    case.addCleanup(connection.disconnect)
    return connection


class RedisPlayerStoreTests(PlayerStoreContract, TestCase):
    timeout = 60

    async def make_store(self) -> IPlayerStore:
        self.redis = await start_redis(self)
        return RedisPlayerStore(await redis_client(self, self.redis))

    async def test_two_lobby_processes_see_each_others_players_and_placements(self) -> None:
        # A second pool, as a second lobby process on the same Redis would have.
        other = RedisPlayerStore(await redis_client(self, self.redis))
        record = PlayerRecord("a", "A", "ab" * 32, 5.0)
        await self.store.save_player(record)
        placed = placement("m-1", "a", "b")
        await self.store.save_placement(placed)
        self.assertEqual(await other.get_player("a"), record)
        self.assertEqual(await other.placement_for_player("b"), placed)
        await other.remove_placement("m-1")
        self.assertIsNone(await self.store.placement_for_player("a"))
        await other.remove_player("a")
        self.assertIsNone(await self.store.get_player("a"))

    async def test_every_key_has_the_prefix_and_a_ttl(self) -> None:
        store = RedisPlayerStore(await redis_client(self, self.redis, key_prefix="app-1:"))
        await store.save_player(PlayerRecord("a", "A", "ab" * 32, 5.0))
        await store.save_placement(placement("m-1", "a", "b"))
        raw = await raw_connection(self, self.redis)
        keys = sorted(await raw.keys("*"))
        self.assertEqual(
            keys,
            ["app-1:match:m-1", "app-1:player-match:a", "app-1:player-match:b",
             "app-1:player:a"],
        )  # fmt: skip
        for key in keys:
            self.assertGreater(await raw.execute_command("PTTL", key), 0, key)

    async def test_a_player_record_lasts_as_long_as_the_players_match(self) -> None:
        store = RedisPlayerStore(
            await redis_client(self, self.redis), player_ttl=0.4, placement_ttl=60
        )
        record = PlayerRecord("a", "A", "ab" * 32, 5.0)
        await store.save_player(record)
        await store.save_placement(placement("m-1", "a", "b"))
        await sleep(0.6)
        # Past its own TTL, the record lives on while its match does.
        self.assertEqual(await store.get_player("a"), record)
        await store.remove_placement("m-1")
        # The match over, the record has its own TTL again, counted from now.
        self.assertEqual(await store.get_player("a"), record)
        await sleep(0.6)
        self.assertIsNone(await store.get_player("a"))

    async def test_saving_a_player_refreshes_the_record_ttl(self) -> None:
        # Read on Redis's own clock (the key's PTTL), not this machine's: a second
        # save puts the whole TTL back, and the record then lapses.
        store = RedisPlayerStore(await redis_client(self, self.redis), player_ttl=2.0)
        raw = await raw_connection(self, self.redis)
        record = PlayerRecord("a", "A", "ab" * 32, 5.0)
        await store.save_player(record)

        async def ttl() -> int:
            return int(await raw.execute_command("PTTL", "vinom:player:a"))

        async def half_gone() -> bool:
            return 0 < await ttl() < 1000

        async def lapsed() -> bool:
            return await store.get_player("a") is None

        self.assertGreater(await ttl(), 0)
        # Half its TTL gone by Redis's clock ...
        await until(half_gone, "half the TTL gone")
        await store.save_player(record)
        # ... and the second save gives it the whole again.
        self.assertGreater(await ttl(), 1000)
        self.assertEqual(await store.get_player("a"), record)
        await until(lapsed, "the record lapsed")

    async def test_placements_expire_after_their_ttl(self) -> None:
        store = RedisPlayerStore(await redis_client(self, self.redis), placement_ttl=1.0)
        await store.save_placement(placement("m-1", "a", "b"))
        self.assertIsNotNone(await store.placement_for_player("a"))
        await sleep(1.2)
        self.assertIsNone(await store.get_placement("m-1"))
        self.assertIsNone(await store.placement_for_player("a"))

    async def test_an_unreadable_record_is_a_clear_error(self) -> None:
        raw = await raw_connection(self, self.redis)
        await raw.set("vinom:player:a", "{not json")
        await raw.set("vinom:match:m-1", '{"match": {}}')
        error = await self.assertFailure(self.store.get_player("a"), ValueError)
        self.assertIn("vinom:player:a", str(error))
        error = await self.assertFailure(self.store.get_placement("m-1"), ValueError)
        self.assertIn("vinom:match:m-1", str(error))

    async def test_calls_fail_clearly_while_redis_is_down_and_work_once_it_is_back(self) -> None:
        store = RedisPlayerStore(await redis_client(self, self.redis, timeout=0.5))
        await store.save_player(PlayerRecord("a", "A", "ab" * 32, 5.0))
        await self.redis.stop()
        # Refused, not hung (its deadline: tests/cluster/test_redis.py).
        error = await self.assertFailure(store.get_player("a"), BackendUnavailable)
        self.assertIn(f"127.0.0.1:{self.redis.port}", str(error))
        await self.assertFailure(store.save_placement(placement("m-1", "a")), BackendUnavailable)

        await self.redis.start()
        # The pool reconnects by itself (with a backoff of about a second at first).
        record = PlayerRecord("b", "B", "cd" * 32, 6.0)
        async def saved() -> bool:
            try:
                await store.save_player(record)
                return True
            except BackendUnavailable:
                # A call fails at once while no connection is up; the reactor must run
                # for the pool to reconnect (`until` lets it).
                return False

        await until(saved, "the store to reconnect", timeout=20, every=0.1)
        self.assertEqual(await store.get_player("b"), record)
        # This Redis keeps nothing on disk: what was saved before the restart is gone.
        self.assertIsNone(await store.get_player("a"))

    async def test_an_unknown_id_is_looked_up_with_the_work_of_a_known_one(self) -> None:
        # A reconnect's timing must not tell which player ids exist: for an unknown id
        # Redis answers, and the store decodes, a record of a real one's shape and size.
        decoded: list[str] = []

        def decode(text: str, key: str) -> PlayerRecord:
            decoded.append(text)
            return decode_player(text, key)

        store = RedisPlayerStore(await redis_client(self, self.redis), decode=decode)
        record = PlayerRecord(
            "p-0123456789abcdef", "Ann Lee", hash_secret(new_secret()), 1_763_900_000.25
        )
        await store.save_player(record)
        self.assertEqual(await store.get_player(record.player_id), record)
        for unknown in ("p-fedcba9876543210", "p-xxxxxxxxxxxxxxxx", ""):
            self.assertIsNone(await store.get_player(unknown))
        self.assertEqual(len(decoded), 4)
        known, *others = (json.loads(text) for text in decoded)
        for other in others:
            self.assertEqual(other.keys(), known.keys())
            self.assertEqual(len(other["secret_hash"]), len(known["secret_hash"]))
        self.assertLess(max(abs(len(t) - len(decoded[0])) for t in decoded), 10)

    async def test_a_save_redis_runs_after_the_store_gave_up_saves_nothing(self) -> None:
        # A hello answered `unavailable` while Redis stalled (SIGSTOP) leaves no
        # record once Redis goes on (SIGCONT) and runs it.
        store = RedisPlayerStore(await redis_client(self, self.redis, timeout=0.5))
        # The store aborts a connection that timed out; the save already sent stays in
        # Redis's socket. Redis serves sockets in the order they became readable: a
        # PING sent on another connection after SIGCONT is answered after it ran.
        raw = await raw_connection(self, self.redis)
        self.redis.pause()
        await self.assertFailure(
            store.save_player(PlayerRecord("late", "L", "ab" * 32, 5.0)), BackendUnavailable
        )
        self.redis.resume()
        await raw.ping()  # Redis has run the late save
        self.assertEqual(await raw.keys("vinom:player:*"), [])
        # In time, it saves.
        record = PlayerRecord("prompt", "P", "cd" * 32, 6.0)
        await store.save_player(record)
        self.assertEqual(await store.get_player("prompt"), record)
