"""Spectators (`spectate`, vinom.hosting.spectators) on a whole server, over real sockets.

Two players play tictactoe (one on the WebSocket lobby and `/game`, one on the
TLS lobby and UDP), with the game host in a worker process; spectators ask
the WebSocket lobby to `spectate` the match by its id and watch it on `/game`
(tests/support/websocket_client.py): a welcome with no seat, the game's
public view as it changes, the result, then the host closes their socket.
What they send is dropped; the match does not notice them. The delay is
pinned on a Clock in the unit tests below.
"""
# slow: starts game-host worker processes (the server's default --host-workers)

from __future__ import annotations

import itertools
import json
import random
import re
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, readBody

from tests.lobby.test_websocket_lobby import is_type
from tests.rooms.test_rooms_fixtures import Timeline
from tests.rooms.test_rooms_games import ViewKeeper, make_router
from tests.rooms.test_rooms_record import REGISTRY, bot_match
from tests.support.game_sockets import GameSocketTestCase
from tests.support.waiting import until
from tests.support.websocket_client import GameSocketPlayer
from vinom.cli import main
from vinom.client.canvas import Canvas
from vinom.client.game import connect_game
from vinom.client.lobby import connect_lobby
from vinom.client.udp import GameClientProtocol
from vinom.client.watch import WatchView, spectate
from vinom.errors import LobbyError
from vinom.games.arena import ArenaGame
from vinom.games.registry import GameRegistry
from vinom.hosting.game_stream import CLOSE_NORMAL, CLOSE_TOKEN_REFUSED
from vinom.hosting.spectators import SpectatorFeeds, SpectatorSettings
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.protocol.tokens import PublicToken
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.room import RoomConfig


class SpectatorServerTests(GameSocketTestCase):
    hosting = ("--host-workers", "1")

    async def spectator(self, match_id: str) -> tuple[dict[str, Any], GameSocketPlayer | None]:
        watcher, _welcome = await self.web_player()
        frame = await watcher.request({"type": "spectate", "match_id": match_id, "id": "s"})
        if frame["type"] != "spectating":
            return frame, None
        socket = await self.game_socket(None)
        socket.attach(PublicToken.from_json(frame["token"]))
        return frame, socket

    async def metric_shows(self, pattern: str) -> None:
        async def shown() -> bool:
            return re.search(pattern, await self.metrics()) is not None

        await until(shown, f"{pattern} on /metrics", every=0.05)

    async def test_spectators_watch_a_match_to_its_end_without_touching_it(self) -> None:
        await self.start()
        token, found, web, welcome = await self.match()
        frame, watching = await self.spectator(found.game_id)
        assert watching is not None
        self.assertEqual(frame["game"], "tictactoe")
        self.assertEqual(frame["game_id"], found.game_id)
        self.assertEqual(len(frame["players"]), 2)
        # Where a browser watches: the /game of the host, as the players were told.
        self.assertEqual(frame.get("game_url"), web.of_type("match_found")[0].get("game_url"))
        # A spectator's messages are read by nobody: an action of theirs goes nowhere.
        watching.session.send_action({"cell": 4})
        _socket, udp, finals, _drivers = await self.bots_play(token, found, welcome)
        seen = await watching.session.finished
        self.assertEqual(seen["p"], "finished")
        self.assertEqual(seen["result"], finals[0]["result"])
        # Its welcome names the players and gives the spectator no seat...
        assert watching.session.welcome is not None
        self.assertEqual(watching.session.welcome["seat"], -1)
        self.assertEqual(
            [p["id"] for p in watching.session.welcome["players"]],
            [p["id"] for p in frame["players"]],
        )
        # ...and it saw the public view: the final board the players saw.
        assert watching.session.view is not None and udp.view is not None
        self.assertEqual(watching.session.view["board"], udp.view["board"])
        # The host closes its socket once the match is over.
        closed = await watching.closed
        self.assertEqual(closed.code, CLOSE_NORMAL)
        # The worker's figures come with its heartbeats (a second apart).
        await self.metric_shows(r"(?m)^vinom_spectator_messages_total [1-9]")
        await self.metric_shows(r"(?m)^vinom_spectators 0\.0$")

    async def test_unknown_matches_hello_first_and_the_per_match_limit(self) -> None:
        await self.start("--limit", "max-spectators=1")
        _token, found, _web, _welcome = await self.match()
        frame, _ = await self.spectator("no-such-match")
        self.assertEqual((frame["type"], frame["code"]), ("error", "no_active_match"))
        port, trust = self.server.websocket_port, self.server.lobby.trust
        assert port is not None and trust is not None
        from tests.support.websocket_client import connect_websocket

        early = await connect_websocket(self, port, trust)
        refused = await early.request({"type": "spectate", "match_id": found.game_id, "id": 1})
        self.assertEqual(refused["code"], "hello_required")
        bad = await early.request({"type": "spectate", "id": 2})
        self.assertEqual(bad["code"], "missing_field")
        _frame, first = await self.spectator(found.game_id)
        assert first is not None
        await until(lambda: first.session.welcome is not None)
        _frame, second = await self.spectator(found.game_id)
        assert second is not None
        closed = await second.closed
        self.assertEqual((closed.code, closed.reason), (CLOSE_TOKEN_REFUSED, "spectators_full"))
        await self.metric_shows(r'vinom_game_sockets_refused_total\{reason="spectators_full"\} 1')
        await self.metric_shows(r"(?m)^vinom_spectators 1\.0$")
        # The dashboard's /status says it too.
        ops = await self.server.service("ops").port()
        response = await Agent(reactor).request(
            b"GET", f"http://127.0.0.1:{ops.getHost().port}/status".encode()
        )
        self.assertEqual(json.loads(await readBody(response))["spectators"], 1)


