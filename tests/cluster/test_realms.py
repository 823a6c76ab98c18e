"""Realms: each lobby and game host serves one (`--realm`): real `twistd vinom` processes.

Two game hosts of realms eu and us and a lobby of each on one Redis: players are
matched with their realm's players only and their matches land only on their
realm's host; a realm without a live host keeps its match waiting (its players
told waiting_for_server) rather than landing on another realm's host, and it is
placed once a host of its realm is up.
"""

# slow: starts twistd vinom processes on Redis (tests/cluster/test_scaling.py)

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from tests.cluster.test_scaling import ClusterTestCase, Process
from tests.support.waiting import until
from vinom.client.lobby import MatchFound, Queued, connect_lobby


class RealmTests(ClusterTestCase):
    async def player(self, lobby: Process, name: str,
                     told: list[Queued] | None = None) -> Deferred[MatchFound]:  # fmt: skip
        """A player says hello through `lobby` and queues; fires with their match_found."""
        address = self.lobby_address(lobby)
        client = await connect_lobby(reactor, address.host, address.port, trust=address.trust)
        self.addCleanup(client.close)
        await client.hello(name)
        return client.queue("tictactoe", on_queued=(told if told is not None else []).append)

    async def hosted(self, host: Process, match_id: str) -> None:
        await until(lambda: match_id in self.hosted_matches(host),
                    lambda: f"match {match_id} hosted:\n{host.text}", timeout=20.0)  # fmt: skip

    async def test_matches_are_formed_and_placed_within_their_realm(self) -> None:
        eu_host = await self.start("host", "--realm", "eu")
        us_host = await self.start("host", "--realm", "us")
        # Each host registers under its realm (docs/scaling.md, the host's key).
        record = json.loads(await self.redis_call("GET", f"vinom:host:{self.host_id(eu_host)}"))
        self.assertEqual(record["realm"], "eu")
        eu_lobby = await self.start("lobby", "--realm", "eu")
        us_lobby = await self.start("lobby", "--realm", "us")
        # One player of each realm waits first: with one pool for both they would be
        # matched together.
        told: dict[str, list[Queued]] = {"eu": [], "us": []}
        first_eu = await self.player(eu_lobby, "eu-1", told["eu"])
        first_us = await self.player(us_lobby, "us-1", told["us"])
        await until(lambda: told["eu"] and told["us"], "the first two queued", timeout=20.0)
        second_eu = await self.player(eu_lobby, "eu-2")
        second_us = await self.player(us_lobby, "us-2")
        eu: list[MatchFound] = list(await gatherResults([first_eu, second_eu]))
        us: list[MatchFound] = list(await gatherResults([first_us, second_us]))
        self.assertEqual(eu[0].game_id, eu[1].game_id)
        self.assertEqual(us[0].game_id, us[1].game_id)
        await self.hosted(eu_host, eu[0].game_id)
        await self.hosted(us_host, us[0].game_id)
        self.assertEqual(self.hosted_matches(eu_host), [eu[0].game_id])
        self.assertEqual(self.hosted_matches(us_host), [us[0].game_id])

    async def test_a_realm_without_a_live_host_waits_for_one_of_its_own(self) -> None:
        eu_host = await self.start("host", "--realm", "eu")
        asia_lobby = await self.start("lobby", "--realm", "asia")
        told: list[Queued] = []
        founds = [await self.player(asia_lobby, "asia-1", told),
                  await self.player(asia_lobby, "asia-2")]  # fmt: skip
        await until(lambda: any(t.status == "waiting_for_server" for t in told),
                    lambda: f"waiting_for_server in {told}", timeout=20.0)  # fmt: skip
        # The eu host has free room, and gets nothing.
        await deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(self.hosted_matches(eu_host), [])
        self.assertFalse(any(d.called for d in founds))
        asia_host = await self.start("host", "--realm", "asia")
        found: list[MatchFound] = list(await gatherResults(founds))
        self.assertEqual(found[0].game_id, found[1].game_id)
        await self.hosted(asia_host, found[0].game_id)
        self.assertEqual(self.hosted_matches(eu_host), [])
