"""A WebTransport spectator of a quiet match (vinom.hosting.webtransport,
`_Connection.keep_alive`), against a whole server with aioquic's client on real
UDP sockets (tests/support/webtransport_client.py).

A spectator's page sends nothing, and in a quiet turn-based match the server
sends nothing either; QUIC's idle timeout (10 s) used to close such a
connection 10 s after the last state. The server now pings a browser it has
not heard from for a third of the idle timeout, while it has a session."""

# slow: waits out QUIC's idle timeout in real time (about 22 s)

from __future__ import annotations

from attrs import evolve
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.hosting.test_webtransport_game import WebTransportTestCase, within
from tests.support.waiting import until
from tests.support.webtransport_client import WebTransportPlayer
from vinom.client.game import GameSession, connect_game
from vinom.protocol.tokens import PublicToken


class QuietSpectatorTests(WebTransportTestCase):
    """A spectator's page sends nothing, and in a quiet turn-based match the server
    sends nothing either: the server's pings keep the connection through QUIC's
    idle timeout while the page is there."""

    async def watch_a_quiet_match(
        self, idle_timeout: float | None = None
    ) -> tuple[WebTransportPlayer, GameSession, GameSession]:
        """A tictactoe match with both players seated and nobody moving, a spectator
        watching it over WebTransport (with the listener's idle timeout made
        `idle_timeout`): the spectator and the two players' sessions."""
        port = await self.start_webtransport()
        server = self.server.service("webtransport").server
        if idle_timeout is not None:
            server.config = evolve(server.config, idle_timeout=idle_timeout)
        token, found, _web, _welcome = await self.match()
        socket = await self.game_socket(token)
        udp = await connect_game(reactor, found)
        self.addCleanup(udp.disconnect)
        await until(lambda: udp.phase == "playing" and socket.session.phase == "playing",
                    "the match to play")  # fmt: skip
        watcher, _welcome = await self.web_player()
        frame = await watcher.request({"type": "spectate", "match_id": found.game_id, "id": 1})
        self.assertEqual(frame["type"], "spectating", frame)
        spectator = await self.player(port)
        spectator.send_token(PublicToken.from_json(frame["token"]))
        await within(spectator.welcomed)
        return spectator, udp, socket.session

    async def still_watching(self, spectator: WebTransportPlayer,
                             *players: GameSession) -> None:  # fmt: skip
        """The spectator's connection is open and it sees the next move."""
        self.assertIsNone(spectator.termination)
        self.assertFalse(spectator.closed.called)
        before = len(spectator.messages)
        # Whoever's turn it is takes the centre (the other's try is refused).
        for player in players:
            player.send_action({"cell": 4})
        await until(lambda: len(spectator.messages) > before, "the move shown to the spectator")

    async def test_a_spectator_of_a_quiet_match_stays_past_the_idle_timeout(self) -> None:
        spectator, *players = await self.watch_a_quiet_match()
        idle = self.server.service("webtransport").server.config.idle_timeout
        self.assertEqual(idle, 10.0)
        # Half as long again as the idle timeout that closed it, nothing to show.
        await deferLater(reactor, 1.5 * idle, lambda: None)
        await self.still_watching(spectator, *players)

    async def test_a_spectator_stays_sixty_seconds_at_a_tenth_of_the_scale(self) -> None:
        # The same, at a tenth of the scale: an idle timeout of 1 s, and 6 s (the
        # default's 60 s) with nothing to show.
        spectator, *players = await self.watch_a_quiet_match(idle_timeout=1.0)
        await deferLater(reactor, 6.0, lambda: None)
        await self.still_watching(spectator, *players)
