"""What a room does when its game's code raises: count it, log the first few.

A game's bug must not take its room (nor the host) down, and a client must not
flood the log by sending what the game chokes on: `GameFaults` counts every
failure (`Room.game_errors`) and logs only the first `LOGGED_FAULTS` of a
room, with their traceback, or in one line for `check_join`, on the room's
logger (whose namespace an operator's log filter knows).
"""

from __future__ import annotations

import traceback

from attrs import define
from twisted.logger import Logger
from twisted.python.failure import Failure

#: How many of a room's game failures are logged; the rest are only counted.
LOGGED_FAULTS = 3


class SharedViewMismatch(Exception):
    """A game says `shared_view = True`, yet `view(state, p)` differs between seats:
    found by the debug check (`RoomConfig.check_views`), logged, and every player
    gets their own view from then on."""


@define(eq=False)
class GameFaults:
    """The failures of one room's game (module docstring)."""

    game: str
    match_id: str
    # Where the failures are logged: the room's logger.
    log: Logger
    # How many times the game's code raised (other than `IllegalAction`).
    count: int = 0

    def failed(self, where: str) -> None:
        """The game raised in `where` (a hook's name, "view", "tick"...): call it
        from the `except` block, so that the traceback is the game's."""
        self.count += 1
        if self.count <= LOGGED_FAULTS:
            self.log.failure(
                "Game {game} failed in {where} (room {match_id})",
                game=self.game,
                where=where,
                match_id=self.match_id,
            )

    def check_join_failed(self, error: Exception, player_id: str) -> str:
        """The game's `check_join` raised: a bug in the game, not in the host, told in
        one line (where it raised, and what), the first few times; the reason."""
        self.count += 1
        what = f"{type(error).__name__}: {error}"
        if self.count <= LOGGED_FAULTS:
            frames = traceback.extract_tb(error.__traceback__)
            where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
            self.log.error(
                "Game {game}'s check_join raised {what}{where} (room {match_id}): player"
                " {player_id} was refused. check_join(state, seat) returns None to let"
                " the player in, or a reason to refuse.",
                game=self.game,
                what=what,
                where=where,
                match_id=self.match_id,
                player_id=player_id,
            )
        return f"check_join failed: {what}"

    def shared_view_differs(self, first: str, other: str, version: int) -> None:
        """The debug check of `shared_view` found that `first` and `other` see
        different views at `version`: logged always (a `SharedViewMismatch`), not counted."""
        error = SharedViewMismatch(
            f"game {self.game!r}: view(state, {first!r}) != view(state, {other!r})"
            f" at version {version}"
        )
        self.log.failure(
            "Game {game} says shared_view = True, but view(state, player) differs "
            "between {first!r} and {other!r} (room {match_id}, version {version}); "
            "each player gets their own view in this room from now on. Fix the "
            "game's view, or leave shared_view out (it defaults to False).",
            Failure(error),
            game=self.game,
            first=first,
            other=other,
            match_id=self.match_id,
            version=version,
        )