class UdpSpectatorTests(GameSocketTestCase):
    hosting = ("--host-workers", "1")

    async def test_a_spectator_over_udp_watches_to_the_end(self) -> None:
        await self.start()
        token, found, _web, welcome = await self.match()
        # The client library, as a program watching over the TLS lobby and UDP does.
        lobby = await connect_lobby(
            reactor, "127.0.0.1", self.server.lobby.port, trust=self.server.lobby.trust
        )
        await lobby.hello("watcher")
        watching = await lobby.spectate(found.game_id)
        self.assertEqual((watching.host, watching.port, watching.game_id),
                         (found.host, found.port, found.game_id))  # fmt: skip
        session = await connect_game(reactor, watching)
        protocol = session.protocol
        assert isinstance(protocol, GameClientProtocol)
        session.send_action({"cell": 0})  # read by nobody
        _socket, udp, finals, _drivers = await self.bots_play(token, found, welcome)
        seen = await session.finished
        self.assertEqual(seen["result"], finals[0]["result"])
        assert session.welcome is not None and session.view is not None
        self.assertEqual(session.welcome["seat"], -1)
        assert udp.view is not None
        self.assertEqual(session.view["board"], udp.view["board"])
        # The host closes the spectator's session after the end.
        self.assertEqual(await protocol.closed, "disconnect")

        # Over, its room lingering for its players: no fresh token, but `match_ended`
        # (the worker's report of the end marks its placement ended).
        async def ended() -> bool:
            try:
                await lobby.spectate(found.game_id)
            except LobbyError as e:
                return e.code == "match_ended"
            return False

        await until(ended, "spectate answered match_ended", timeout=2.0, every=0.1)
        await lobby.close()


class TerminalWatchTests(GameSocketTestCase):
    hosting = ("--matches", "here")

    async def test_vinom_watch_draws_the_match_to_its_result(self) -> None:
        await self.start()
        token, found, _web, welcome = await self.match()
        session = await spectate(reactor, self.server.lobby, found.game_id)
        view = WatchView(session, GameRegistry.from_plugins().get)
        _socket, udp, finals, _drivers = await self.bots_play(token, found, welcome)
        await session.finished
        canvas = Canvas(24, 80)
        view.draw(canvas)
        text = canvas.text()
        self.assertIn(f"vinom watch  Tic-tac-toe  {found.game_id}", text)
        winners = finals[0]["result"]["winners"]
        names = {p["id"]: p["name"] for p in session.welcome["players"]}  # type: ignore[index]
        expected = f"{names[winners[0]]} won" if winners else "a draw"
        self.assertIn(f"finished: {expected}", text)
        self.assertIn("watching (read-only)", text)
        self.assertNotIn("waiting for the match", text)
        assert udp.view is not None
        marks = sum(1 for c in udp.view["board"] if c)
        self.assertGreaterEqual(text.count("X") + text.count("O"), marks)
        view.handle_key(ord("q"))
        self.assertTrue(view.done)
        self.assertEqual(main(["watch"]), 2)


