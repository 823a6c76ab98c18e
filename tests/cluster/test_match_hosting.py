"""The `IMatchHosting` contract, one suite run on both of its implementations: the game
hosts of this process (`GameHostingService`) and those of other processes through Redis
(`RemoteMatchHosting` in the lobby, a `HostAgent` on the host: docs/scaling.md). The
lobby asks both the same things and must see the same answers: where a match runs,
its end with the host's outcome, the counts, a running match confirmed, the wait for
every match to end."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from tests.cluster.test_remote_placement import open_redis, start_host
from tests.support.doubles import FakeUDPReactor, PlaceholderGameHostFactory
from tests.support.waiting import until
from vinom.cluster.hosts import RedisHostRegistry
from vinom.cluster.placement import RemoteMatchHosting
from vinom.hosting.interfaces import IMatchHosting
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.match import Match, MatchEnded, Ticket


def duel(match_id: str) -> Match:
    players = tuple(Ticket(f"{match_id}-p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
    return Match(match_id, "duel", players, 1.0)


class MatchHostingContract:
    """The tests, mixed into a TestCase per implementation, which says how to make the
    hosting (`make`): two ports, on hosts announcing 198.51.100.9, each match's end told
    by the returned factory."""

    assertEqual: Any
    assertFalse: Any
    assertTrue: Any

    timeout = 30

    async def make(self) -> tuple[IMatchHosting, PlaceholderGameHostFactory]:
        raise NotImplementedError

    async def test_it_provides_the_interface(self) -> None:
        hosting, _ = await self.make()
        self.assertTrue(verifyObject(IMatchHosting, hosting))

    async def test_a_match_runs_where_it_says_and_its_end_reaches_the_caller(self) -> None:
        hosting, factory = await self.make()
        ended: list[MatchEnded | None] = []
        address = await hosting.host_match(duel("m-1"), on_ended=ended.append)
        check = self.assertEqual
        check((address.host, address.port in (7400, 7401)), ("198.51.100.9", True))
        check((hosting.matches, hosting.running_games), (1, 1))
        check(await hosting.confirm_running("m-1"), True)
        outcome = MatchEnded("m-1", "finished", {"winners": ["m-1-p0"]}, None,
                             ("m-1-p0", "m-1-p1"))  # fmt: skip
        check(factory.end_match("m-1", outcome), True)
        await until(lambda: ended, "the end told")
        check(ended, [outcome])
        await hosting.when_all_ended()
        check((hosting.matches, hosting.running_games), (0, 0))

    async def test_two_matches_get_two_ports_and_every_end_is_waited_for(self) -> None:
        hosting, factory = await self.make()
        first = await hosting.host_match(duel("m-1"))
        second = await hosting.host_match(duel("m-2"))
        self.assertEqual({first.port, second.port}, {7400, 7401})
        all_ended = hosting.when_all_ended()
        factory.end_match("m-1")
        self.assertFalse(all_ended.called)
        factory.end_match("m-2")
        await until(lambda: all_ended.called, "every match ended")
        self.assertEqual(hosting.matches, 0)


class InProcessTests(MatchHostingContract, TestCase):
    async def make(self) -> tuple[IMatchHosting, PlaceholderGameHostFactory]:
        factory = PlaceholderGameHostFactory(FakeUDPReactor(), "0.0.0.0", "198.51.100.9")
        hosting = GameHostingService(PortAllocator(range(7400, 7402)), factory)
        hosting.startService()
        self.addCleanup(hosting.stopService)
        return hosting, factory


class OnRedisTests(MatchHostingContract, TestCase):
    async def make(self) -> tuple[IMatchHosting, PlaceholderGameHostFactory]:
        redis = await open_redis(self)
        factory, _ = start_host(self, redis, "h-test")
        lobby = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                   clock=reactor, lobby_id="l-test")  # fmt: skip
        lobby.startService()
        self.addCleanup(lambda: Deferred.fromCoroutine(_stopped(lobby)))
        await until(lambda: lobby.live_hosts, "the host read")
        return lobby, factory


async def _stopped(lobby: RemoteMatchHosting) -> None:
    await lobby.stopService()
