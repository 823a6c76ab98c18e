"""`GameRules` and `GameCatalogue` (vinom.games.rules): one record of a game's facts,
read once from the game, and the rules of a server's games by name."""

from __future__ import annotations

import attrs
from twisted.trial.unittest import SynchronousTestCase

from tests.games.test_games_registry import WindowedGame
from vinom.errors import UnknownGame
from vinom.games.duel import DuelGame
from vinom.games.maze import MazeGame
from vinom.games.owedrahn import OweDrahnGame
from vinom.games.registry import GameRegistry
from vinom.games.rules import (
    DEFAULT_ACTION_RATE,
    GameCatalogue,
    GameRules,
    RatingWindow,
    rules_of,
)


class Pairs(DuelGame):
    """Two teams of two."""

    name = "pairs"
    max_players = 6
    match_size = 4
    team_size = 2


class Shooter(DuelGame):
    """A real-time game that sends fewer states than it ticks and keeps a short history."""

    name = "shooter"
    tick_rate = 30.0
    snapshot_rate = 10.0
    history_ticks = 5
    display_name = "Space Shooter"
    record_matches = False
    offered_by_default = False


class RulesOfAGameTests(SynchronousTestCase):
    def test_a_game_that_declares_nothing_optional_gets_the_defaults(self) -> None:
        class Plain:
            """Only IGame's attributes, none of the optional ones."""

            name, description, version = "dots_and-boxes", "Dots", "1"
            min_players, max_players, match_size = 2, 4, 3
            tick_rate, time_limit, countdown = 0, 60, 3

        rules = GameRules.of(Plain())
        self.assertEqual(
            (rules.name, rules.title, rules.match_size, rules.player_range, rules.team_size),
            ("dots_and-boxes", "Dots and boxes", 3, (2, 4), None),
        )
        self.assertEqual((rules.description, rules.version, rules.time_limit, rules.countdown),
                         ("Dots", "1", 60.0, 3.0))  # fmt: skip
        self.assertEqual((rules.rating_window, rules.action_rate, rules.shared_view),
                         (None, DEFAULT_ACTION_RATE, False))  # fmt: skip
        self.assertEqual((rules.records_matches, rules.offered_by_default), (True, True))

    def test_what_a_game_declares_is_read(self) -> None:
        rules = GameRules.of(Shooter())
        self.assertEqual(rules.title, "Space Shooter")
        self.assertEqual((rules.tick_rate, rules.snapshot_rate, rules.history_ticks),
                         (30.0, 10.0, 5))  # fmt: skip
        self.assertEqual((rules.records_matches, rules.offered_by_default), (False, False))
        self.assertEqual(GameRules.of(Pairs()).team_size, 2)
        self.assertEqual(GameRules.of(WindowedGame()).rating_window, RatingWindow(30, 3, 300))
        self.assertEqual(GameRules.of(OweDrahnGame()).title, "Owe Drahn")

    def test_a_ticking_game_sends_a_state_per_tick_and_keeps_a_second_of_them(self) -> None:
        class Ticking(DuelGame):
            name = "ticking"
            tick_rate = 7.5

        rules = GameRules.of(Ticking())
        self.assertEqual((rules.snapshot_rate, rules.history_ticks), (7.5, 8))
        untimed = GameRules.of(DuelGame())
        self.assertEqual((untimed.tick_rate, untimed.snapshot_rate, untimed.history_ticks),
                         (0.0, 0.0, 0))  # fmt: skip

    def test_rules_by_hand_need_a_name_and_a_match_size(self) -> None:
        rules = GameRules("nim", 3)
        self.assertEqual((rules.title, rules.player_range, rules.team_size), ("Nim", (3, 3), None))
        self.assertEqual(GameRules("tic_tac-toe", 2).title, "Tic tac toe")

    def test_sizes_and_teams_that_do_not_fit_are_refused(self) -> None:
        for bad in (
            lambda: GameRules("x", 0),
            lambda: GameRules("x", 4, min_players=5, max_players=6),
            lambda: GameRules("x", 4, max_players=3),
            lambda: GameRules("x", 4, team_size=3),
            lambda: GameRules("x", 4, team_size=0),
            lambda: attrs.evolve(GameRules.of(Pairs()), match_size=5),
        ):
            self.assertRaises(ValueError, bad)


class CountedReads(DuelGame):
    """A game that counts how often its tick rate is read."""

    name = "counted"

    def __init__(self) -> None:
        self.reads = 0

    @property
    def tick_rate(self) -> float:  # type: ignore[override]
        self.reads += 1
        return 0.0


