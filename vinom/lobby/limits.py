"""The lobby's limits: who may connect, and who may queue now.

`LobbyLimits` counts lobby connections (in all and per client address) and
the players of each address who are pending (queued, waiting for a game
server, or in a match that has not ended), with the matches each address
has players in; keeps the per-address token buckets of `queue` requests
and the per-address limit of requests naming a join code (`party_join`,
`spectate` by code; shared by every lobby on one Redis when it is a
`vinom.cluster.address_limits.RedisAddressLimiter`);
and logs its refusals at a limited rate. It knows nothing of frames: the
connection asks it at connect time, the request handlers before a `queue`,
and match placement tells it when a match forms and when it ends.

Why both caps: every match holds a game port until it ends, so what one
address may hold must be counted until then. An address may queue only
while its matches plus its queued players are fewer than
`max_matches_per_ip`: each queued player can make at most one more match,
so the matches an address has players in never exceed the cap, however its
players are matched.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from vinom.errors import LobbyError
from vinom.lobby import errors
from vinom.lobby.config import LobbyConfig
from vinom.net.addresses import client_key
from vinom.net.limits import (
    IAddressLimiter,
    KeyedTokenBuckets,
    LogLimiter,
    MemoryAddressLimiter,
)

# Refusals (connections over a cap, queue requests over a limit) logged at most
# this many at once and this many per second after that.
REFUSAL_LOG_BURST = 10
REFUSAL_LOG_RATE = 1.0


class LobbyLimits:
    """Connection caps and per-address queue limits of one lobby."""

    log = Logger()

    def __init__(
        self,
        config: LobbyConfig,
        clock: IReactorTime,
        *,
        party_joins: IAddressLimiter | None = None,
    ) -> None:
        """`party_joins`: the limit of requests naming a join code per address (by default
        `queue_rate` per second after a burst of `queue_burst`, in this process)."""
        self._config = config
        self._clock = clock
        # Admitted connections per client key (an IPv4 address or an IPv6 /64), and in all.
        self._per_client: dict[str, int] = {}
        self._total = 0
        # Players counted against their address until their match ends: the client
        # key of each, and per key each player with their match id (None: queued).
        self._pending_client: dict[str, str] = {}
        self._pending_by_client: dict[str, dict[str, str | None]] = {}
        self._queue_buckets = KeyedTokenBuckets(config.queue_rate, config.queue_burst, clock)
        self._refusal_log = LogLimiter(REFUSAL_LOG_RATE, REFUSAL_LOG_BURST, clock)
        self._party_joins = party_joins or MemoryAddressLimiter(
            config.queue_rate, config.queue_burst, clock
        )

    # Queries.

    @property
    def connection_count(self) -> int:
        """Admitted lobby connections."""
        return self._total

    def connections_from(self, host: str) -> int:
        """Admitted connections from one client address (an IPv6 address: from its /64)."""
        return self._per_client.get(client_key(host), 0)

    def pending_from(self, host: str) -> int:
        """Players from one client address (IPv6: its /64) queued or in a match not ended."""
        return len(self._pending_by_client.get(client_key(host), ()))

    def matches_from(self, host: str) -> int:
        """Matches not ended that players from one client address (IPv6: its /64) are in."""
        return self._matches_of(client_key(host))

    # Connections.

    def admit_connection(self, client: str, peer_host: str) -> str | None:
        """Count a new connection from `client`; the reason it is refused, if it is."""
        if self._total >= self._config.max_connections:
            self._log_refusal("a lobby connection", peer_host, f"{self._total} connections in all")
            return "the lobby is full; try again later"
        count = self._per_client.get(client, 0)
        if count >= self._config.max_connections_per_ip:
            self._log_refusal(
                "a lobby connection", peer_host, f"{count} open from {client} already"
            )
            return f"at most {self._config.max_connections_per_ip} lobby connections per address"
        self._per_client[client] = count + 1
        self._total += 1
        return None

    def release_connection(self, client: str) -> None:
        """An admitted connection from `client` is gone."""
        self._total -= 1
        remaining = self._per_client.get(client, 0) - 1
        if remaining > 0:
            self._per_client[client] = remaining
        else:
            self._per_client.pop(client, None)

    # Players pending per address: queued, or in a match that has not ended.

    def check_queue(self, client: str, peer_host: str) -> None:
        """Raise `rate_limited` (not counted) if `client`'s address may not queue now."""
        players = self._pending_by_client.get(client, {})
        limit = self._config.max_pending_per_ip
        if len(players) >= limit:
            self._log_refusal("a queue request", peer_host, f"{limit} players pending")
            raise LobbyError(
                errors.RATE_LIMITED,
                f"{limit} players from this address are queued or in a match; "
                "queue again once a match has ended",
                counted=False,
            )
        match_limit = self._config.max_matches_per_ip
        queued = sum(1 for match_id in players.values() if match_id is None)
        if self._matches_of(client) + queued >= match_limit:
            self._log_refusal("a queue request", peer_host, f"{match_limit} matches")
            raise LobbyError(
                errors.RATE_LIMITED,
                f"players from this address are in or queued for {match_limit} matches; "
                "queue again once one has ended",
                counted=False,
            )
        if not self._queue_buckets.allow(client):
            self._log_refusal("a queue request", peer_host, "queue rate")
            raise LobbyError(
                errors.RATE_LIMITED,
                f"more than {self._config.queue_rate:g} queue requests per second from this "
                "address; try again shortly",
                counted=False,
            )

    def check_code_guess(self, client: str, peer_host: str) -> Deferred[None]:
        """Count a request naming a join code (`party_join`, `spectate` by `code`) of
        `client`; fails with `rate_limited` (not counted) past the limit. Join codes are
        short: this one count of every guess is what makes guessing one slow."""

        def checked(allowed: bool) -> None:
            if not allowed:
                self._log_refusal("a join code", peer_host, "join code rate")
                raise LobbyError(
                    errors.RATE_LIMITED,
                    f"more than {self._config.queue_rate:g} requests naming a join code "
                    "(party_join, spectate by code) per second from this address; try "
                    "again shortly",
                    counted=False,
                )

        return self._party_joins.allow(client).addCallback(checked)

    def count_pending(self, player_id: str, client: str) -> None:
        """The player queued: they count against `client` until their match ends."""
        self._pending_client[player_id] = client
        self._pending_by_client.setdefault(client, {})[player_id] = None

    def match_formed(self, match_id: str, player_ids: tuple[str, ...]) -> None:
        """These players are in a match now: it counts against their addresses until it ends."""
        for player_id in player_ids:
            client = self._pending_client.get(player_id)
            if client is not None:
                self._pending_by_client[client][player_id] = match_id

    def is_pending(self, player_id: str) -> bool:
        """Whether the player counts against their address here (queued or in a match)."""
        return player_id in self._pending_client

    def requeued(self, player_id: str) -> None:
        """The player is queued again (their match failed): in no match, still counted."""
        client = self._pending_client.get(player_id)
        if client is not None:
            self._pending_by_client[client][player_id] = None

    def uncount_pending(self, player_id: str) -> None:
        """The player left the queue, or their match failed or ended."""
        client = self._pending_client.pop(player_id, None)
        if client is None:
            return
        players = self._pending_by_client.get(client)
        if players is not None:
            players.pop(player_id, None)
            if not players:
                del self._pending_by_client[client]

    def _matches_of(self, key: str) -> int:
        players = self._pending_by_client.get(key)
        if not players:
            return 0
        return len({match_id for match_id in players.values() if match_id is not None})

    def _log_refusal(self, what: str, peer: str, reason: str) -> None:
        # Refusals come in floods when someone attacks: log a few, count the rest.
        if not self._refusal_log.allow():
            return
        suppressed = self._refusal_log.take_suppressed()
        if suppressed:
            self.log.info(
                "refused {what} from {peer}: {reason} ({suppressed} more refusals not logged)",
                what=what,
                peer=peer,
                reason=reason,
                suppressed=suppressed,
            )
        else:
            self.log.info(
                "refused {what} from {peer}: {reason}", what=what, peer=peer, reason=reason
            )