class PrivateRoomTests(GameSocketTestCase):
    hosting = ("--matches", "here")

    async def private_match(self, spectators: bool) -> tuple[str, str]:
        """A private tictactoe room (owner and a bot) that became a match: (code, match id)."""
        owner, _welcome = await self.web_player()
        room = await owner.request({"type": "create_room", "game": "tictactoe", "private": True,
                                    "spectators": spectators, "id": "c"})  # fmt: skip
        self.assertEqual(room["room"]["spectators"], spectators)
        owner.send({"type": "add_bot", "id": "b"})
        found = await owner.when(is_type("match_found"))
        return room["room"]["code"], found["game_id"]

    async def test_a_private_rooms_match_is_watched_by_its_code_if_its_owner_allows(
        self,
    ) -> None:
        await self.start()
        code, match_id = await self.private_match(spectators=True)
        watcher, _ = await self.web_player()
        frame = await watcher.request({"type": "spectate", "code": code.lower(), "id": 1})
        self.assertEqual((frame["type"], frame["game_id"]), ("spectating", match_id))
        socket = await self.game_socket(None)
        socket.attach(PublicToken.from_json(frame["token"]))
        await until(lambda: socket.session.welcome is not None)
        assert socket.session.welcome is not None
        self.assertEqual(socket.session.welcome["match"], match_id)
        both = await watcher.request({"type": "spectate", "code": code, "match_id": "x", "id": 2})
        self.assertEqual(both["code"], "invalid_field")

    async def test_nobody_watches_a_private_rooms_match_unless_its_owner_allows(self) -> None:
        await self.start()
        code, match_id = await self.private_match(spectators=False)
        watcher, _ = await self.web_player()
        for ask in ({"code": code}, {"match_id": match_id}, {"code": "ZZZZZZ"}):
            frame = await watcher.request({"type": "spectate", **ask, "id": 1})
            self.assertEqual(frame["code"], "no_active_match", ask)


