"""Lag compensation from where the players stand: docs/games.md's `shooter`, taken
from the doc as written and installed as a plugin game, on a real `twistd -n
vinom` process, played by two `GameSession`s through UDP proxies on loopback
that delay every datagram 75 ms ± 5 ms each way (a 150 ms round trip).

Both players walk right at the game's SPEED; the shooter draws the walker
interpolated (`rendered()`) and fires where it is drawn, led by its walk while
the bullet flies. The host judges each bullet in `tick_at`, in the shooter's past
at the moment its input says was drawn, between ticks: every shot lands within a
hair of the walker as the shooter saw it, where the present walker, seven or
more units on, would have been missed. Each shot is drawn at the key press
(predicted events) and confirmed by a snap; one the host refuses (fired while
the last flies) is retracted.
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import math
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
from vinom.client.netcode import EventsSettled, Interpolation
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

        # Each shot drawn at the key press, before the host's word (predicted events).
        shots = shooter.predict_events(
            lambda view: [b[0] for b in view["bullets"]] + [s[3] for s in view["shots"]]
        )
        settled: list[EventsSettled] = []
        shooter.on_events = settled.append
        for n in range(1, 7):
            drawn = shooter.rendered()["xs"][target]  # the frame the key is pressed on
            tick = shooter.send_input({"fire": drawn + SPEED * LANE / BULLET, "id": n})
            shots.predict(n, tick, drawn)
            self.assertIn((n, drawn), shots.shown())  # on that frame
            await until(lambda n=n: landed(n), lambda n=n: f"shot {n} judged: {mine}",
                        timeout=10)  # fmt: skip
        self.assertEqual(len(mine), 6)
        self.assertEqual([s[3] for s in mine], [1, 2, 3, 4, 5, 6])
        self.assertEqual((shots.confirmed, shots.retracted, shots.shown()), (6, 0, []))
        # A shot fired while the last one flies is refused (`reloading`): drawn at once,
        # then retracted, its input's tick 8 ticks gone with no snap naming it.
        first = shooter.send_input({"fire": 0.0, "id": 7})
        shots.predict(7, first, 0.0)
        await until(lambda: math.floor(shooter.prediction_tick or 0) + 1 > first,
                    "the next tick")  # fmt: skip
        refused = shooter.send_input({"fire": 0.0, "id": 8})
        shots.predict(8, refused, 0.0)
        self.assertEqual([i for i, _ in shots.shown()], [7, 8])
        await until(lambda: not shots.pending, lambda: f"shots settled: {shots.pending}")
        self.assertIn((7, 0.0), [e for s in settled for e in s.confirmed])
        self.assertEqual([e for s in settled for e in s.retracted], [(8, 0.0)])
        for _, seen, present, _ in mine:
            # Where the shooter saw the walker: a hit, judged between ticks (a whole
            # tick is SPEED / 20 = 3 units of walk).
            self.assertLess(seen, HIT, mine)
            # In the present the walker is further on: without compensation, a miss.
            self.assertGreater(present, 1.0, mine)
