"""Which lobby connection each player is on, and forgetting players.

A player id belongs to at most one connection at a time (a `reconnect`
moves it). A player who leaves without a formed or running match is
forgotten: their record is removed from the player store.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.errors import BackendUnavailable
from vinom.lobby.connection import LobbyConnection
from vinom.store.interfaces import IPlayerStore


class Players:
    """The connection of each connected player."""

    log = Logger()

    def __init__(self, store: IPlayerStore) -> None:
        self._store = store
        self._connections: dict[str, LobbyConnection] = {}

    def connection_of(self, player_id: str) -> LobbyConnection | None:
        return self._connections.get(player_id)

    def connections(self) -> list[LobbyConnection]:
        """Every connection that holds a player."""
        return list(self._connections.values())

    def is_connected(self, player_id: str) -> bool:
        return player_id in self._connections

    def bind(self, player_id: str, connection: LobbyConnection) -> LobbyConnection | None:
        """`connection` is now the player's; the connection it replaces, if any."""
        previous = self._connections.get(player_id)
        self._connections[player_id] = connection
        return None if previous is connection else previous

    def unbind(self, connection: LobbyConnection) -> bool:
        """Forget `connection`; whether it was the one of its player."""
        player_id = connection.player_id
        if player_id is None or self._connections.get(player_id) is not connection:
            # No player, or another connection (a reconnect) owns the player now.
            return False
        del self._connections[player_id]
        return True

    def forget(self, player_id: str) -> None:
        """Remove the player's record from the store."""
        d = self._store.remove_player(player_id)
        d.addErrback(log_failure, self.log, "removing player {player_id}", player_id)


def log_failure(failure: Failure, log: Logger, what: str, player_id: str) -> None:
    """Log the failure of a background store or matchmaker call about one player: Redis
    away (restarting, failing over) in one line, anything else with its traceback."""
    if failure.check(BackendUnavailable):
        log.warn(what + " failed: {error}", error=failure.value, player_id=player_id)
        return
    log.failure(what + " failed", failure, player_id=player_id)