class SpectatorFeedTests(SynchronousTestCase):
    """The feeds on a room played by bots, on a Timeline: one encoding per change for
    every spectator, `delay` seconds late, then the end and the streams closed."""

    def test_every_spectator_gets_the_same_bytes_delay_seconds_late(self) -> None:
        game = REGISTRY.get("tictactoe")
        time = Timeline()
        sent: list[tuple[int, float, bytes]] = []
        channels: list[int] = []  # of what spectator -1 was sent
        closed: list[int] = []

        class Outbox(ViewKeeper):
            def send_message(self, session_id: int, channel: int, data: bytes) -> None:
                if session_id < 0:
                    sent.append((session_id, time.now, data))
                    if session_id == -1:
                        channels.append(channel)
                else:
                    super().send_message(session_id, channel, data)

        router = make_router(game, Outbox(), time)
        router.outbox = router.outbox  # the players' messages go to the keeper
        feeds = SpectatorFeeds(SpectatorSettings(delay=2.0), router.outbox, time.timers,
                               closed.append)  # fmt: skip
        # As the game host core does: the feeds hear of each room's end at once.
        router.registry.add_end_listener(feeds.room_ended)
        room = router.add_match(bot_match(game, 2), 0.0, RoomConfig(bot_think_time=1.0),
                                random.Random(1))  # fmt: skip
        feeds.add(-1, room, time.now)
        feeds.add(-2, room, time.now)
        changes: list[tuple[float, int]] = []
        version = room.version
        while not room.ended and time.now < 60:
            time.advance(0.05)
            if room.version != version:
                version = room.version
                changes.append((time.now, version))
        time.pump([0.05] * 20)
        # A second after the end: the spectators are still owed it (the host holds).
        self.assertTrue(feeds.holding)
        self.assertEqual(closed, [])
        time.pump([0.05] * 40)
        by_session = {
            s: [(t, decode_server_message(d)) for sid, t, d in sent if sid == s] for s in (-1, -2)
        }
        self.assertEqual(
            [d for sid, _, d in sent if sid == -1], [d for sid, _, d in sent if sid == -2]
        )
        states = [(t, m) for t, m in by_session[-1] if m is not None and m.get("t") == "state"]
        self.assertGreater(len(states), 4)
        ended_at = room.ending.ended_at
        assert ended_at is not None
        for seen_at, message in states[1:]:
            changed_at = max(t for t, v in changes if v <= message["v"])
            # Seen 2 s after the change, give or take a look (0.1 s) and a step.
            self.assertGreaterEqual(seen_at, changed_at + 2.0 - 1e-9)
            self.assertLessEqual(seen_at, changed_at + 2.0 + 0.15 + 1e-9)
            self.assertIn("board", message["s"])
        # The last state and the end come as late as every change before them (the
        # final board and the result not before the audience saw the play to them).
        self.assertEqual(states[-1][1]["v"], room.version)
        [end_seen_at] = [t for t, m in by_session[-1] if m and m.get("t") == "phase"]
        self.assertGreaterEqual(end_seen_at, ended_at + 2.0 - 1e-9)
        self.assertLessEqual(end_seen_at, ended_at + 2.0 + 0.05 + 1e-9)
        ends = [m for _, m in by_session[-1] if m is not None and m.get("t") == "phase"]
        self.assertEqual(ends[-1]["p"], "finished")
        # The welcome and the match's final state and end on the reliable channel; the
        # states of the running match as a player's, latest wins (no acknowledgement).
        kinds = [m["t"] if m else None for _, m in by_session[-1]]
        self.assertEqual(kinds[0], "welcome")
        self.assertEqual(channels[0], RELIABLE)
        self.assertEqual(channels[-2:], [RELIABLE, RELIABLE])
        self.assertEqual(kinds[-2:], ["state", "phase"])
        self.assertEqual(set(channels[1:-2]), {UNRELIABLE})
        self.assertEqual(sorted(closed), [-2, -1])
        self.assertEqual(len(feeds), 0)
        self.assertFalse(feeds.holding)

    def test_a_ticking_match_is_looked_at_half_a_tick_after_its_ticks(self) -> None:
        # The spectators' sends fall between the room's ticks, never in the moment the
        # players' states of a tick go out.
        game = ArenaGame(2)
        time = Timeline()
        sends: list[float] = []

        class Outbox(ViewKeeper):
            def send_message(self, session_id: int, channel: int, data: bytes) -> None:
                message = decode_server_message(data)
                if session_id < 0 and message is not None and message["t"] == "state":
                    sends.append(time.now)

        router = make_router(game, Outbox(), time)
        feeds = SpectatorFeeds(SpectatorSettings(), router.outbox, time.timers,
                               lambda session_id: None)  # fmt: skip
        room = router.add_match(bot_match(game, 2), 0.0, RoomConfig(bot_think_time=0.05),
                                random.Random(1))  # fmt: skip
        time.advance(0.0123)  # the spectator comes between two of the room's timers
        feeds.add(-1, room, time.now)
        ticked_at: list[float] = []
        tick = room.tick_number
        for _ in range(2000):
            time.advance(0.001)
            if room.tick_number != tick:
                tick = room.tick_number
                ticked_at.append(time.now)
        interval = 1 / room.tick_rate
        self.assertGreater(len(ticked_at), 30)
        later = [t for t in sends if t > ticked_at[1]]
        self.assertGreater(len(later), 30)
        for seen_at in later:
            since_tick = seen_at - max(t for t in ticked_at if t <= seen_at)
            self.assertAlmostEqual(since_tick, interval / 2, delta=0.002)
        # Still one look per snapshot.
        gaps = {round(b - a, 3) for a, b in itertools.pairwise(later)}
        self.assertEqual(gaps, {round(1 / room.snapshot_rate, 3)})

    def test_a_spectators_states_carry_the_rooms_tick_and_time_when_looked_at(self) -> None:
        # A page interpolates a spectator's states on the server's timeline, as a
        # player's snaps: `k` and `ts` are the room's when the view was taken, however
        # late (`delay`) the state is sent.
        game = ArenaGame(2)
        time = Timeline()
        sent: list[tuple[float, Any]] = []

        class Outbox(ViewKeeper):
            def send_message(self, session_id: int, channel: int, data: bytes) -> None:
                message = decode_server_message(data)
                if session_id < 0 and message is not None and message["t"] == "state":
                    sent.append((time.now, message))

        router = make_router(game, Outbox(), time)
        feeds = SpectatorFeeds(SpectatorSettings(delay=0.5), router.outbox, time.timers,
                               lambda session_id: None)  # fmt: skip
        room = router.add_match(bot_match(game, 2), 0.0, RoomConfig(bot_think_time=0.05),
                                random.Random(1))  # fmt: skip
        feeds.add(-1, room, time.now)
        ticks = {0: room.tick_number}  # the room's tick by the ms of its clock
        for _ in range(3000):
            time.advance(0.001)
            ticks[room.server_time(time.now)] = room.tick_number
        playing = [(at, m) for at, m in sent if m["p"] == "playing"]
        self.assertGreater(len(playing), 30)
        for at, message in playing:
            # Taken half a second before it was sent, at the room's tick then.
            self.assertLessEqual(abs(message["ts"] - room.server_time(at - 0.5)), 1)
            self.assertEqual(message["k"], ticks[message["ts"]], message)
        self.assertGreater(playing[-1][1]["k"], playing[0][1]["k"])
