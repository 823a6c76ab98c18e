"""The UDP relay's sans-I/O core: route tokens in, datagrams out, no sockets, no reactor.

A player behind the relay prefixes each datagram with the route token of its
`match_found` (vinom.protocol.route_token). The core checks the token (sealed
under the relay key, not expired) the first time it sees it and opens a *route*:
the player's address, the game host's address, and a route id the adapter
turns into one relay-side socket toward the host, so the host sees each
player as a distinct peer. After that, a datagram whose token names a route is
forwarded (token stripped) only if it comes from the address that owns the
route; the host's replies to the route's socket go back to that address.

Binding: the first address a valid token arrives from owns its route until
the route is forgotten (`idle_timeout` seconds without a datagram from the
player; the host's datagrams alone do not keep a route). The same token from
another address is dropped and counted (`address_mismatch`): a copied token
cannot take over or redirect someone's route. A player whose NAT rebinds
(new source port mid-match) is dropped the same way: its game session times
out and the client reconnects through the lobby, which mints a fresh token.

Amplification: the core sends nothing to an address that has no route (no
reply, no error, ever); a datagram toward a player is always a host's datagram
on that player's route. What cannot be routed is dropped and counted by
reason (`drops`, docs/gateway.md lists them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from attrs import define, frozen

from vinom.protocol.crypto import new_aead
from vinom.protocol.route_token import ROUTE_TOKEN_SIZE, ROUTE_TOKEN_VERSION, open_route_token

Address = tuple[Any, ...]  # (host, port) as Twisted's datagramReceived gives it

DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_MAX_ROUTES = 10_000

# Drop reasons (the `reason` label of vinom_relay_datagrams_dropped).
DROP_MALFORMED = "malformed"  # too short for a token and a payload, or unknown version
DROP_BAD_TOKEN = "bad_token"  # not sealed under the relay key (forged or damaged)
DROP_EXPIRED = "expired"  # a valid token past its expiry, with no route open
DROP_ADDRESS_MISMATCH = "address_mismatch"  # a route's token from another address
DROP_FULL = "full"  # max_routes routes open already
DROP_HOST_MISMATCH = "host_mismatch"  # on a route's socket, not from its host
DROP_NO_ROUTE = "no_route"  # on a route's socket after the route was forgotten
DROP_REASONS = (
    DROP_MALFORMED, DROP_BAD_TOKEN, DROP_EXPIRED, DROP_ADDRESS_MISMATCH, DROP_FULL,
    DROP_HOST_MISMATCH, DROP_NO_ROUTE,
)  # fmt: skip


@frozen
class OpenRoute:
    """Open a relay-side socket for route `route_id` (toward `host`)."""

    route_id: int
    host: Address


@frozen
class CloseRoute:
    """Close route `route_id`'s socket: the route is forgotten."""

    route_id: int


@frozen
class ToHost:
    """Send `data` from route `route_id`'s socket to its host."""

    route_id: int
    data: bytes
    host: Address


@frozen
class ToPlayer:
    """Send `data` from public socket `listener` to the player at `address`."""

    listener: int
    data: bytes
    address: Address


Action = OpenRoute | CloseRoute | ToHost | ToPlayer


@define(slots=True)
class _Route:
    route_id: int
    token: bytes
    player: Address
    listener: int
    host: Address
    last_seen: float


