"""`Game`: the documented base class for writing a vinom game.

A game subclass sets its class attributes (`name`, `min_players`, ...), writes
`create` and `view`, and handles actions either by overriding `apply_action` or
by defining one `on_<verb>(state, seat, action, rng)` method per verb, in the
spirit of Colyseus's `onMessage("move", handler)`. Every other `IGame` hook has
a default (see `BuiltinGame`, whose behaviour `Game` keeps); `make_bot` is
optional. The state type is a parameter: `class TicTacToe(Game[TicTacToeState])`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from importlib.resources.abc import Traversable
from typing import Any, Generic, TypeVar

from attrs import evolve
from twisted.plugin import IPlugin
from zope.interface import implementer

from vinom.games.common import BAD_ACTION, BuiltinGame, as_mapping
from vinom.games.interfaces import IBot, IGame, IllegalAction, Outcome, Seat

S = TypeVar("S")

#: The prefix of a per-verb action handler: `on_move` handles `{"move": ...}`.
HANDLER_PREFIX = "on_"

Handler = Callable[[Any, Seat, Mapping[str, Any], random.Random], Outcome]


@implementer(IPlugin, IGame)
class Game(BuiltinGame, Generic[S]):
    """Base class of a game over states of type `S`; provides `IGame` and `IPlugin`.

    An instance in a `twisted/plugins/` module is all a plugin needs.

    Subclasses must provide `create` and `view`. The default `apply_action`
    dispatches an action map to the `on_<verb>` method of its one verb key and
    raises `IllegalAction("bad_action")` for an action naming no known verb or
    more than one.
    """

    def create(self, seats: Any, options: Mapping[str, Any], rng: random.Random) -> S:
        raise NotImplementedError(f"{type(self).__name__} must define create")

    def view(self, state: S, player_id: str | None) -> Mapping[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must define view")

    def leave(self, state: S, seat: Seat) -> Outcome:
        """A player left for good; by default nothing changes."""
        return Outcome(state)

    def idle(self, state: S, seat: Seat) -> Outcome:
        """A counted player sent no action for `idle_timeout` seconds: by default they
        forfeit, as if they had left, and a match that ends for it ends as "idle"
        (not as the leave's "opponent_left" or, with more seats, "opponents_left":
        nobody left, and the players are told what did happen)."""
        outcome = self.leave(state, seat)
        after: Any = outcome.state
        if (
            self.is_finished(after)
            and not self.is_finished(state)
            and getattr(after, "reason", None) in ("opponent_left", "opponents_left")
        ):
            after = evolve(after, reason="idle")
        return Outcome(after, outcome.events)

    @classmethod
    def verbs(cls) -> frozenset[str]:
        """The verbs this game has `on_<verb>` handlers for (found once per class:
        `apply_action` asks for every action, and `dir` of a class is slow)."""
        found = cls.__dict__.get("_verbs_found")
        if found is None:
            found = frozenset(
                attr[len(HANDLER_PREFIX) :]
                for attr in dir(cls)
                if attr.startswith(HANDLER_PREFIX) and callable(getattr(cls, attr))
            )
            cls._verbs_found = found
        return found

    def apply_action(
        self, state: S, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        mapping = as_mapping(action)
        verbs = self.verbs()
        found = [verb for verb in mapping if isinstance(verb, str) and verb in verbs]
        if len(found) != 1:
            known = ", ".join(sorted(verbs)) or "(none)"
            raise IllegalAction(BAD_ACTION, "an action needs exactly one of: " + known)
        handler: Handler = getattr(self, HANDLER_PREFIX + found[0])
        return handler(state, seat, mapping, rng)

    def make_bot(self, player_id: str, rng: random.Random) -> IBot:
        """A bot for this game; games without one leave this out."""
        raise NotImplementedError(f"{self.name or type(self).__name__} has no bot")

    # `verbs()` of this class, once computed (each subclass has its own).
    _verbs_found: frozenset[str] | None = None

    # The terminal client's view of this game, named as "module:attribute" (a
    # `vinom.client.tui.GameUI` class or factory), or None for the client's
    # generic text view. A name, not an import: a game module never imports
    # the client, and servers never load curses.
    terminal_view: str | None = None

    # The web client's board for this game and its style sheet, as package data of
    # the game's own package (`files(__package__) / "board" / "<name>.js"`): a game
    # installed from elsewhere ships its board without touching vinom (docs/web.md).
    # None: vinom's own board for the game, if it has one, else the generic board.
    board: Traversable | None = None
    board_stylesheet: Traversable | None = None