class RulesOfTests(SynchronousTestCase):
    """`rules_of`: a game object's rules, read once per object (rooms and hosts ask per match)."""

    def test_a_game_is_read_once_however_many_rooms_ask(self) -> None:
        game = CountedReads()
        first = rules_of(game)
        self.assertEqual(first, GameRules.of(CountedReads()))
        reads = game.reads
        for _ in range(3):
            self.assertIs(rules_of(game), first)
        self.assertEqual(game.reads, reads)

    def test_each_game_object_has_its_own_and_a_gone_game_takes_its_rules_along(self) -> None:
        self.assertEqual(rules_of(Shooter()).tick_rate, 30.0)  # gone once read
        self.assertEqual(rules_of(DuelGame()).tick_rate, 0.0)  # may take the same id
        self.assertEqual(rules_of(Shooter()).title, "Space Shooter")

    def test_a_game_that_cannot_be_weakly_referenced_is_read_each_time(self) -> None:
        class Slotted:
            __slots__ = ()
            name = "slotted"
            min_players = max_players = match_size = 2

        game = Slotted()
        self.assertEqual(rules_of(game), rules_of(game))
        self.assertEqual(rules_of(game).match_size, 2)


class CatalogueTests(SynchronousTestCase):
    def test_titles_and_match_sizes_by_name(self) -> None:
        catalogue = GameRegistry([Shooter(), Pairs()]).rules()
        self.assertEqual(catalogue.titles(), {"pairs": "Duel", "shooter": "Space Shooter"})
        self.assertEqual(catalogue.match_sizes(), {"pairs": 4, "shooter": 2})

    def test_the_registry_builds_the_rules_once(self) -> None:
        registry = GameRegistry([MazeGame(), Pairs(), DuelGame()])
        self.assertIs(registry.rules(), registry.rules())
        self.assertEqual(list(registry.rules()), ["duel", "maze", "pairs"])
        self.assertEqual(registry.rules()["pairs"], GameRules.of(Pairs()))
        self.assertEqual(registry.offered(["maze"]).rules().match_sizes(), {"maze": 2})

    def test_a_catalogue_is_a_read_only_mapping_by_name(self) -> None:
        games = GameCatalogue([GameRules("trio", 3), GameRules("duel", 2)])
        self.assertEqual(list(games), ["duel", "trio"])
        self.assertEqual(games.match_sizes(), {"duel": 2, "trio": 3})
        self.assertEqual((len(games), games.largest_match), (2, 3))
        self.assertIn("duel", games)
        self.assertIsNone(games.get("chess"))
        missing = self.assertRaises(UnknownGame, lambda: games["chess"])
        self.assertIsInstance(missing, KeyError)
        self.assertEqual(GameCatalogue([]).largest_match, 0)
        # A value: equal when the rules are, usable as a key.
        self.assertEqual(games, GameCatalogue.sized({"duel": 2, "trio": 3}))
        self.assertEqual(hash(games), hash(GameCatalogue.sized({"trio": 3, "duel": 2})))
        self.assertRaises(ValueError, GameCatalogue, [GameRules("duel", 2), GameRules("duel", 3)])

    def test_sized_takes_teams_and_windows(self) -> None:
        window = RatingWindow(10, 1)
        games = GameCatalogue.sized({"duo": 4, "solo": 1}, team_sizes={"duo": 2},
                                    windows={"solo": window})  # fmt: skip
        self.assertEqual((games["duo"].team_size, games["duo"].rating_window), (2, None))
        self.assertEqual((games["solo"].team_size, games["solo"].rating_window), (None, window))

    def test_an_operators_overrides_replace_the_games_own(self) -> None:
        games = GameRegistry([WindowedGame(), Pairs()]).rules()
        window = RatingWindow(5, 1)
        changed = games.overridden(match_sizes={"pairs": 6}, windows={"windowed": window})
        self.assertEqual(changed["pairs"].match_size, 6)
        self.assertEqual(changed["pairs"].team_size, 2)
        self.assertEqual(changed["windowed"].rating_window, window)
        # Nothing else moves; the catalogue it came from is unchanged.
        self.assertEqual(changed["windowed"].match_size, 2)
        self.assertEqual(games["pairs"].match_size, 4)
        self.assertEqual(games.overridden(), games)
        self.assertRaises(UnknownGame, games.overridden, match_sizes={"chess": 2})
        self.assertRaises(UnknownGame, games.overridden, windows={"chess": window})
        # Whole teams still: a size that splits a team is refused.
        self.assertRaises(ValueError, games.overridden, match_sizes={"pairs": 5})