class RelayCore:
    """The relay's routes and counters (module docstring).

    `now` arguments are a monotonic clock (the reactor's `seconds()`); token
    expiry is checked against `wall_clock()` (unix seconds), as the lobby mints it.
    """

    def __init__(
        self,
        key: bytes,
        *,
        wall_clock: Callable[[], float],
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_routes: int = DEFAULT_MAX_ROUTES,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self._aead = new_aead(key)
        self._wall_clock = wall_clock
        self.idle_timeout = idle_timeout
        self.max_routes = max_routes
        self._by_token: dict[bytes, _Route] = {}
        self._by_id: dict[int, _Route] = {}
        self._next_id = 1
        self._sweep_at: float | None = None
        self.drops: Counter[str] = Counter()
        self.routes_opened = 0
        self.routes_forgotten = 0
        self.to_host = 0
        self.to_host_bytes = 0
        self.to_player = 0
        self.to_player_bytes = 0
        self.received = 0
        self.received_bytes = 0

    @property
    def route_count(self) -> int:
        return len(self._by_id)

    # -- input ------------------------------------------------------------

    def player_datagram(
        self, data: bytes, address: Address, listener: int, now: float
    ) -> list[Action]:
        """A datagram on public socket `listener` from `address`."""
        self.received += 1
        self.received_bytes += len(data)
        token = data[:ROUTE_TOKEN_SIZE]
        route = self._by_token.get(token)
        if route is None:
            if len(data) <= ROUTE_TOKEN_SIZE or data[0] != ROUTE_TOKEN_VERSION:
                self.drops[DROP_MALFORMED] += 1
                return []
            return self._open(token, data, address, listener, now)
        if route.player != address:
            self.drops[DROP_ADDRESS_MISMATCH] += 1
            return []
        route.last_seen = now
        payload = data[ROUTE_TOKEN_SIZE:]
        if not payload:
            self.drops[DROP_MALFORMED] += 1
            return []
        self.to_host += 1
        self.to_host_bytes += len(payload)
        return [ToHost(route.route_id, payload, route.host)]

    def host_datagram(self, route_id: int, data: bytes, address: Address) -> list[Action]:
        """A datagram on route `route_id`'s socket from `address`."""
        route = self._by_id.get(route_id)
        if route is None:
            self.drops[DROP_NO_ROUTE] += 1
            return []
        if address[:2] != route.host[:2]:
            self.drops[DROP_HOST_MISMATCH] += 1
            return []
        self.to_player += 1
        self.to_player_bytes += len(data)
        return [ToPlayer(route.listener, data, route.player)]

    def get_timer(self) -> float | None:
        """When `handle_timer` is next due (None while no route is open)."""
        return self._sweep_at if self._by_id else None

    def handle_timer(self, now: float) -> list[Action]:
        """Forget the routes idle for `idle_timeout` seconds or more."""
        if self._sweep_at is None or now < self._sweep_at:
            return []
        cutoff = now - self.idle_timeout
        idle = [r for r in self._by_id.values() if r.last_seen <= cutoff]
        actions: list[Action] = [self._forget(r) for r in idle]
        self._sweep_at = now + self.idle_timeout / 4 if self._by_id else None
        return actions

    def forget(self, route_id: int) -> list[Action]:
        """Forget one route now (the adapter could not open its socket)."""
        route = self._by_id.get(route_id)
        return [] if route is None else [self._forget(route)]

    def close(self) -> list[Action]:
        """Forget every route (the relay is stopping)."""
        actions: list[Action] = [self._forget(r) for r in list(self._by_id.values())]
        self._sweep_at = None
        return actions

    # -- plumbing ---------------------------------------------------------

    def _open(
        self, token: bytes, data: bytes, address: Address, listener: int, now: float
    ) -> list[Action]:
        found = open_route_token(token, self._aead)
        if found is None:
            self.drops[DROP_BAD_TOKEN] += 1
            return []
        if found.expires_at <= self._wall_clock():
            self.drops[DROP_EXPIRED] += 1
            return []
        if len(self._by_id) >= self.max_routes:
            self.drops[DROP_FULL] += 1
            return []
        route = _Route(self._next_id, bytes(token), address, listener,
                       (found.host, found.port), now)  # fmt: skip
        self._next_id += 1
        self._by_token[route.token] = route
        self._by_id[route.route_id] = route
        self.routes_opened += 1
        if self._sweep_at is None:
            self._sweep_at = now + self.idle_timeout / 4
        payload = data[ROUTE_TOKEN_SIZE:]
        self.to_host += 1
        self.to_host_bytes += len(payload)
        return [OpenRoute(route.route_id, route.host), ToHost(route.route_id, payload, route.host)]

    def _forget(self, route: _Route) -> CloseRoute:
        del self._by_id[route.route_id]
        del self._by_token[route.token]
        self.routes_forgotten += 1
        return CloseRoute(route.route_id)
