"""The client-side netcode of the Python client library on real sockets: the arena
(vinom/games/arena.py, installed as a plugin game) on a real `twistd -n vinom`
process, two `GameSession`s playing it through a UDP proxy on loopback that
delays every datagram 100 ms ± 20 ms each way and loses 5% of them.

Each session predicts its own dot with the arena's rules (`ArenaGame.step`,
`ArenaGame.own`) and interpolates the views; the player changes velocity now
and then for 3 s, then stands still. Measured: after 2 s the clock's estimate
of the server's tick at each snap is within one tick of the tick the server
was at (its schedule: tests/support/clock_truth.py), at every snap but those
while it follows a host that dropped ticks in a stall; once the inputs
are all acknowledged the predicted own position is the server's (to the view's
0.01); the interpolated view is drawn.
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import curses
import random
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase

from tests.client.test_tui import FakeScreen
from tests.support.clock_truth import schedule_errors
from tests.support.servers import start_twistd
from tests.support.waiting import until
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession
from vinom.client.lobby import LobbyAddress
from vinom.client.netcode import Interpolation
from vinom.client.tui import TerminalApp
from vinom.client.udp import GameClientProtocol
from vinom.games.arena import ArenaGame
from vinom.protocol.events import UNRELIABLE
from vinom.protocol.tokens import PublicToken
from vinom.protocol.wire import PAYLOAD, SHORT_PAYLOAD, SLIM_PAYLOAD
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import SNAP_MARKER

GAME = ArenaGame(2)
DELAY, JITTER, LOSS = 0.1, 0.02, 0.05
RATE = 20.0


class DelayLink(DatagramProtocol):
    """A UDP proxy between one client and the host: each datagram waits `delay` ±
    `jitter` (DELAY ± JITTER), a share `loss` (LOSS) of them are dropped (its own
    seeded generator)."""

    def __init__(
        self, host: tuple[str, int], seed: int,
        delay: float = DELAY, jitter: float = JITTER, loss: float = LOSS,
    ) -> None:  # fmt: skip
        self.host = host
        self.delay, self.jitter, self.loss = delay, jitter, loss
        self.rng = random.Random(seed)
        self.client: Any = None
        self.dropped = 0
        # When each datagram written to the client came from the host, by its bytes.
        self.came: dict[bytes, float] = {}
        self.current = 0.0
        self.pending: set[Any] = set()
        # The packet types each way, in order (docs/protocol.md §5): to the host, to the client.
        self.kinds: tuple[list[int], list[int]] = ([], [])

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        to = self.client if addr == self.host else self.host
        if addr != self.host:
            self.client = addr
        if to is None:
            return
        self.kinds[addr == self.host].append(data[0])
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        delay = self.delay + self.rng.uniform(-self.jitter, self.jitter)
        came = reactor.seconds()
        call = reactor.callLater(delay, lambda: self.write(data, to, came, call))
        self.pending.add(call)

    def write(self, data: bytes, to: Any, came: float, call: Any) -> None:
        self.pending.discard(call)
        if to != self.host:
            self.came[data] = came
        self.transport.write(data, to)


class Player:
    def __init__(self, session: GameSession, link: DelayLink, seed: int) -> None:
        self.session = session
        self.link = link
        self.rng = random.Random(seed)
        self.steering = True
        # (when, the clock's estimate of the server's tick, the snap's tick, when
        # that snap came to the proxy from the host), at each snap after 2 s.
        self.samples: list[tuple[float, float, int, float]] = []
        self.started: float | None = None
        # How the snaps came, in order: their channel and first byte (c1, §14).
        self.snap_forms: list[tuple[int, int]] = []


async def play(lobby: LobbyAddress, name: str, seed: int) -> Player:
    found = await LobbyPlayer(reactor, lobby, name).find_match("arena")
    host = found.token["hosts"][0]
    link = DelayLink((host["host"], host["port"]), seed)
    port = reactor.listenUDP(0, link, interface="127.0.0.1")
    session = GameSession()
    player = Player(session, link, seed)

    def on_message(channel: int, data: bytes) -> None:
        held = session.tick
        session.message_received(channel, data)
        decoded = decode_server_message(data)
        if decoded is not None and decoded["t"] == "snap":
            player.snap_forms.append((channel, data[0]))
        if decoded is None or decoded["t"] != "snap" or session.tick == held:
            return
        now = reactor.seconds()
        if player.started is None:
            player.started = now
        if now - player.started < 2.0 or session.tick is None:
            return
        estimate = session.server_tick_now
        assert estimate is not None
        player.samples.append((now, estimate, session.tick, link.current))

    def on_state(message: dict[str, Any]) -> None:
        if message["p"] == "playing" and player.steering and player.rng.random() < 0.3:
            move = [round(player.rng.uniform(-80, 80), 1), round(player.rng.uniform(-80, 80), 1)]
            session.send_input({"move": move, "n": 1})

    session.on_state = on_state
    protocol = GameClientProtocol(
        reactor,
        PublicToken.from_json(found.token),
        addresses=[("127.0.0.1", port.getHost().port)],
        on_message=on_message,
    )
    received = protocol.datagramReceived

    def datagram(data: bytes, addr: Any) -> None:
        # Which datagram the message handled now came in, and when it left the host.
        link.current = link.came.pop(data, link.current)
        received(data, addr)

    protocol.datagramReceived = datagram  # type: ignore[method-assign]
    reactor.listenUDP(0, protocol, interface="127.0.0.1")
    session.protocol = await protocol.connected
    await until(lambda: session.welcome is not None)
    wrap = {"x": GAME.size, "y": GAME.size}
    session.predict(GAME.step, GAME.own, smooth=("x", "y"), wrap=wrap, tolerance=0.011)
    session.interpolate(
        Interpolation(("players.*.1", "players.*.2"), {"players": "0"},
                      {"players.*.1": GAME.size, "players.*.2": GAME.size})
    )  # fmt: skip

    async def stop() -> None:
        await protocol.disconnect()
        for call in link.pending:
            call.cancel()
        await port.stopListening()

    player.stop = stop  # type: ignore[attr-defined]
    return player


class NetcodeOverALossyLinkTests(TestCase):
    timeout = 120

    async def test_clock_prediction_and_interpolation(self) -> None:
        server = await start_twistd(self, {}, "--games", "arena", "--snapshot-checksums")
        players = await gatherResults(
            [Deferred.fromCoroutine(play(server.lobby, f"p{n}", n)) for n in range(2)]
        )
        for player in players:
            self.addCleanup(lambda p=player: Deferred.fromCoroutine(p.stop()))
        # Steering until each has 40 snaps past its first 2 s (2 s at 20 a second).
        await until(lambda: all(len(player.samples) >= 40 for player in players),
                    lambda: f"40 samples each: {[len(p.samples) for p in players]}",
                    timeout=60)  # fmt: skip
        for player in players:
            player.steering = False
            player.session.send_input({"move": [0, 0], "n": 2})

        def standing(player: Player) -> bool:
            # Every input acknowledged, and the server has the player standing still.
            own = None if player.session.view is None else GAME.own(player.session.view)
            return not player.session.inputs.pending and own is not None \
                and (own["vx"], own["vy"]) == (0, 0)

        await until(lambda: all(map(standing, players)), "both players standing still",
                    timeout=30)  # fmt: skip
        for n, player in enumerate(players):
            with self.subTest(player=n):
                session = player.session
                self.assertGreater(player.link.dropped, 0)
                # The arena declares its view (vinom/games/arena.py): every snapshot
                # the session applied was a schema snapshot.
                self.assertEqual(session.snapshot_format, "schema")
                # Every snap the one form (docs/protocol.md §14), on channel 0 but
                # for those sent on channel 1 before the session's opening was
                # acknowledged (§14 `welcome`).
                forms = player.snap_forms
                self.assertEqual({form for _, form in forms}, {SNAP_MARKER})
                self.assertGreater(sum(c == UNRELIABLE for c, _ in forms), 40)
                # Slim payloads both ways (§5.10), once the client offered them:
                # long ones only until each side had one, never short ones.
                for kinds in player.link.kinds:
                    self.assertIn(SLIM_PAYLOAD, kinds)
                    self.assertNotIn(SHORT_PAYLOAD, kinds)
                    first = kinds.index(SLIM_PAYLOAD)
                    self.assertNotIn(PAYLOAD, kinds[first:])
                    self.assertGreater(len(kinds) - first, 20)
                self.assertEqual(
                    {k: n for k, n in session.snap_drops.items() if k in ("corrupt", "checksum")},
                    {},
                )
                # The clock: within one tick of the server's schedule at every snap
                # after 2 s (tests/client/test_netcode.py holds the clock to the same
                # on a simulated link).
                errors, stalled = schedule_errors(player.samples, RATE)
                self.assertGreater(len(errors), 20, (stalled, errors))
                self.assertLess(max(map(abs, errors)), 1.0, errors)
                # The prediction: where the server has the player, once the
                # correction the last snaps brought has faded.
                def at_the_server(session: GameSession = session) -> bool:
                    assert session.view is not None
                    own = GAME.own(session.view)
                    predicted = session.predicted()
                    assert own is not None and predicted is not None
                    return abs(predicted["x"] - own["x"]) < 0.02 \
                        and abs(predicted["y"] - own["y"]) < 0.02

                await until(at_the_server, lambda s=session: f"the prediction "
                            f"{s.predicted()} at the server's {GAME.own(s.view)}")  # fmt: skip
                # The interpolated view: the players, drawn.
                rendered = session.rendered()
                self.assertEqual({p[0] for p in rendered["players"]}, {0, 1})


YOU_AT = re.compile(r"you at (-?[\d.]+), (-?[\d.]+)")


class ArenaTerminalTests(TestCase):
    """`vinom play arena`'s view (vinom/client/game_views.py) in the terminal client,
    on a fake screen, against the real server, with a second player on a session."""

    timeout = 120

    async def test_an_arrow_moves_your_dot_before_the_server_answers(self) -> None:
        server = await start_twistd(self, {}, "--games", "arena")
        screen = FakeScreen(24, 80)
        app = TerminalApp(reactor, server.lobby, ArenaGame(2), "ann", screen)
        done = app.start()
        self.addCleanup(lambda: (app.quit(), done)[1])
        bob = await play(server.lobby, "bob", 7)
        self.addCleanup(lambda: Deferred.fromCoroutine(bob.stop()))  # type: ignore[attr-defined]

        def drawn() -> tuple[float, float] | None:
            app.redraw()
            found = YOU_AT.search(screen.text())
            return None if found is None else (float(found[1]), float(found[2]))

        await until(lambda: app.session is not None and app.session.phase == "playing"
                         and app.session.server_tick_now is not None and drawn() is not None)
        # The dot at rest: drawn at the same place on two reads 0.1 s apart (the
        # correction the first snaps brought has faded).
        seen: list[tuple[float, float] | None] = [None]

        def at_rest() -> bool:
            now = drawn()
            still, seen[0] = now is not None and now == seen[0], now
            return still

        await until(at_rest, lambda: f"the dot at rest (drawn at {seen[0]})", every=0.1)
        session = app.session
        assert session is not None
        before, held = drawn(), session.state
        assert before is not None
        self.assertIn("@", screen.text())
        app.handle_key(curses.KEY_RIGHT)
        after = drawn()
        # Drawn moved right at once, with no state from the server in between.
        self.assertIs(session.state, held)
        assert after is not None
        self.assertGreater((after[0] - before[0]) % GAME.size, 0.0, (before, after))
        self.assertLess((after[0] - before[0]) % GAME.size, 6.0, (before, after))
        self.assertEqual(after[1], before[1])
        # On to the right, 100 a second, as the server has it too: the snaps come
        # with the new velocity, and the dot is drawn on its way (40 units on, well
        # short of the arena's 300 wide wrap).
        def server_moving() -> object:
            own = None if session.view is None else GAME.own(session.view)
            return own is not None and (own["vx"], own["vy"]) == (100.0, 0.0)

        await until(server_moving, lambda: f"the server's own dot moving right "
                                           f"({session.view and GAME.own(session.view)})")
        await until(lambda: ((drawn() or before)[0] - before[0]) % GAME.size > 40.0,
                    lambda: f"the dot drawn 40 on from {before} (at {drawn()})")
