"""A game host as its own `twistd vinom host` process behind the UDP relay, placed
by a `twistd vinom lobby` on a real Redis: bots on vinom's client library finish a match
through `twistd -n vinom relay`, told only the relay's address."""

# slow: starts twistd vinom processes on Redis (tests/cluster/test_scaling.py)

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

    async def test_a_host_announcing_a_name_gets_no_match_from_a_relaying_lobby(self) -> None:
        # The host with a name has the more free ports: the lobby would pick it first.
        await self.start_relay()
        await self.start("host", "--udp-interface", "127.0.0.1", "--public-host", "localhost",
                         ports=8)  # fmt: skip
        await self.start("host", "--udp-interface", "127.0.0.1", "--public-host", "127.0.0.1",
                         ports=2)  # fmt: skip
        lobby = await self.start("lobby", "--relay", f"127.0.0.1:{self.relay_port}",
                                 "--relay-key-file", self.key_file)  # fmt: skip
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(reactor, self.lobby_address(lobby), GAME, f"n{i}",
                                            rng=random.Random(i)))
            for i in range(4)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4,
                         [r.error for r in reports])  # fmt: skip
        self.assertEqual(await self.metric("vinom_relay_routes_opened_total"), 4)
        # One line for the operator, naming the host's --public-host; no traceback.
        said = [line for line in lobby.text.splitlines() if "gets no match" in line]
        self.assertEqual(len(said), 1, lobby.text)
        self.assertIn("announces 'localhost' (its --public-host), not an IP address", said[0])
        self.assertNotIn("Traceback", lobby.text)
