"""Lag compensation from where the players stand: docs/games.md's `shooter`, taken
from the doc as written and installed as a plugin game, on a real `twistd -n
vinom` process, played by two `GameSession`s through UDP proxies on loopback
that delay every datagram 75 ms ± 5 ms each way (a 150 ms round trip).

Both players walk right at the game's SPEED; the shooter draws the walker
interpolated (`rendered()`) and fires where it is drawn, led by its walk while
the bullet flies. The host judges each bullet in `tick_at`, in the shooter's past
at the moment its input says was drawn, between ticks: every shot lands within a
hair of the walker as the shooter saw it, where the present walker, seven or
more units on, would have been missed.
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.doc_examples import fenced
from tests.support.servers import start_twistd
from tests.support.waiting import until
from tests.test_netcode_play import DelayLink
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession
from vinom.client.lobby import LobbyAddress
from vinom.client.netcode import Interpolation
from vinom.client.udp import GameClientProtocol
from vinom.protocol.tokens import PublicToken

SOURCE = fenced("games.md", "python", "class Shooter(")
PLUGIN = SOURCE + "\n\nshooter = Shooter()\n"
EXAMPLE: dict[str, Any] = {}
exec(SOURCE, EXAMPLE)  # the doc's constants, as a client of the game reads them
SPEED, BULLET, LANE = EXAMPLE["SPEED"], EXAMPLE["BULLET"], EXAMPLE["LANE"]
# Each way; a hit within this of the walker where the shooter saw it.
DELAY, JITTER = 0.075, 0.005
HIT = 0.25


async def join(lobby: LobbyAddress, name: str, seed: int) -> GameSession:
    """A player of the shooter through a DelayLink, interpolating the walkers."""
    found = await LobbyPlayer(reactor, lobby, name).find_match("shooter")
    host = found.token["hosts"][0]
    link = DelayLink((host["host"], host["port"]), seed, DELAY, JITTER, 0.0)
    proxy = reactor.listenUDP(0, link, interface="127.0.0.1")
    session = GameSession()
    protocol = GameClientProtocol(
        reactor, PublicToken.from_json(found.token),
        addresses=[("127.0.0.1", proxy.getHost().port)], on_message=session.message_received,
    )  # fmt: skip
    reactor.listenUDP(0, protocol, interface="127.0.0.1")
    session.protocol = await protocol.connected
    await until(lambda: session.welcome is not None)
    session.interpolate(Interpolation(fields=("xs.*",)))

    async def stop() -> None:
        await protocol.disconnect()
        for call in link.pending:
            call.cancel()
        await proxy.stopListening()

    session.stop = stop  # type: ignore[attr-defined]
    return session


class ShooterOverA150msRoundTripTests(TestCase):
    timeout = 120

    async def test_a_bullet_hits_the_walker_where_the_shooter_saw_it(self) -> None:
        server = await start_twistd(self, {"twisted/plugins/shooter_games.py": PLUGIN},
                                    "--games", "shooter")  # fmt: skip
        sessions = await gatherResults(
            [Deferred.fromCoroutine(join(server.lobby, f"p{n}", n)) for n in range(2)]
        )
        for session in sessions:
            self.addCleanup(lambda s=session: Deferred.fromCoroutine(s.stop()))
        shooter = sessions[0]
        target = 1 - shooter.welcome["seat"]  # type: ignore[index]

        def settled() -> bool:
            # Playing, the round trip measured and a second of snaps drawn.
            rtt = shooter.protocol.round_trip_time  # type: ignore[union-attr]
            return shooter.phase == "playing" and rtt is not None and \
                shooter.tick is not None and shooter.tick >= 20 and shooter.rendered() is not None

        await until(settled, "the shooter playing, its clock synced", timeout=30)
        rtt = shooter.protocol.round_trip_time  # type: ignore[union-attr]
        self.assertGreater(rtt, 0.14)
        self.assertLess(rtt, 0.3)
        seat = shooter.welcome["seat"]  # type: ignore[index]
        mine: list[list[float]] = []

        def landed(count: int) -> bool:
            view = shooter.view or {}
            mine[:] = [shot for shot in view.get("shots", ()) if shot[0] == seat]
            return len(mine) >= count

        for n in range(1, 7):
            drawn = shooter.rendered()["xs"][target]  # the frame the key is pressed on
            shooter.send_input({"fire": drawn + SPEED * LANE / BULLET})
            await until(lambda n=n: landed(n), lambda n=n: f"shot {n} judged: {mine}",
                        timeout=10)  # fmt: skip
        self.assertEqual(len(mine), 6)
        for _, seen, present in mine:
            # Where the shooter saw the walker: a hit, judged between ticks (a whole
            # tick is SPEED / 20 = 3 units of walk).
            self.assertLess(seen, HIT, mine)
            # In the present the walker is further on: without compensation, a miss.
            self.assertGreater(present, 1.0, mine)
