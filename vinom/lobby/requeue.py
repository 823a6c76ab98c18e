"""Places kept at the head of a queue for players whose match was aborted for them.

A match is aborted for `players_missing` when some of its players do not
connect to the game host within the connect deadline, and for `host_crashed`
when the process hosting it exited, was killed or hung. The players who did
connect (for `host_crashed`: all of them) are not to blame and lose nothing:
for each, the lobby keeps a place at the head of their game's queue for
`window` seconds. Their lobby
connection closed with `match_found`, so the player claims the place with
`reconnect` (id and secret), is answered `queued` with `requeued: true`,
and the abort's `reason`, and gets `match_found` on that connection when the next match forms; the
client library's `reconnect` does exactly that. A place not claimed in time
lapses and the player is forgotten. Only a claimed place enters the queue,
so a kept place never becomes a ghost ticket that an honest player is
matched with.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from vinom.match import Ticket


@frozen
class KeptPlace:
    """A player's ticket, kept because their match was aborted for `reason`."""

    ticket: Ticket
    reason: str


class Requeues:
    """Kept places, by player id, each lapsing `window` seconds after it is kept."""

    def __init__(
        self, window: float, clock: IReactorTime, on_lapsed: Callable[[str], object]
    ) -> None:
        self.window = window
        self._clock = clock
        self._on_lapsed = on_lapsed
        self._held: dict[str, tuple[KeptPlace, IDelayedCall]] = {}

    def keep(self, ticket: Ticket, reason: str) -> None:
        """Keep `ticket`'s place for its player to claim; `reason`: why their match was aborted."""
        self.release(ticket.player_id)
        call = self._clock.callLater(self.window, self._lapse, ticket.player_id)
        self._held[ticket.player_id] = (KeptPlace(ticket, reason), call)

    def claim(self, player_id: str) -> KeptPlace | None:
        """The place kept for `player_id`, taken out (None if there is none)."""
        held = self._held.pop(player_id, None)
        if held is None:
            return None
        place, call = held
        if call.active():
            call.cancel()
        return place

    def release(self, player_id: str) -> None:
        """Drop a kept place without calling `on_lapsed`."""
        self.claim(player_id)

    def clear(self) -> list[str]:
        """Drop every kept place (the lobby is stopping); the players whose place it was."""
        players = list(self._held)
        for player_id in players:
            self.release(player_id)
        return players

    def _lapse(self, player_id: str) -> None:
        if self._held.pop(player_id, None) is not None:
            self._on_lapsed(player_id)
