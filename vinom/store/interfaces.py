"""The player store seam: player records and match placements.

The lobby keeps here what must outlive one TCP connection: who a player is
(with only a hash of their reconnection secret) and where each running match
is hosted, so a player who lost their connection can ask for a fresh connect
token for the same seat. Every method returns a Deferred, because a Redis
store sits behind the same interface as the in-memory one.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen
from twisted.internet.defer import Deferred
from zope.interface import Interface

from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress


@frozen
class PlayerRecord:
    """A player the lobby issued an id to; `secret_hash` is a hex SHA-256 of their secret."""

    player_id: str
    name: str
    secret_hash: str
    created_at: float


@frozen
class MatchPlacement:
    """A match and the game host address it runs on; `ended`: the match is over, its
    room kept a little longer (for its players, and its spectators' delay) before
    its host lets it go and the placement is removed."""

    match: Match
    address: HostAddress
    placed_at: float
    ended: bool = False

    @property
    def match_id(self) -> str:
        return self.match.match_id

    @property
    def game(self) -> str:
        return self.match.game

    @property
    def host(self) -> str:
        return self.address.host

    @property
    def port(self) -> int:
        return self.address.port

    @property
    def player_ids(self) -> tuple[str, ...]:
        return self.match.player_ids

    def ticket_of(self, player_id: str) -> Ticket | None:
        """The ticket (and so the seat) of `player_id` in this match, if they play in it."""
        for ticket in self.match.players:
            if ticket.player_id == player_id:
                return ticket
        return None


class IPlayerStore(Interface):
    """Players and match placements; every method returns a Deferred."""

    def save_player(record: PlayerRecord) -> Deferred[None]:
        """Create or replace the record of `record.player_id`."""

    def get_player(player_id: str) -> Deferred[PlayerRecord | None]:
        """The player's record, or None if there is none."""

    def remove_player(player_id: str) -> Deferred[None]:
        """Forget the player (no error if unknown)."""

    def save_placement(placement: MatchPlacement) -> Deferred[None]:
        """Record where a match runs; it becomes the current match of each of its players."""

    def get_placement(match_id: str) -> Deferred[MatchPlacement | None]:
        """The placement of a match, or None."""

    def placement_for_player(player_id: str) -> Deferred[MatchPlacement | None]:
        """The placement of the player's current match, or None."""

    def placement_ended(match_id: str) -> Deferred[None]:
        """The placed match has ended (its game host keeps its room a little longer):
        its placement reads `ended` from now on, until it is removed."""

    def remove_placement(match_id: str, forget: Iterable[str] = ()) -> Deferred[None]:
        """Forget a match; its players no longer have it as their current match.

        The players in `forget` are forgotten too (as by `remove_player`), in the
        same step, whether or not the placement is still there.
        """
