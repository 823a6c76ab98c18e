"""The gateway's rule set: backends, pools, routes and realms, from JSON (docs/gateway.md).

`parse_rules(document)` checks a whole rule set and gives a `RuleSet`, or
raises `RuleError` with one line saying what is wrong: a rule set is taken
whole or not at all, so the one in force is never half replaced. The
document::

    {"backends": {"a": {"address": "10.0.0.5:7350", "health": "10.0.0.5:7390",
                        "health_path": "/ready", "max_connections": 5000,
                        "proxy_protocol": true}},
     "pools": {"lobbies": {"backends": ["a"], "strategy": "round_robin"}},
     "routes": [{"kind": "tls", "sni": "eu.play.example.com", "pool": "lobbies"},
                {"kind": "lobby", "by_realm": true, "pool": "lobbies"}],
     "realms": {"eu": "lobbies"},
     "health": {"interval": 2.0, "timeout": 1.0}}

A backend may instead name a DNS name to discover, e.g. a Kubernetes headless
Service's, whose every address is one backend (`"discover":
"lobby-pods.vinom.svc.cluster.local:7350", "health_port": 7390`): the rule set
holds it as a `Backend` with `discover` set, and `expand(rules, found)` makes
the rule set in force from the addresses found (vinom.gateway.discovery): one
backend `NAME@ADDRESS` per address, in each pool where NAME is.

A route matches a sniffed connection on `kind` ("tls", "http", "lobby" or
"any"), and optionally `sni` (exact, or "*.example.com"), `alpn` (one of the
client's protocols) and `path_prefix` (HTTP); the first route that matches
decides. With `by_realm` the connection's realm picks the pool through
`realms` (the route's `pool` when the realm is unknown or missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from attrs import evolve, frozen

from vinom.gateway.sniff import Sniffed

STRATEGIES = ("round_robin", "least_connections", "consistent_hash")
KINDS = ("tls", "http", "lobby", "any")
HEALTH_PATHS = ("/health", "/ready")
# Readiness, not liveness: a draining lobby is alive (/health 200) but takes no new
# player (/ready 503), and a load balancer's check is there to send new players to
# backends that take them (as HAProxy's and Kubernetes' readiness checks do).
DEFAULT_HEALTH_PATH = "/ready"
DEFAULT_HEALTH_INTERVAL = 2.0
DEFAULT_HEALTH_TIMEOUT = 1.0
# Seconds between two lookups of a discovered backend's name (CoreDNS's default TTL for a
# Kubernetes Service is 5 s).
DEFAULT_DISCOVERY_REFRESH = 5.0


class RuleError(ValueError):
    """A rule set that cannot be used; the message is one line for the operator."""


@frozen
class Backend:
    name: str
    host: str
    port: int
    # host, port of its operations endpoint, asked for `health_path`; None: connect only.
    health: tuple[str, int] | None = None
    max_connections: int | None = None
    proxy_protocol: bool = True
    # The path asked on `health`: /ready (it takes new players: the default) or /health
    # (the process is alive: a draining lobby stays in).
    health_path: str = DEFAULT_HEALTH_PATH
    # A DNS name to discover (module docstring): `host` is the name, `health` its port
    # (`health_port`) on each address; `refresh` seconds between lookups.
    discover: bool = False
    refresh: float = DEFAULT_DISCOVERY_REFRESH
    # Of a backend made by `expand`: the discovering backend's name.
    discovered_by: str | None = None


@frozen
class Pool:
    name: str
    backends: tuple[str, ...]
    strategy: str = "round_robin"


@frozen
class Route:
    kind: str
    pool: str | None = None
    sni: str | None = None
    alpn: str | None = None
    path_prefix: str | None = None
    by_realm: bool = False
    # A TLS route that terminates: the gateway decrypts, then routes the plaintext's first
    # message by the routes of its kind (`lobby`, `http`).
    terminate: bool = False
    # An http route's query parameter naming the backend's address: the connection goes to
    # the pool's backend at that address, or to none (a game host's /game, its own).
    by_query: str | None = None

    def matches(self, sniffed: Sniffed) -> bool:
        if self.kind not in ("any", sniffed.kind):
            return False
        if self.sni is not None:
            name = sniffed.sni or ""
            if self.sni.startswith("*."):
                if not name.endswith(self.sni[1:]):
                    return False
            elif name != self.sni:
                return False
        if self.alpn is not None and self.alpn not in sniffed.alpn:
            return False
        return self.path_prefix is None or (sniffed.path or "").startswith(self.path_prefix)


@frozen
class RuleSet:
    backends: Mapping[str, Backend]
    pools: Mapping[str, Pool]
    routes: tuple[Route, ...]
    realms: Mapping[str, str]
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT

    def route_for(self, sniffed: Sniffed) -> Route | None:
        """The first route that matches, or None."""
        return next((route for route in self.routes if route.matches(sniffed)), None)

    def pool_for(self, sniffed: Sniffed) -> Pool | None:
        """The pool of the first route that matches, or None (no route, or one that
        terminates TLS and so has no pool of its own)."""
        return self.pool_of(self.route_for(sniffed), sniffed)

    def pool_of(self, route: Route | None, sniffed: Sniffed) -> Pool | None:
        """The pool `route` (found by `route_for(sniffed)`) sends `sniffed` to (`pool_for`)."""
        if route is None:
            return None
        name = route.pool
        realm = sniffed.realm
        if route.by_realm and realm is not None and realm in self.realms:
            name = self.realms[realm]
        return None if name is None else self.pools[name]


def discovered_name(backend: str, address: str) -> str:
    """The name of the backend at `address` found for the discovering `backend`."""
    return f"{backend}@{address}"


def expand(rules: RuleSet, found: Mapping[str, tuple[str, ...]]) -> RuleSet:
    """The rule set in force: each discovering backend of `rules` replaced by one backend
    per address `found` for it (none while none is found), in its pools too."""
    backends: dict[str, Backend] = {}
    members: dict[str, tuple[str, ...]] = {}
    for name, backend in rules.backends.items():
        if not backend.discover:
            backends[name] = backend
            members[name] = (name,)
            continue
        names = []
        for address in found.get(name, ()):
            made = discovered_name(name, address)
            health = None if backend.health is None else (address, backend.health[1])
            backends[made] = evolve(backend, name=made, host=address, health=health,
                                    discover=False, discovered_by=name)  # fmt: skip
            names.append(made)
        members[name] = tuple(names)
    pools = {
        name: evolve(pool, backends=tuple(m for b in pool.backends for m in members[b]))
        for name, pool in rules.pools.items()
    }
    return evolve(rules, backends=backends, pools=pools)


def parse_rules(document: object) -> RuleSet:
    """A checked `RuleSet` from a decoded JSON document (module docstring)."""
    top = _object(document, "the rule set", {"backends", "pools", "routes", "realms", "health"})
    backends = {
        name: _backend(name, spec)
        for name, spec in _object(top.get("backends"), "backends").items()
    }
    if not backends:
        raise RuleError("backends: at least one backend is needed")
    pools = {name: _pool(name, spec, backends)
             for name, spec in _object(top.get("pools"), "pools").items()}  # fmt: skip
    realms = _object(top.get("realms", {}), "realms")
    for realm, pool in realms.items():
        if pool not in pools:
            raise RuleError(f"realms: realm {realm!r} names pool {pool!r}, which is not defined")
    raw_routes = top.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise RuleError("routes: a non-empty list of routes is needed")
    routes = tuple(_route(i, spec, pools) for i, spec in enumerate(raw_routes))
    health = _object(top.get("health", {}), "health", {"interval", "timeout"})
    interval = _seconds(health.get("interval", DEFAULT_HEALTH_INTERVAL), "health.interval")
    timeout = _seconds(health.get("timeout", DEFAULT_HEALTH_TIMEOUT), "health.timeout")
    return RuleSet(backends, pools, routes, dict(realms), interval, timeout)


def _object(value: object, what: str, keys: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RuleError(f"{what}: a JSON object is needed, not {type(value).__name__}")
    if keys is not None and set(value) - keys:
        raise RuleError(f"{what}: unknown key(s) {', '.join(sorted(set(value) - keys))}")
    return value


def _address(value: object, what: str) -> tuple[str, int]:
    if not isinstance(value, str):
        raise RuleError(f"{what}: an address HOST:PORT is needed")
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RuleError(f"{what}: {value!r} is not an address HOST:PORT")
    return host, int(port)


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{what}: a number of seconds is needed")
    if not math.isfinite(value) or not 0 < value <= 3600:
        raise RuleError(f"{what}: {value!r} is not within (0, 3600] seconds")
    return float(value)


def _backend(name: str, spec: object) -> Backend:
    what = f"backends.{name}"
    keys = {"address", "health", "health_path", "max_connections", "proxy_protocol",
            "discover", "health_port", "refresh"}  # fmt: skip
    fields = _object(spec, what, keys)
    if "@" in name:
        raise RuleError(f"{what}: a backend's name has no '@' (discovered backends' have)")
    discover = "discover" in fields
    if discover == ("address" in fields):
        raise RuleError(f"{what}: either an address or a name to discover is needed")
    if discover:
        if "health" in fields:
            raise RuleError(f"{what}.health: a discovered backend takes health_port")
        host, port = _address(fields["discover"], f"{what}.discover")
        health_port = fields.get("health_port")
        if health_port is not None and (isinstance(health_port, bool)
                                        or not isinstance(health_port, int)
                                        or not 0 < health_port < 65536):  # fmt: skip
            raise RuleError(f"{what}.health_port: a port number is needed")
        health = None if health_port is None else (host, health_port)
        refresh = _seconds(fields.get("refresh", DEFAULT_DISCOVERY_REFRESH), f"{what}.refresh")
    else:
        if "health_port" in fields or "refresh" in fields:
            raise RuleError(f"{what}: health_port and refresh are for a discovered backend")
        host, port = _address(fields.get("address"), f"{what}.address")
        health = (None if fields.get("health") is None
                  else _address(fields["health"], f"{what}.health"))  # fmt: skip
        refresh = DEFAULT_DISCOVERY_REFRESH
    cap = fields.get("max_connections")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise RuleError(f"{what}.max_connections: a positive integer is needed")
    proxy = fields.get("proxy_protocol", True)
    if not isinstance(proxy, bool):
        raise RuleError(f"{what}.proxy_protocol: true or false")
    path = fields.get("health_path", DEFAULT_HEALTH_PATH)
    if path not in HEALTH_PATHS:
        raise RuleError(f"{what}.health_path: {path!r} is not one of {', '.join(HEALTH_PATHS)}")
    return Backend(name, host, port, health, cap, proxy, path, discover, refresh)


def _pool(name: str, spec: object, backends: Mapping[str, Backend]) -> Pool:
    what = f"pools.{name}"
    fields = _object(spec, what, {"backends", "strategy"})
    members = fields.get("backends")
    if not isinstance(members, list) or not members:
        raise RuleError(f"{what}.backends: a non-empty list of backend names is needed")
    for member in members:
        if member not in backends:
            raise RuleError(f"{what}.backends: {member!r} is not a defined backend")
    strategy = fields.get("strategy", "round_robin")
    if strategy not in STRATEGIES:
        raise RuleError(f"{what}.strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    return Pool(name, tuple(members), strategy)


def _route(index: int, spec: object, pools: Mapping[str, Pool]) -> Route:
    what = f"routes[{index}]"
    keys = {"kind", "pool", "sni", "alpn", "path_prefix", "by_realm", "terminate", "by_query"}
    fields = _object(spec, what, keys)
    kind = fields.get("kind")
    if kind not in KINDS:
        raise RuleError(f"{what}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    pool = fields.get("pool")
    by_realm = fields.get("by_realm", False)
    if not isinstance(by_realm, bool):
        raise RuleError(f"{what}.by_realm: true or false")
    terminate = fields.get("terminate", False)
    if not isinstance(terminate, bool):
        raise RuleError(f"{what}.terminate: true or false")
    if terminate and (kind != "tls" or pool is not None or by_realm):
        raise RuleError(f"{what}.terminate: only a tls route without a pool terminates (the "
                        "plaintext is routed by the lobby and http routes)")  # fmt: skip
    if pool is None and not by_realm and not terminate:
        raise RuleError(f"{what}: a pool (or by_realm) is needed")
    if pool is not None and pool not in pools:
        raise RuleError(f"{what}.pool: {pool!r} is not a defined pool")
    for key in ("sni", "alpn", "path_prefix"):
        if fields.get(key) is not None and not isinstance(fields[key], str):
            raise RuleError(f"{what}.{key}: a string is needed")
    by_query = fields.get("by_query")
    if by_query is not None and (kind != "http" or pool is None or by_realm
                                 or not isinstance(by_query, str) or not by_query):  # fmt: skip
        raise RuleError(f"{what}.by_query: a query parameter's name, on an http route with a "
                        "pool (not by_realm)")  # fmt: skip
    sni = fields.get("sni")
    return Route(kind, pool, None if sni is None else sni.lower(), fields.get("alpn"),
                 fields.get("path_prefix"), by_realm, terminate, by_query)  # fmt: skip
