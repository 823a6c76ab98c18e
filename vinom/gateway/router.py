"""Which backend a new connection goes to: the rule set in force, backend health and counts.

`Router.pick(sniffed, client)` finds the route and its pool (vinom.gateway.rules)
and picks one backend of the pool that is up and under its connection cap, by
the pool's strategy:

- `round_robin`: the next backend in turn (the turn is kept across reloads);
- `least_connections`: the one with the fewest open connections (ties: the
  first listed);
- `consistent_hash`: rendezvous hashing of the player id (the client's address
  when the first message has none), so that a reconnecting player lands on the
  same backend while it is up, and only the players of a backend that leaves
  move.

A route with `by_query` names the backend itself: the pool's backend at the
address its query parameter gives (a game host's /game), if it is up.

`apply(rules)` puts a new rule set in force for the next picks; connections
already open keep their backend (they hold its `BackendState`), and a backend
kept by name and address keeps its health and count.
"""

from __future__ import annotations

import hashlib

from attrs import define

from vinom.gateway.rules import Backend, Pool, Route, RuleSet
from vinom.gateway.sniff import Sniffed


@define(eq=False)
class BackendState:
    """A backend, whether it is up (health checks), and its open connections."""

    backend: Backend
    healthy: bool = True
    connections: int = 0
    # Connections sent to it since the gateway started.
    routed: int = 0

    @property
    def available(self) -> bool:
        cap = self.backend.max_connections
        return self.healthy and (cap is None or self.connections < cap)


class Router:
    """Picks backends (module docstring)."""

    def __init__(self, rules: RuleSet) -> None:
        self._states: dict[str, BackendState] = {}
        self._turns: dict[str, int] = {}
        self.rules = rules
        self.apply(rules)

    @property
    def backends(self) -> list[BackendState]:
        return list(self._states.values())

    def apply(self, rules: RuleSet) -> None:
        states = {}
        for name, backend in rules.backends.items():
            old = self._states.get(name)
            if old is not None and (old.backend.host, old.backend.port) == (
                backend.host, backend.port,
            ):  # fmt: skip
                old.backend = backend
                states[name] = old
            else:
                # A discovered backend (a pod that just appeared) is out until its first
                # check passes, as Kubernetes's readiness would have it.
                states[name] = BackendState(backend, healthy=backend.discovered_by is None)
        self._states = states
        self.rules = rules

    def state(self, name: str) -> BackendState | None:
        return self._states.get(name)

    def pick(self, sniffed: Sniffed, client: str) -> BackendState | str:
        """The backend for a new connection, or why there is none: `no_route` (no
        route matches) or `no_backend` (every backend of the pool is down or full)."""
        return self.pick_on(self.rules.route_for(sniffed), sniffed, client)

    def pick_on(self, route: Route | None, sniffed: Sniffed, client: str) -> BackendState | str:
        """`pick`, with the route the rule set in force gives `sniffed` already found
        (`rules.route_for(sniffed)`): the gateway looks it up once per connection."""
        pool = self.rules.pool_of(route, sniffed)
        if pool is None:
            return "no_route"
        candidates = [self._states[name] for name in pool.backends]
        if route is not None and route.by_query is not None:
            # The backend the query names, by address, if the pool has it and it is up.
            wanted = sniffed.query.get(route.by_query)
            chosen = next((s for s in candidates
                           if s.backend.host == wanted and s.available), None)  # fmt: skip
        else:
            chosen = self._choose(pool, candidates, sniffed.player_id or client)
        if chosen is None:
            return "no_backend"
        chosen.routed += 1
        return chosen

    def _choose(self, pool: Pool, states: list[BackendState], key: str) -> BackendState | None:
        if pool.strategy == "round_robin":
            turn = self._turns.get(pool.name, 0)
            for step in range(len(states)):
                state = states[(turn + step) % len(states)]
                if state.available:
                    self._turns[pool.name] = (turn + step + 1) % len(states)
                    return state
            return None
        available = [s for s in states if s.available]
        if not available:
            return None
        if pool.strategy == "least_connections":
            return min(available, key=lambda s: s.connections)
        return max(available, key=lambda s: _score(key, s.backend.name))  # consistent_hash


def _score(key: str, backend: str) -> int:
    digest = hashlib.blake2b(f"{key}\0{backend}".encode(), digest_size=8).digest()
    return int.from_bytes(digest)
