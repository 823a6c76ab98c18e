"""The in-memory player store: the default for a single server process.

Deferreds fire before the method returns; callers must not rely on that,
because the Redis store behind the same interface answers later.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import define, evolve, field
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from vinom.store.interfaces import IPlayerStore, MatchPlacement, PlayerRecord


@implementer(IPlayerStore)
@define
class MemoryPlayerStore:
    """Players and placements in dictionaries, for one lobby."""

    _players: dict[str, PlayerRecord] = field(factory=dict, init=False)
    _placements: dict[str, MatchPlacement] = field(factory=dict, init=False)
    _current: dict[str, str] = field(factory=dict, init=False)

    @property
    def player_count(self) -> int:
        return len(self._players)

    @property
    def placement_count(self) -> int:
        return len(self._placements)

    def save_player(self, record: PlayerRecord) -> Deferred[None]:
        self._players[record.player_id] = record
        return succeed(None)

    def get_player(self, player_id: str) -> Deferred[PlayerRecord | None]:
        return succeed(self._players.get(player_id))

    def remove_player(self, player_id: str) -> Deferred[None]:
        self._players.pop(player_id, None)
        return succeed(None)

    def save_placement(self, placement: MatchPlacement) -> Deferred[None]:
        self._placements[placement.match_id] = placement
        for player_id in placement.player_ids:
            self._current[player_id] = placement.match_id
        return succeed(None)

    def get_placement(self, match_id: str) -> Deferred[MatchPlacement | None]:
        return succeed(self._placements.get(match_id))

    def placement_for_player(self, player_id: str) -> Deferred[MatchPlacement | None]:
        match_id = self._current.get(player_id)
        return succeed(None if match_id is None else self._placements.get(match_id))

    def placement_ended(self, match_id: str) -> Deferred[None]:
        placement = self._placements.get(match_id)
        if placement is not None:
            self._placements[match_id] = evolve(placement, ended=True)
        return succeed(None)

    def remove_placement(self, match_id: str, forget: Iterable[str] = ()) -> Deferred[None]:
        placement = self._placements.pop(match_id, None)
        if placement is not None:
            for player_id in placement.player_ids:
                # A player may be in a newer match by now; only clear this one.
                if self._current.get(player_id) == match_id:
                    del self._current[player_id]
        for player_id in forget:
            self.remove_player(player_id)
        return succeed(None)
