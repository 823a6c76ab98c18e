"""The maze game: Wilson's spanning tree, rewards, per-player versions, the end."""

from __future__ import annotations

import random
from collections import Counter, deque

from attrs import evolve
from twisted.trial.unittest import TestCase

from tests.games.test_games_support import assert_plain, play_bots, seats, snapshot
from vinom.games import maze
from vinom.games.interfaces import IllegalAction
from vinom.games.maze import DIRECTIONS, MazeGame, MazeState


def open_passages(walls: list[int], width: int, height: int) -> set[frozenset[int]]:
    """Open passages between neighbouring cells, each counted once."""
    passages = set()
    for index, cell in enumerate(walls):
        x, y = index % width, index // width
        for bit, dx, dy, _ in DIRECTIONS.values():
            if not cell & bit:
                passages.add(frozenset((index, (y + dy) * width + x + dx)))
    return passages


def reachable(walls: list[int], width: int, height: int) -> set[int]:
    """Cells reachable from the north-west corner through open walls."""
    seen = {0}
    queue = deque([0])
    while queue:
        index = queue.popleft()
        x, y = index % width, index // width
        for bit, dx, dy, _ in DIRECTIONS.values():
            after = (y + dy) * width + x + dx
            if not walls[index] & bit and after not in seen:
                seen.add(after)
                queue.append(after)
    return seen


class WilsonTests(TestCase):
    """The maze is a spanning tree of the grid, drawn uniformly."""

    def test_spanning_tree(self) -> None:
        for width, height, seed in [(3, 3, 1), (10, 10, 2), (20, 20, 3), (7, 13, 4), (20, 3, 5)]:
            walls = maze.wilson_walls(width, height, random.Random(seed))
            cells = width * height
            self.assertEqual(len(open_passages(walls, width, height)), cells - 1)
            self.assertEqual(len(reachable(walls, width, height)), cells)

    def test_walls_agree_and_border_closed(self) -> None:
        width, height = 9, 6
        walls = maze.wilson_walls(width, height, random.Random(7))
        for index, cell in enumerate(walls):
            x, y = index % width, index // width
            for bit, dx, dy, back in DIRECTIONS.values():
                nx, ny = x + dx, y + dy
                if not (0 <= nx < width and 0 <= ny < height):
                    self.assertTrue(cell & bit, f"border open at {(x, y)}")
                else:
                    other = walls[ny * width + nx]
                    self.assertEqual(bool(cell & bit), bool(other & back))

    def test_uniform_over_spanning_trees(self) -> None:
        # A 3 x 2 grid has exactly 15 spanning trees; Wilson's algorithm draws
        # each with probability 1/15 (a depth-first maze would favour long
        # corridors). 15,000 draws: about 1,000 each, sd about 31.
        rng = random.Random(11)
        counts = Counter(tuple(maze.wilson_walls(3, 2, rng)) for _ in range(15_000))
        self.assertEqual(len(counts), 15)
        for tree, count in counts.items():
            self.assertTrue(850 < count < 1150, f"{tree} drawn {count} times of 15,000")


class CreateTests(TestCase):
    """Start positions, rewards and options."""

    def test_defaults(self) -> None:
        state = MazeGame().create(seats(2), {}, random.Random(1))
        self.assertEqual((state.width, state.height), (10, 10))
        self.assertEqual(len(state.cells), 100)
        self.assertEqual(state.positions, ((0, 0), (9, 9)))
        self.assertEqual(state.scores, (0, 0))

    def test_corners_for_four(self) -> None:
        state = MazeGame().create(seats(4), {"width": 5, "height": 4}, random.Random(1))
        self.assertEqual(set(state.positions), {(0, 0), (4, 0), (0, 3), (4, 3)})

    def test_rewards_one_or_five_and_start_cells_empty(self) -> None:
        for count in (2, 3, 4):
            state = MazeGame().create(seats(count), {"width": 8, "height": 6}, random.Random(count))
            starts = {y * 8 + x for x, y in state.positions}
            for index, cell in enumerate(state.cells):
                reward = maze.cell_reward(cell)
                if index in starts:
                    self.assertEqual(reward, 0)
                else:
                    self.assertIn(reward, (1, 5))
            self.assertEqual(state.remaining, 48 - count)

    def test_fives_likelier_near_the_centre(self) -> None:
        inner: Counter[int] = Counter()
        outer: Counter[int] = Counter()
        for seed in range(30):
            state = MazeGame().create(seats(2), {"width": 20, "height": 20}, random.Random(seed))
            for index, cell in enumerate(state.cells):
                x, y = index % 20, index // 20
                ring = inner if 5 <= x < 15 and 5 <= y < 15 else outer
                ring[maze.cell_reward(cell)] += 1
        inner_share = inner[5] / (inner[1] + inner[5])
        outer_share = outer[5] / (outer[1] + outer[5])
        self.assertGreater(inner_share, outer_share + 0.1)

    def test_bad_options_and_player_counts(self) -> None:
        game = MazeGame()
        for options in ({"width": 2}, {"height": 21}, {"width": "10"}, {"width": True}):
            self.assertRaises(ValueError, game.create, seats(2), options, random.Random(1))
        self.assertRaises(ValueError, game.create, seats(1), {}, random.Random(1))
        self.assertRaises(ValueError, game.create, seats(5), {}, random.Random(1))
        game.create(seats(2), {"width": 20, "height": 3}, random.Random(1))

    def test_same_seed_same_maze(self) -> None:
        a = MazeGame().create(seats(2), {}, random.Random(5))
        b = MazeGame().create(seats(2), {}, random.Random(5))
        self.assertEqual(a, b)


