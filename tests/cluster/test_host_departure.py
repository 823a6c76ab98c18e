"""What a game host that departs (killed) leaves in Redis, with `twistd vinom` processes
on a real Redis (tests/cluster/test_scaling.py's `ClusterTestCase`): its consumer of
the placement group goes once nothing is pending for it, so the group does not keep
one consumer per host process ever started (docs/scaling.md, "Take").
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

from typing import Any

from twisted.internet import reactor

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.support.waiting import until
from vinom.client.bots import run_bots

REQUESTS = "vinom:place:default"


def consumers(reply: Any) -> set[str]:
    """The names in an `XINFO CONSUMERS` reply."""
    names = set()
    for consumer in reply:
        fields = dict(zip(consumer[::2], consumer[1::2], strict=True))
        names.add(str(fields["name"]))
    return names


class DepartedConsumerTests(ClusterTestCase):
    async def test_a_killed_host_s_consumer_leaves_the_placement_group(self) -> None:
        # One game port each: the two matches played at once are one on each host, so
        # each host read a request (Redis makes a consumer as it delivers it one).
        doomed = await self.start("host", ports=1)
        survivor = await self.start("host", ports=1)
        lobby = self.lobby_address(await self.start("lobby"))
        doomed_id, survivor_id = self.host_id(doomed), self.host_id(survivor)
        reports = await run_bots(reactor, lobby, GAME, 4, seed=1)
        self.check_matched_once(reports, 4)

        async def group() -> set[str]:
            return consumers(await self.redis_call("XINFO", "CONSUMERS", REQUESTS, "hosts"))

        self.assertEqual(await group(), {doomed_id, survivor_id})
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended

        async def only_the_survivor() -> bool:
            return await group() == {survivor_id}

        # Its registration lapses (3 s), the watch has lasted 3.5 s, and the survivor's
        # next claim pass (every 1.5 s) finds it holding nothing.
        await until(only_the_survivor, "the dead host's consumer gone", timeout=20, every=0.2)
