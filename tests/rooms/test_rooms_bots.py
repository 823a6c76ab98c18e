"""Bot seats: the game's own bot plays a seat on the game host (a room owner's `add_bot`).

No sockets: rooms run through the seat router on a Timeline, as in
tests/rooms/test_rooms_games.py; people are sessions fed actions, bot seats act on
their own after `RoomConfig.bot_think_time`.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_fixtures import Timeline
from tests.rooms.test_rooms_games import ViewKeeper, make_router
from vinom.games.arena import ArenaGame
from vinom.games.interfaces import IGame
from vinom.games.registry import GameRegistry
from vinom.match import Match, Ticket
from vinom.protocol.events import RELIABLE, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.rooms.client_messages import encode_action
from vinom.rooms.messages import Phase
from vinom.rooms.room import Room, RoomConfig

REGISTRY = GameRegistry.from_plugins()


def short(game: IGame) -> IGame:
    """`game`, but the arena (whose bots play out its hour) as a match of 30 seconds."""
    if not isinstance(game, ArenaGame):
        return game
    arena = ArenaGame(game.max_players)
    arena.time_limit = 30.0
    return arena


def match_of(game: IGame, seats: list[tuple[str, bool]]) -> Match:
    return Match(
        match_id="m-1",
        game=game.name,
        players=tuple(Ticket(p, p.upper(), game.name, None, 0.0, bot=bot) for p, bot in seats),
        formed_at=0.0,
    )


class BotSeatTests(SynchronousTestCase):
    def room(
        self, game: IGame, seats: list[tuple[str, bool]], think: float = 0.5
    ) -> tuple[Room, ViewKeeper, Timeline, object]:
        time = Timeline()
        keeper = ViewKeeper()
        router = make_router(game, keeper, time)
        # duel counts until a target (else until its hour is up).
        options = {"target": 20} if game.name == "duel" else {}
        config = RoomConfig(bot_think_time=think, options=options)
        room = router.add_match(match_of(game, seats), time.now, config, random.Random(3))
        return room, keeper, time, router

    def test_every_game_is_played_to_its_result_by_bot_seats_alone(self) -> None:
        for name in ("tictactoe", "dice", "owedrahn", "maze", "duel", "arena"):
            with self.subTest(game=name):
                game = short(REGISTRY.get(name))
                seats = [(f"bot-{n}", True) for n in range(game.min_players)]
                room, _keeper, time, _router = self.room(game, seats, think=0.05)
                self.assertIs(room.phase, Phase.COUNTDOWN if game.countdown else Phase.PLAYING)
                for _ in range(20000):
                    if room.ended:
                        break
                    time.advance(0.05)
                self.assertIs(room.phase, Phase.FINISHED, name)
                self.assertEqual(room.game_errors, 0)
                assert room.ending.result is not None
                self.assertIn("winners", room.ending.result)
                # Nobody connected: the bots are not "joined" players of the match.
                self.assertEqual(room.joined_players(), ())

    def test_a_person_plays_against_a_bot_that_thinks_before_it_moves(self) -> None:
        game = REGISTRY.get("tictactoe")
        room, keeper, time, router = self.room(game, [("p-person", False), ("bot-1", True)])
        # The match waits for the person only.
        self.assertIs(room.phase, Phase.WAITING)
        router.session_connected(  # type: ignore[attr-defined]
            SessionConnected(1, "p-person", "m-1", ("127.0.0.1", 1001)), time.now
        )
        self.assertIs(room.phase, Phase.PLAYING)
        person = game.make_bot("p-person", random.Random(1))
        action_id = 0
        while not room.ended and time.now < 600:
            version = room.version
            action = person.choose_action(keeper.views[1][1])
            if action is not None and room.phase is Phase.PLAYING:
                action_id += 1
                router.message_received(  # type: ignore[attr-defined]
                    1, RELIABLE, encode_action(action, action_id), time.now
                )
                if room.ended:
                    break
                if room.version > version:
                    moved_at = time.now
                    # The bot answers after its think time, not before.
                    time.advance(0.49)
                    self.assertEqual(keeper.views[1][0], room.version)
                    answered = room.version
                    time.advance(0.02)
                    # After a round the bot (second seat) waits for the person's answer.
                    if not room.ended and not keeper.views[1][1]["round_over"]:
                        self.assertGreater(room.version, answered)
                        self.assertGreaterEqual(time.now - moved_at, 0.5)
                    continue
            time.advance(0.05)
        self.assertIs(room.phase, Phase.FINISHED)
        self.assertEqual(keeper.phases[1][-1], "finished")
        self.assertEqual(room.joined_players(), ("p-person",))

    def test_nobody_can_take_a_bot_seat(self) -> None:
        game = REGISTRY.get("tictactoe")
        room, _keeper, time, router = self.room(game, [("p-person", False), ("bot-1", True)])
        self.assertIs(room.admission("bot-1"), Admission.REFUSE)
        router.session_connected(  # type: ignore[attr-defined]
            SessionConnected(7, "bot-1", "m-1", ("127.0.0.1", 1007)), time.now
        )
        self.assertIs(room.phase, Phase.WAITING)
        self.assertIsNone(room.session_of("bot-1"))

    def test_bots_alone_do_not_keep_a_room_the_people_left(self) -> None:
        game = REGISTRY.get("dice")
        room, _keeper, time, router = self.room(game, [("p-person", False), ("bot-1", True)])
        router.session_connected(  # type: ignore[attr-defined]
            SessionConnected(1, "p-person", "m-1", ("127.0.0.1", 1001)), time.now
        )
        self.assertIs(room.phase, Phase.PLAYING)
        room.player_left("p-person", time.now)
        if not room.ended:
            time.advance(1.0)
        self.assertTrue(room.ended)


class MatchOverThePipeTests(SynchronousTestCase):
    def test_a_bot_seat_survives_the_trip_to_a_worker(self) -> None:
        from vinom.hosting.workers.commands import JSON
        from vinom.match import match_from_json, match_to_json

        match = match_of(REGISTRY.get("tictactoe"), [("p-person", False), ("bot-1", True)])
        wire = JSON()
        self.assertEqual(match_from_json(wire.fromString(wire.toString(match_to_json(match)))),
                         match)
