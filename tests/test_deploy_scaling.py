"""A simulated scale run of the Agones overlay's hosts (issue 39): the rendered Fleet and
FleetAutoscaler, Agones's Counter policy, vinom's placement and its hosts' states.

Nothing here needs a cluster: the parts are

- the rendered manifests' numbers: the Fleet's replicas and its Counter `matches`
  capacity, the FleetAutoscaler's `bufferSize`, `minCapacity`, `maxCapacity` and
  sync interval, the hosts' --placement (the ConfigMap vinom-hosts);
- Agones's Counter policy as its documentation states it (autoscaling.agones.dev
  FleetAutoscaler, "Counter"): keep `bufferSize` free slots over the Fleet's
  aggregate count, its aggregate capacity within [minCapacity, maxCapacity], at each
  sync; a scale-down removes only GameServers that are not Allocated, those of most
  free capacity first (the Fleet's `priorities`);
- a vinom host's Agones states (docs/kubernetes.md): Ready while idle, Allocated
  while it runs a match;
- which host takes each match first: the one of shortest `read_delay`
  (vinom.cluster.agent) among live hosts with free capacity, ties by host id.

Time is a `twisted.internet.testing.Clock`: matches arrive one a second, each lasts
ten minutes; a new GameServer is Ready 10 s after the autoscaler asks for it.
"""

# slow: runs kubectl (tests/test_deploy.py)

from __future__ import annotations

import math
from typing import Any

from attrs import define
from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.test_deploy import render
from vinom.cluster.agent import read_delay
from vinom.cluster.hosts import HostRecord, least_loaded_first

STARTUP = 10.0  # seconds from the autoscaler's ask to a Ready GameServer
MATCH_LENGTH = 600.0


@define
class GameServer:
    name: str
    capacity: int
    count: int = 0
    ready_at: float = 0.0

    @property
    def state(self) -> str:
        return "Allocated" if self.count else "Ready"


class Fleet:
    """The Fleet, its autoscaler and the hosts' placement, on a clock (module docstring)."""

    def __init__(self, documents: list[dict[str, Any]], clock: Clock) -> None:
        by = {(d["kind"], d["metadata"]["name"]): d for d in documents}
        fleet = by[("Fleet", "host")]["spec"]
        policy = by[("FleetAutoscaler", "host")]["spec"]
        assert policy["policy"]["type"] == "Counter", policy
        counter = policy["policy"]["counter"]
        self.key = counter["key"]
        self.buffer = int(counter["bufferSize"])
        self.min_capacity = counter.get("minCapacity", 0)
        self.max_capacity = counter["maxCapacity"]
        self.sync = policy["sync"]["fixedInterval"]["seconds"]
        self.capacity = fleet["template"]["spec"]["counters"][self.key]["capacity"]
        self.pack = by[("ConfigMap", "vinom-hosts")]["data"]["placement"] == "pack"
        self.clock = clock
        self.servers: list[GameServer] = []
        self.made = 0
        self.waiting = 0
        self.peak = 0
        for _ in range(fleet["replicas"]):
            self.add(ready_at=0.0)

    def add(self, ready_at: float) -> None:
        self.made += 1
        self.servers.append(GameServer(f"host-{self.made}", self.capacity, ready_at=ready_at))

    def live(self) -> list[GameServer]:
        return [s for s in self.servers if s.ready_at <= self.clock.seconds()]

    def autoscale(self) -> None:
        """Agones's Counter policy, at one sync (module docstring)."""
        count = sum(s.count for s in self.servers)
        wanted = min(max(count + self.buffer, self.min_capacity), self.max_capacity)
        replicas = math.ceil(wanted / self.capacity)
        now = self.clock.seconds()
        for _ in range(replicas - len(self.servers)):
            self.add(ready_at=now + STARTUP)
        removable = sorted((s for s in self.servers if s.state == "Ready"),
                           key=lambda s: s.capacity - s.count, reverse=True)  # fmt: skip
        for server in removable[: max(0, len(self.servers) - replicas)]:
            self.servers.remove(server)

    def place(self) -> None:
        """One match placed: taken by the host with a free slot that reads it first."""
        records = least_loaded_first(
            HostRecord(s.name, "10.0.0.1", (7400, 7409), s.capacity, s.capacity - s.count, 0.0)
            for s in self.live()
        )  # fmt: skip
        candidates = [r for r in records if r.free > 0]
        if not candidates:
            self.waiting += 1  # its request waits in the stream for a host, read again
            self.clock.callLater(1.0, self.retry)
            return
        chosen = min(candidates, key=lambda h: (read_delay(h, pack=self.pack, most=1.0), h.host_id))
        server = next(s for s in self.servers if s.name == chosen.host_id)
        server.count += 1
        self.peak = max(self.peak, len(self.servers))
        self.clock.callLater(MATCH_LENGTH, self.end, server)

    def retry(self) -> None:
        self.waiting -= 1
        self.place()

    def end(self, server: GameServer) -> None:
        server.count -= 1


class AgonesScalingTests(SynchronousTestCase):
    def run_fleet(self, matches: int) -> Fleet:
        clock = Clock()
        fleet = Fleet(render("agones"), clock)
        for second in range(int(MATCH_LENGTH) + 600):
            if second < matches:
                fleet.place()
            if second % fleet.sync == 0:
                fleet.autoscale()
            clock.advance(1)
            if second == matches + 120:
                self.busy_at_peak = sum(1 for s in fleet.servers if s.count)
                self.running_at_peak = sum(s.count for s in fleet.servers)
        return fleet

    def test_fifty_matches_on_hosts_of_ten_use_at_most_six_hosts_and_the_buffer_returns(
        self,
    ) -> None:
        fleet = self.run_fleet(50)
        # All 50 ran at once, packed on 5 hosts, with one host's worth of slots spare.
        self.assertEqual(self.running_at_peak, 50)
        self.assertEqual(self.busy_at_peak, 5)
        self.assertLessEqual(fleet.peak, 6)
        # Ended: the Fleet is back to its Ready buffer, minCapacity's worth of hosts.
        self.assertEqual([s.state for s in fleet.servers], ["Ready"] * 2)
        self.assertEqual(len(fleet.servers) * fleet.capacity, fleet.min_capacity)
