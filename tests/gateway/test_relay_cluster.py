"""A game host as its own `twistd vinom --role host` process behind the UDP relay, placed
by a `--role lobby` on a real Redis: bots on vinom's client library finish a match
through `python -m vinom.server.relay`, told only the relay's address."""

from __future__ import annotations

import random

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.gateway.relay_support import RelayProcess, forwarded
from vinom.client.bots import play_bot


class RelayClusterTests(RelayProcess, ClusterTestCase):
    timeout = 120

    async def test_bots_finish_a_match_on_a_host_behind_the_relay(self) -> None:
        # The relay key: the setUp's key file serves (any 32 bytes the lobby shares).
        await self.start_relay()
        await self.start("host", "--udp-interface", "127.0.0.1", "--public-host", "127.0.0.1")
        lobby = self.lobby_address(await self.start(
            "lobby", "--relay", f"127.0.0.1:{self.relay_port}",
            "--relay-key-file", self.key_file,
        ))  # fmt: skip
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(reactor, lobby, GAME, f"r{i}",
                                            rng=random.Random(i)))
            for i in range(2)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"],
                         [r.error for r in reports])  # fmt: skip
        self.assertEqual(await self.metric("vinom_relay_routes_opened_total"), 2)
        self.assertGreater(await self.metric(forwarded("to_player")), 4)
        self.assertGreater(await self.metric(forwarded("to_host")), 4)