def corridor(rewards: list[int], players: int = 2) -> MazeState:
    """A hand-made 3 x 3 maze: the top row is a corridor, then a snake.

    Layout (row-major indices)::

        0 - 1 - 2
                |
        3 - 4 - 5
        |
        6 - 7 - 8
    """
    n, e, s, w = maze.NORTH, maze.EAST, maze.SOUTH, maze.WEST
    walls = [
        n | s | w, n | s, n | e,
        n | w, n | s, e | s,
        s | w, n | s, n | e | s,
    ]  # fmt: skip
    table = seats(players)
    starts = maze.corners(3, 3)[:players]
    return MazeState(
        width=3,
        height=3,
        cells=tuple(
            wall | (reward << maze.REWARD_SHIFT)
            for wall, reward in zip(walls, rewards, strict=True)
        ),
        players=tuple(seat.player_id for seat in table),
        positions=starts,
        scores=(0,) * players,
        left=(False,) * players,
        remaining=sum(1 for reward in rewards if reward),
    )


class MoveTests(TestCase):
    """Moves, walls, collection, stale moves and simultaneous moves."""

    def setUp(self) -> None:
        self.game = MazeGame()
        self.rng = random.Random(0)
        self.seats = seats(2)
        # Player 0 starts at 0 (top left), player 1 at 8 (bottom right).
        self.state = corridor([0, 5, 1, 1, 1, 1, 1, 1, 0])

    def move(self, state: MazeState, who: int, direction: str) -> MazeState:
        position = list(state.positions[who])
        action = {"move": direction, "from": position}
        return self.game.apply_action(state, self.seats[who], action, self.rng).state

    def test_collect_empties_the_cell(self) -> None:
        state = self.move(self.state, 0, "E")
        self.assertEqual(state.positions[0], (1, 0))
        self.assertEqual(state.scores, (5, 0))
        self.assertEqual(maze.cell_reward(state.cells[1]), 0)
        self.assertEqual(maze.cell_walls(state.cells[1]), maze.cell_walls(self.state.cells[1]))
        self.assertEqual(state.remaining, self.state.remaining - 1)
        # Going back and forth collects nothing more.
        state = self.move(self.move(state, 0, "W"), 0, "E")
        self.assertEqual(state.scores, (5, 0))

    def test_wall_blocks(self) -> None:
        for direction in ("N", "S", "W"):
            with self.assertRaises(IllegalAction) as caught:
                self.move(self.state, 0, direction)
            self.assertEqual(caught.exception.code, "illegal_move")

    def test_stale_move_rejected_and_state_unchanged(self) -> None:
        before = snapshot(self.state)
        moved = self.move(self.state, 0, "E")
        # The same move again, made from the position the player has left.
        with self.assertRaises(IllegalAction) as caught:
            self.game.apply_action(moved, self.seats[0], {"move": "E", "from": [0, 0]}, self.rng)
        self.assertEqual(caught.exception.code, "stale")
        self.assertEqual(snapshot(self.state), before)
        self.assertEqual(moved.positions[0], (1, 0))

    def test_two_players_moving_at_once_both_succeed(self) -> None:
        # Both clients build their move from the same state; the server
        # applies them one after the other and neither is stale.
        base = self.state
        first = {"move": "E", "from": list(base.positions[0])}
        second = {"move": "W", "from": list(base.positions[1])}
        state = self.game.apply_action(base, self.seats[0], first, self.rng).state
        state = self.game.apply_action(state, self.seats[1], second, self.rng).state
        self.assertEqual(state.positions, ((1, 0), (1, 2)))
        self.assertEqual(state.scores, (5, 1))
        # And in the other order, to the same result.
        other = self.game.apply_action(base, self.seats[1], second, self.rng).state
        other = self.game.apply_action(other, self.seats[0], first, self.rng).state
        self.assertEqual(other, state)

    def test_players_share_cells(self) -> None:
        # A reward left under player 0's start keeps the game going.
        state = corridor([1, 5, 1, 1, 1, 1, 1, 1, 0])
        for direction in "EE":
            state = self.move(state, 0, direction)
        for direction in "WWNEEN":
            state = self.move(state, 1, direction)
        self.assertEqual(state.positions[0], state.positions[1])

    def test_early_end_when_all_collected(self) -> None:
        state = corridor([0, 1, 5, 0, 0, 0, 0, 0, 0])
        state = self.move(state, 0, "E")
        self.assertFalse(self.game.is_finished(state))
        state = self.move(state, 0, "E")
        self.assertTrue(self.game.is_finished(state))
        result = self.game.result(state)
        self.assertEqual(result["reason"], "all_collected")
        self.assertEqual(result["winners"], [self.seats[0].player_id])
        self.assertEqual(result["scores"], {self.seats[0].player_id: 6, self.seats[1].player_id: 0})
        with self.assertRaises(IllegalAction) as caught:
            self.move(state, 1, "W")
        self.assertEqual(caught.exception.code, "finished")

    def test_time_up_ties_all_win(self) -> None:
        state = self.move(self.state, 1, "W")  # player 1 takes a 1
        state = self.move(state, 0, "E")  # player 0 takes the 5
        state = self.move(state, 1, "W")  # player 1: 1 + 1
        leader = self.game.result(self.game.time_up(state).state)["winners"]
        self.assertEqual(leader, [self.seats[0].player_id])
        for direction in "NEE":  # player 1 catches up: 5 all
            state = self.move(state, 1, direction)
        ended = self.game.time_up(state).state
        result = self.game.result(ended)
        self.assertEqual(result["reason"], "time_up")
        self.assertEqual(sorted(result["winners"]), [s.player_id for s in self.seats])
        # A second time_up changes nothing.
        self.assertEqual(self.game.time_up(ended).state, ended)

    def test_bad_actions(self) -> None:
        before = snapshot(self.state)
        for action in (
            {},
            {"move": "E"},
            {"move": "X", "from": [0, 0]},
            {"move": "e", "from": [0, 0]},
            {"move": "E", "from": [0]},
            {"move": "E", "from": [0, 0, 0]},
            {"move": "E", "from": "0,0"},
            {"move": "E", "from": [False, False]},
            {"move": "E", "from": [0.0, 0]},
            {"move": ["E"], "from": [0, 0]},
            ["E", [0, 0]],
            "E",
            None,
        ):
            with self.assertRaises(IllegalAction) as caught:
                self.game.apply_action(self.state, self.seats[0], action, self.rng)  # type: ignore[arg-type]
            self.assertEqual(caught.exception.code, "bad_action", action)
        self.assertEqual(snapshot(self.state), before)

    def test_player_id_comes_from_the_seat(self) -> None:
        # A payload naming another player changes nothing: the seat acts.
        action = {"move": "E", "from": [0, 0], "player": self.seats[1].player_id}
        state = self.game.apply_action(self.state, self.seats[0], action, self.rng).state
        self.assertEqual(state.positions, ((1, 0), (2, 2)))


