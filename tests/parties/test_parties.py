"""The party stores: one suite run against the in-memory store and the Redis one.

`PartyStoreContract` is what every `IPartyStore` does (the listeners hear
every change); `RedisPartyStoreTests` runs it on a real redis-server
(tests/support/redis_server.py) and adds what only Redis has: two lobbies' stores
sharing parties and hearing each other's changes, racing joins, keys that
lapse with the lobby that refreshed them. `RedisPartyStoreAsTheLobbyUserTests`
runs it as the lobbies' Redis ACL user, with the rules deploy/ declares.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from tests.store.test_store import raw_connection, redis_client
from tests.support.redis_server import RedisServer, start_redis
from tests.support.waiting import until
from vinom.cluster.blocking import ask
from vinom.cluster.parties import RedisPartySettings, RedisPartyStore
from vinom.cluster.watch import WATCH_BREAK
from vinom.codes import CODE_ALPHABET
from vinom.errors import BackendUnavailable
from vinom.parties.interfaces import IPartyStore, Party, PartyChange, PartyError, PartyMember
from vinom.parties.memory import MemoryPartyStore


def member(player_id: str) -> PartyMember:
    return PartyMember(player_id, player_id.upper())


class PartyStoreContract:
    """The tests every party store passes; `make_store` gives a fresh empty one."""

    store: Any
    changes: list[PartyChange]

    async def make_store(self, max_size: int = 4) -> Any:
        raise NotImplementedError

    async def setUp(self) -> None:  # type: ignore[override]
        self.store = await self.make_store()
        self.changes = []
        self.store.add_listener(self.changes.append)

    async def failure_code(self, d: Any) -> str:
        try:
            await d
        except PartyError as e:
            return e.code
        raise AssertionError("the call did not fail")

    def events(self) -> list[tuple[str, str]]:
        return [(c.event, c.player_id) for c in self.changes]

    async def test_provides_the_interface(self: Any) -> None:
        self.assertTrue(verifyObject(IPartyStore, self.store))

    async def test_create_gives_an_id_a_join_code_and_a_leader(self: Any) -> None:
        party = await self.store.create(member("a"))
        self.assertRegex(party.party_id, r"^p-[0-9a-f]{16}$")
        self.assertEqual(len(party.code), 6)
        self.assertTrue(set(party.code) <= set(CODE_ALPHABET))
        self.assertEqual(party.leader, "a")
        self.assertEqual(party.members, (member("a"),))
        self.assertIsNone(party.queued_for)
        self.assertEqual(await self.store.party_of("a"), party)
        self.assertIsNone(await self.store.party_of("b"))
        self.assertEqual(self.events(), [("created", "a")])

    async def test_friends_join_with_the_code_in_join_order(self: Any) -> None:
        party = await self.store.create(member("a"))
        await self.store.join(party.code.lower(), member("b"))
        joined = await self.store.join(" " + party.code + " ", member("c"))
        self.assertEqual(joined.player_ids, ("a", "b", "c"))
        self.assertEqual(joined.party_id, party.party_id)
        self.assertEqual(await self.store.party_of("c"), joined)
        self.assertEqual(self.events(), [("created", "a"), ("joined", "b"), ("joined", "c")])
        self.assertEqual(self.changes[-1].party, joined)

    async def test_join_errors(self: Any) -> None:
        party = await self.store.create(member("a"))
        self.assertEqual(await self.failure_code(self.store.join("ZZZZZZ", member("b"))),
                         "unknown_party")  # fmt: skip
        self.assertEqual(await self.failure_code(self.store.join(party.code, member("a"))),
                         "already_in_party")  # fmt: skip
        self.assertEqual(await self.failure_code(self.store.create(member("a"))),
                         "already_in_party")  # fmt: skip
        for p in "bcd":
            await self.store.join(party.code, member(p))
        self.assertEqual(await self.failure_code(self.store.join(party.code, member("e"))),
                         "party_full")  # fmt: skip
        self.assertIsNone(await self.store.party_of("e"))

    async def test_a_queued_party_takes_no_new_members(self: Any) -> None:
        party = await self.store.create(member("a"))
        await self.store.join(party.code, member("b"))
        queued = await self.store.set_queued(party.party_id, "maze", ("a", "b"), 3)
        self.assertEqual(queued.queued_for, "maze")
        self.assertEqual(self.changes[-1].event, "queued")
        self.assertEqual(self.changes[-1].position, 3)
        self.assertEqual(await self.failure_code(self.store.join(party.code, member("c"))),
                         "party_queued")  # fmt: skip
        unqueued = await self.store.set_queued(party.party_id, None)
        self.assertIsNone(unqueued.queued_for)
        self.assertEqual(self.changes[-1].event, "unqueued")
        await self.store.join(party.code, member("c"))

    async def test_a_queued_party_records_its_queue(self: Any) -> None:
        party = await self.store.create(member("a"))
        self.assertIsNone(party.queue)
        queued = await self.store.set_queued(party.party_id, "maze", ("a",), 1, queue="ranked")
        self.assertEqual((queued.queued_for, queued.queue), ("maze", "ranked"))
        self.assertEqual(self.changes[-1].party.queue, "ranked")
        self.assertEqual((await self.store.party_of("a")).describe()["queue"], "ranked")
        unqueued = await self.store.set_queued(party.party_id, None)
        self.assertIsNone(unqueued.queue)
        queued = await self.store.set_queued(party.party_id, "maze", ("a",))
        self.assertEqual(queued.queue, "normal")

    async def test_queueing_checks_the_members_on_the_ticket(self: Any) -> None:
        party = await self.store.create(member("a"))
        await self.store.join(party.code, member("b"))
        self.assertEqual(
            await self.failure_code(self.store.set_queued(party.party_id, "maze", ("a",))),
            "party_changed",
        )
        self.assertIsNone((await self.store.party_of("a")).queued_for)

    async def test_clearing_a_clear_party_tells_nobody(self: Any) -> None:
        party = await self.store.create(member("a"))
        await self.store.set_queued(party.party_id, "maze", ("a",))
        await self.store.set_queued(party.party_id, None, matched=True)
        self.assertEqual(self.changes[-1].event, "matched")
        told = len(self.changes)
        await self.store.set_queued(party.party_id, None)
        self.assertEqual(len(self.changes), told)

    async def test_the_longest_standing_member_leads_when_the_leader_leaves(self: Any) -> None:
        party = await self.store.create(member("a"))
        for p in "bc":
            await self.store.join(party.code, member(p))
        await self.store.set_queued(party.party_id, "maze", ("a", "b", "c"))
        after = await self.store.leave("a")
        self.assertEqual(after.player_ids, ("b", "c"))
        self.assertEqual(after.leader, "b")
        # A queued party's ticket no longer matches its members: it is not queued.
        self.assertIsNone(after.queued_for)
        self.assertEqual(self.changes[-1].event, "left")
        self.assertEqual(self.changes[-1].player_id, "a")
        self.assertIsNone(await self.store.party_of("a"))
        self.assertEqual(await self.store.party_of("c"), after)

    async def test_the_party_is_gone_when_its_last_member_leaves(self: Any) -> None:
        party = await self.store.create(member("a"))
        await self.store.join(party.code, member("b"))
        await self.store.leave("b")
        gone = await self.store.leave("a")
        self.assertEqual(gone.members, ())
        self.assertEqual(self.changes[-1].party.members, ())
        self.assertEqual(await self.failure_code(self.store.join(party.code, member("c"))),
                         "unknown_party")  # fmt: skip
        self.assertEqual(await self.failure_code(self.store.leave("a")), "not_in_party")
        self.assertEqual(
            await self.failure_code(self.store.set_queued(party.party_id, None)), "unknown_party"
        )
        # The player may start a new one.
        again = await self.store.create(member("a"))
        self.assertNotEqual(again.party_id, party.party_id)

    async def test_a_failing_listener_does_not_stop_the_others(self: Any) -> None:
        def broken(change: PartyChange) -> None:
            raise RuntimeError("boom")

        store = await self.make_store()
        heard: list[PartyChange] = []
        store.add_listener(broken)
        store.add_listener(heard.append)
        await store.create(member("a"))
        await until(lambda: len(heard) == 1, "the change")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class MemoryPartyStoreTests(PartyStoreContract, TestCase):
    async def make_store(self, max_size: int = 4) -> Any:
        return MemoryPartyStore(max_size)

    def test_max_size_must_be_positive(self) -> None:
        self.assertRaises(ValueError, MemoryPartyStore, 0)


class RedisPartyStoreTests(PartyStoreContract, TestCase):
    timeout = 60
    redis: RedisServer

    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await start_redis(self)
        await super().setUp()

    async def make_store(
        self, max_size: int = 4, settings: RedisPartySettings | None = None
    ) -> Any:
        return await self.make_store_with(await redis_client(self, self.redis), max_size,
                                          settings)  # fmt: skip

    async def make_store_with(
        self, client: Any, max_size: int = 4, settings: RedisPartySettings | None = None
    ) -> Any:
        store = RedisPartyStore(
            client, TCP4ClientEndpoint(reactor, "127.0.0.1", self.redis.port), reactor,
            max_size=max_size, settings=settings,
        )  # fmt: skip
        await store.start()
        self.addCleanup(store.stop)
        return store

    async def test_two_lobbies_share_parties_and_hear_each_others_changes(self) -> None:
        other = await self.make_store()
        heard: list[PartyChange] = []
        other.add_listener(heard.append)
        party = await self.store.create(member("a"))
        joined = await other.join(party.code, member("b"))
        self.assertEqual(joined.player_ids, ("a", "b"))
        self.assertEqual(await self.store.party_of("b"), joined)
        # Each store hears every change once: its own from the script, the
        # other's on the channel.
        await until(lambda: len(self.changes) == 2 and len(heard) == 2, "both changes")
        self.assertEqual(self.events(), [("created", "a"), ("joined", "b")])
        self.assertEqual([(c.event, c.player_id) for c in heard], self.events())
        await self.store.leave("a")
        await until(lambda: len(heard) == 3, "the leave")
        self.assertEqual(heard[-1].party.leader, "b")

    async def test_a_member_whose_lobbys_lease_lapsed_is_taken_out_and_the_party_told(
        self,
    ) -> None:
        # Two lobbies' stores; each lobby's lease is its key under the matchmaker's
        # prefix, which the test sets as a lobby's heartbeat would.
        client = await redis_client(self, self.redis)
        fast = RedisPartySettings(check_every=0.1)

        async def lobby_store(lobby_id: str) -> Any:
            # A lapsed lease (0.3 s here, renewed every 0.1 s) counts once Redis has been
            # watched for both (vinom.cluster.watch).
            store = RedisPartyStore(
                client, TCP4ClientEndpoint(reactor, "127.0.0.1", self.redis.port), reactor,
                settings=fast, lobby_id=lobby_id, lease_prefix="vinom:mm", lease_settle=0.4,
            )  # fmt: skip
            await store.start()
            self.addCleanup(store.stop)
            return store

        await client.handler.execute_command("SET", "vinom:mm:lobby:l-here", "1")
        await client.handler.execute_command("SET", "vinom:mm:lobby:l-there", "1", "PX", "300")
        here, there = await lobby_store("l-here"), await lobby_store("l-there")
        heard: list[PartyChange] = []
        here.add_listener(heard.append)
        party = await here.create(member("a"))
        await there.join(party.code, member("b"))
        await here.set_queued(party.party_id, "maze", ("a", "b"))
        # The other lobby stops renewing its lease (it died): within its lease and
        # a check, the member is out and the party told, no longer queued.
        await until(lambda: any(c.event == "left" for c in heard), "the member taken out")
        left = next(c for c in heard if c.event == "left")
        self.assertEqual((left.player_id, left.party.player_ids), ("b", ("a",)))
        self.assertIsNone(left.party.queued_for)
        self.assertIsNone(await here.party_of("b"))
        # The living lobby's member stays, and its party is not told twice.
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual([c.event for c in heard].count("left"), 1)
        self.assertEqual((await here.party_of("a")).player_ids, ("a",))

    async def test_after_redis_was_away_no_member_is_taken_out_before_a_full_lease(
        self,
    ) -> None:
        # Redis stalls for longer than a lease and the watch guard's break: every lease
        # has expired on its clock when it goes on, and the lobbies renew theirs only as
        # they reconnect, the other one a moment after this one's first check.
        client = await redis_client(self, self.redis)
        lease = 1.0
        store = RedisPartyStore(
            client, TCP4ClientEndpoint(reactor, "127.0.0.1", self.redis.port), reactor,
            settings=RedisPartySettings(check_every=0.1), lobby_id="l-here",
            lease_prefix="vinom:mm", lease_settle=lease + 0.1,
        )  # fmt: skip
        await store.start()
        self.addCleanup(store.stop)
        heard: list[PartyChange] = []
        store.add_listener(heard.append)
        lease_ms = str(int(lease * 1000))
        for lobby in ("l-here", "l-there"):
            await client.handler.execute_command("SET", f"vinom:mm:lobby:{lobby}", "1", "PX",
                                                 lease_ms)  # fmt: skip
        there = await self.make_store()
        party = await store.create(member("a"))
        await there.join(party.code, member("b"))
        # (The other lobby's store names its lobby, as `twistd vinom` does.)
        await client.handler.execute_command(
            "HSET", f"vinom:party:{party.party_id}", "lobbies",
            json.dumps({"a": "l-here", "b": "l-there"}),
        )  # fmt: skip
        await deferLater(reactor, 0.3, lambda: None)
        self.redis.pause()
        await deferLater(reactor, lease + WATCH_BREAK + 0.3, lambda: None)
        self.redis.resume()
        await client.handler.execute_command("SET", "vinom:mm:lobby:l-here", "1", "PX", lease_ms)
        # The other lobby renews its lease once Redis has been watched again for about
        # half a lease (five checks), read from Redis in the same script as the renewal:
        # well inside the window however late this process runs.
        renew = ("SET", "vinom:mm:lobby:l-there", "1", "PX", lease_ms)
        await until(lambda: self.redis.watch_lasted_ms() >= lease * 0.5 * 1000,
                    "half a lease of watch", every=0.02)  # fmt: skip
        lasted = self.redis.watch_lasted_ms(then=renew)
        self.assertLess(lasted, (lease + 0.1) * 1000)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual([c.event for c in heard if c.event == "left"], [])
        self.assertEqual((await store.party_of("b")).player_ids, ("a", "b"))

    async def test_racing_joins_never_overfill_a_party(self) -> None:
        stores = [self.store, await self.make_store(), await self.make_store()]
        party = await self.store.create(member("a"))
        results = await gatherResults(
            [
                stores[i % 3].join(party.code, member(f"p{i}")).addErrback(
                    lambda f: f.trap(PartyError) and f.value.code
                )
                for i in range(12)
            ]
        )
        joined = [r for r in results if isinstance(r, Party)]
        self.assertEqual(len(joined), 3)
        self.assertEqual([r for r in results if not isinstance(r, Party)], ["party_full"] * 9)
        final = await self.store.party_of("a")
        self.assertEqual(len(final.members), 4)
        self.assertEqual(set(final.player_ids[1:]), {p.player_ids[-1] for p in joined})

    async def test_two_lobbies_joining_the_last_place_at_once_one_wins(self) -> None:
        # Two lobbies (each its own pool) read the party with one place left at once, each
        # decides its join on what it read; the write of the second finds the party moved
        # and it decides again: full. Several rounds, each a new party.
        stores = [await self.make_store(max_size=2) for _ in range(2)]
        heard: list[PartyChange] = []
        stores[0].add_listener(heard.append)
        for n in range(6):
            party = await stores[0].create(member(f"lead{n}"))
            results = await gatherResults([
                store.join(party.code, member(f"r{n}p{i}")).addErrback(
                    lambda f: f.trap(PartyError) and f.value.code
                )
                for i, store in enumerate(stores)
            ])  # fmt: skip
            won = [r for r in results if isinstance(r, Party)]
            self.assertEqual(len(won), 1, results)
            self.assertEqual([r for r in results if not isinstance(r, Party)], ["party_full"])
            final = await stores[1].party_of(f"lead{n}")
            self.assertEqual(final, won[0])
            self.assertEqual(len(final.members), 2)
            loser = f"r{n}p{1 - results.index(won[0])}"
            self.assertIsNone(await stores[0].party_of(loser))
        await until(lambda: len(heard) == 12, "every change")
        self.assertEqual([c.event for c in heard], ["created", "joined"] * 6)

    async def test_a_member_key_whose_party_is_gone_does_not_hold_the_player(self) -> None:
        # As after Redis lost some keys: the party hash is gone, a member key is left.
        party = await self.store.create(member("a"))
        raw = await raw_connection(self, self.redis)
        await raw.delete(f"vinom:party:{party.party_id}")
        again = await self.store.create(member("a"))
        self.assertNotEqual(again.party_id, party.party_id)
        self.assertEqual(await self.store.party_of("a"), again)

    async def test_keys_have_ttls_and_a_dead_lobbys_member_leaves(self) -> None:
        settings = RedisPartySettings(party_ttl=1.0, refresh_every=0.2)
        alive = await self.make_store(settings=settings)
        dying = await self.make_store(settings=settings)
        heard: list[PartyChange] = []
        alive.add_listener(heard.append)
        party = await alive.create(member("a"))
        await dying.join(party.code, member("b"))
        raw = await raw_connection(self, self.redis)
        keys = sorted(await raw.keys("vinom:party:*"))
        self.assertEqual(keys, sorted([f"vinom:party:{party.party_id}",
                                       f"vinom:party:code:{party.code}",
                                       "vinom:party:of:a", "vinom:party:of:b",
                                       "vinom:party:seq"]))  # fmt: skip
        for key in keys:
            if not key.endswith(":seq"):
                ttl = await raw.execute_command("PTTL", key)
                self.assertTrue(0 < ttl <= 1000, (key, ttl))
        # The dying lobby stops refreshing; the living one keeps its member's
        # keys and the party, and takes b out once b's key lapses.
        await dying.stop()
        await until(lambda: any(c.event == "left" for c in heard), "b to leave", timeout=10)
        self.assertEqual(heard[-1].player_id, "b")
        after = await alive.party_of("a")
        self.assertEqual(after.player_ids, ("a",))
        await deferLater(reactor, 1.5, lambda: None)
        self.assertEqual(await alive.party_of("a"), after)

    async def test_party_calls_redis_runs_after_the_lobby_gave_up_change_nothing(self) -> None:
        # Redis stalls (SIGSTOP) during a join, a create and a leave; each fails as
        # unavailable, and once Redis goes on (SIGCONT) and runs them, none of them
        # has changed a party or told anyone.
        store = await self.make_store_with(await redis_client(self, self.redis, timeout=0.5))
        # The store aborts a connection that timed out; its calls already sent stay in
        # Redis's socket. Redis serves sockets in the order they became readable: a
        # PING sent on another connection after SIGCONT is answered after they ran.
        raw = await raw_connection(self, self.redis)
        party = await store.create(member("a"))
        await store.join(party.code, member("b"))
        other = await self.make_store()
        heard: list[PartyChange] = []
        other.add_listener(heard.append)
        self.redis.pause()
        for call in (lambda: store.join(party.code, member("c")),
                     lambda: store.create(member("d")),
                     lambda: store.leave("b", refuse_late=True)):  # fmt: skip
            await self.assertFailure(call(), BackendUnavailable)
        self.redis.resume()
        await raw.ping()  # Redis has run the three late calls
        self.assertEqual((await other.party_of("a")).player_ids, ("a", "b"))
        self.assertIsNone(await other.party_of("c"))
        self.assertIsNone(await other.party_of("d"))
        # The same calls in time do what they say. Redis publishes changes in the order
        # it runs them: the first change heard is this join's, none of the late calls'.
        self.assertEqual((await store.join(party.code, member("c"))).player_ids, ("a", "b", "c"))
        await until(lambda: len(heard) >= 1, "the join")
        self.assertEqual([(c.event, c.player_id) for c in heard], [("joined", "c")])
        self.assertEqual((await store.create(member("d"))).player_ids, ("d",))
        self.assertEqual((await store.leave("b", refuse_late=True)).player_ids, ("a", "c"))


# The lobbies' Redis ACL rules, as the Redis pods of deploy/ declare them (docs/scaling.md,
# "Redis users"; tests/test_deploy.py checks that both say the same).
REDIS_SH = Path(__file__).resolve().parents[2] / "deploy/components/redis-sentinel/redis.sh"


def lobby_acl_rules() -> list[str]:
    (rules,) = re.findall(r"^user vinom-lobby on >\$\w+ (.*)$", REDIS_SH.read_text(), re.M)
    return str(rules).split()


class RedisPartyStoreAsTheLobbyUserTests(PartyStoreContract, TestCase):
    """The contract as the lobbies' ACL user, its stores refreshing and checking their
    members every 0.1 s: Redis refuses them nothing (its ACL LOG stays empty)."""

    timeout = 60
    admin = "admin-pa55"
    password = "lobby-pa55"

    async def setUp(self) -> None:  # type: ignore[override]
        user = ("--user", "vinom-lobby", "on", ">" + self.password, *lobby_acl_rules())
        self.redis = RedisServer(os.path.abspath(self.mktemp()), password=self.admin,
                                 extra=user)  # fmt: skip
        await self.redis.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(self.redis.stop()))
        # (Cleanups run last first: this one after the stores have stopped.)
        self.addCleanup(self.nothing_refused)
        await super().setUp()

    def nothing_refused(self) -> None:
        refused = ask(("127.0.0.1", self.redis.port), ["ACL", "LOG"], password=self.admin)
        self.assertEqual(refused, [])

    async def make_store(self, max_size: int = 4) -> Any:
        client = await redis_client(self, self.redis, username="vinom-lobby",
                                    password=self.password)  # fmt: skip
        store = RedisPartyStore(
            client, TCP4ClientEndpoint(reactor, "127.0.0.1", self.redis.port), reactor,
            max_size=max_size, password=self.password, username="vinom-lobby",
            settings=RedisPartySettings(refresh_every=0.1, check_every=0.1),
            lobby_id="l-here", lease_prefix="vinom:mm", lease_settle=0.3,
        )  # fmt: skip
        await store.start()
        self.addCleanup(store.stop)
        return store

    async def test_the_timers_take_out_lapsed_members_and_those_of_dead_lobbies(self) -> None:
        party = await self.store.create(member("a"))
        for p in "bc":
            await self.store.join(party.code, member(p))
        admin = ("127.0.0.1", self.redis.port)
        # b's lobby stopped refreshing b's key, which lapsed: the refresh takes b out.
        ask(admin, ["DEL", "vinom:party:of:b"], password=self.admin)
        await until(lambda: ("left", "b") in self.events(), "b taken out")
        # c is held by a lobby with no lease (it died): the check takes c out.
        lobbies = json.dumps({"a": "l-here", "c": "l-gone"})
        ask(admin, ["HSET", f"vinom:party:{party.party_id}", "lobbies", lobbies],
            password=self.admin)  # fmt: skip
        await until(lambda: ("left", "c") in self.events(), "c taken out")
        self.assertEqual((await self.store.party_of("a")).player_ids, ("a",))
