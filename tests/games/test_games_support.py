"""Helpers shared by the game tests: seats, scripted dice, a bots-only game loop.

(No tests here; trial loads the module and finds none.)
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vinom.games.interfaces import IGame, IllegalAction, Seat


def seats(count: int) -> list[Seat]:
    """`count` seats with lobby-style player ids."""
    return [Seat(f"p-{index:016x}", f"player {index}", index) for index in range(count)]


class ScriptedRandom(random.Random):
    """A Random whose `randint` returns scripted values (dice), then fails loudly."""

    def __init__(self, rolls: Iterable[int] = (), seed: int = 0) -> None:
        super().__init__(seed)
        self.rolls = list(rolls)

    def randint(self, a: int, b: int) -> int:
        if not self.rolls:
            raise AssertionError("the test did not script enough dice")
        value = self.rolls.pop(0)
        assert a <= value <= b
        return value


def snapshot(state: Any) -> Any:
    """A deep copy of a state, to prove later that it never changed."""
    return copy.deepcopy(state)


_PLAIN = (dict, list, str, int, float, bool, type(None))


def assert_plain(test: Any, value: Any, where: str = "view") -> None:
    """Fail `test` unless `value` holds only dict, list, str, int, float, bool, None."""
    test.assertIn(type(value), _PLAIN, f"{where} holds a {type(value).__name__}")
    if isinstance(value, dict):
        for key, item in value.items():
            test.assertIsInstance(key, str, f"{where} has a non-string key {key!r}")
            assert_plain(test, item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            assert_plain(test, item, f"{where}[{position}]")


def play_bots(
    game: IGame,
    count: int,
    seed: int,
    options: Mapping[str, Any] | None = None,
    max_actions: int = 20_000,
    on_state: Any = None,
) -> tuple[Any, int]:
    """Play a whole game of bots the way a room would; the final state and actions applied.

    Every seat joins, then each bot in turn is asked for an action on its own
    view; an illegal action from a bot is a test failure. If no bot wants to
    act, or the action budget runs out, the time limit is called.
    """
    rng = random.Random(seed)
    table = seats(count)
    state = game.create(table, options or {}, rng)
    for seat in table:
        state = game.join(state, seat).state
    bots = [game.make_bot(seat.player_id, random.Random(seed * 31 + seat.index)) for seat in table]
    applied = 0
    while not game.is_finished(state):
        acted = False
        for seat, bot in zip(table, bots, strict=True):
            action = bot.choose_action(game.view(state, seat.player_id))
            if action is None:
                continue
            try:
                state = game.apply_action(state, seat, action, rng).state
            except IllegalAction as error:
                message = f"{game.name} bot made an illegal move {action}: {error}"
                raise AssertionError(message) from error
            applied += 1
            acted = True
            if on_state is not None:
                on_state(state)
            if game.is_finished(state):
                break
        if not acted or applied >= max_actions:
            state = game.time_up(state).state
    return state, applied


def bot_states(game: IGame, table: Sequence[Seat], seed: int, steps: int) -> Any:
    """A state `steps` bot actions into a game (or the final one, if sooner)."""
    rng = random.Random(seed)
    state = game.create(table, {}, rng)
    for seat in table:
        state = game.join(state, seat).state
    bots = [game.make_bot(seat.player_id, random.Random(seed + seat.index)) for seat in table]
    for step in range(steps):
        if game.is_finished(state):
            break
        seat, bot = table[step % len(table)], bots[step % len(table)]
        action = bot.choose_action(game.view(state, seat.player_id))
        if action is not None:
            state = game.apply_action(state, seat, action, rng).state
    return state