class LeaveTests(TestCase):
    """Leaving forfeits; the last player present wins."""

    def test_two_players(self) -> None:
        game, table = MazeGame(), seats(2)
        state = game.create(table, {}, random.Random(1))
        state = game.leave(state, table[0]).state
        self.assertTrue(game.is_finished(state))
        self.assertEqual(game.result(state)["winners"], [table[1].player_id])
        self.assertEqual(game.result(state)["reason"], "opponents_left")

    def test_three_players_play_on(self) -> None:
        game, table = MazeGame(), seats(3)
        state = game.create(table, {}, random.Random(1))
        state = game.leave(state, table[1]).state
        self.assertFalse(game.is_finished(state))
        self.assertEqual(game.check_join(state, table[1]), "this player left the game")
        self.assertIsNone(game.check_join(state, table[0]))
        with self.assertRaises(IllegalAction):
            game.apply_action(
                state, table[1], {"move": "S", "from": list(state.positions[1])}, random.Random()
            )
        # The leaver's score no longer counts for the win.
        state = evolve(state, scores=(1, 9, 1))
        result = game.result(game.time_up(state).state)
        self.assertEqual(sorted(result["winners"]), [table[0].player_id, table[2].player_id])


class ViewAndBotTests(TestCase):
    """The view is plain data; bots finish games."""

    def test_view(self) -> None:
        game, table = MazeGame(), seats(3)
        state = game.create(table, {"width": 4, "height": 5}, random.Random(2))
        view = game.view(state, table[0].player_id)
        assert_plain(self, view)
        self.assertEqual(view, game.view(state, None))
        self.assertEqual((view["width"], view["height"]), (4, 5))
        self.assertEqual(view["cells"], list(state.cells))
        self.assertEqual(
            view["players"][2], {"id": table[2].player_id, "pos": [3, 0], "score": 0, "left": False}
        )

    def test_bots_collect_everything(self) -> None:
        game = MazeGame()
        options = {"width": 12, "height": 8}
        for count, seed in ((2, 1), (3, 2), (4, 3)):
            start = game.create(seats(count), options, random.Random(seed))
            total = sum(maze.cell_reward(cell) for cell in start.cells)
            state, _ = play_bots(game, count, seed, options)
            self.assertEqual(game.result(state)["reason"], "all_collected")
            self.assertEqual(state.remaining, 0)
            self.assertEqual(sum(state.scores), total)
