"""The game-host registry: which game hosts are alive, and how much room each has.

A game host announces itself with `register(record, ttl)` and keeps doing so
(its heartbeat) before `ttl` runs out; a host that stops, crashed or cut off,
drops out of `live_hosts()` once its last TTL has passed, and is back with
its next `register`. `live_hosts()` lists the least loaded first, so a
placer can take the head of the list. Hosts register here only when lobbies
and hosts are separate processes sharing a Redis, so `RedisHostRegistry` is
the one implementation in the package (keys in docs/scaling.md, "Redis
keys"); the tests hold an in-memory model of `IHostRegistry` for its contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from attrs import define, field, frozen, validators
from twisted.internet.defer import Deferred
from zope.interface import Interface, implementer

from vinom.cluster.client import RedisClient, Script, milliseconds


def _port_range(instance: HostRecord, attribute: Any, ports: tuple[int, int]) -> None:
    first, last = ports
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"ports must be (first, last) with 1 <= first <= last <= 65535: {ports}")


def _free_within_capacity(instance: HostRecord, attribute: Any, free: int) -> None:
    if not 0 <= free <= instance.capacity:
        raise ValueError(f"free must be from 0 to the capacity {instance.capacity}: {free}")


@frozen
class HostRecord:
    """One game host as it last announced itself.

    `ports` is the (first, last) UDP port range it serves on `public_host`;
    `capacity` is how many matches it can run at once and `free` how many
    more it can take now; `updated_at` is when it said so (its own clock).
    `game_url` is the `wss://` URL of its `/game` WebSocket, where browsers
    play its matches (None: it serves none, or its URL is not known).
    """

    host_id: str = field(validator=validators.min_len(1))
    public_host: str = field(validator=validators.min_len(1))
    ports: tuple[int, int] = field(validator=_port_range)
    capacity: int = field(validator=validators.ge(0))
    free: int = field(validator=_free_within_capacity)
    updated_at: float
    game_url: str | None = None


def least_loaded_first(records: Iterable[HostRecord]) -> list[HostRecord]:
    """Most free capacity first; ties by host id, so every process sees the same order."""
    return sorted(records, key=lambda record: (-record.free, record.host_id))


class IHostRegistry(Interface):
    """Live game hosts; every method returns a Deferred."""

    def register(record: HostRecord, ttl: float) -> Deferred[None]:
        """Announce `record` (replacing the host's previous one); the host is live for
        `ttl` seconds from now. Registering again before then is the host's heartbeat.

        Raises ValueError if `ttl` is not positive.
        """

    def unregister(host_id: str) -> Deferred[None]:
        """The host is gone now (no error if unknown)."""

    def live_hosts() -> Deferred[list[HostRecord]]:
        """Every live host, least loaded first (`least_loaded_first`)."""

    def get(host_id: str) -> Deferred[HostRecord | None]:
        """The host's record if it is live, else None."""


def check_ttl(ttl: float) -> None:
    """Raises ValueError unless `ttl` is positive (`IHostRegistry.register`)."""
    if not ttl > 0:
        raise ValueError(f"a host's TTL must be positive, not {ttl!r}")


# KEYS: the host's key, the index. ARGV: the record, its TTL (ms), the host id.
# The index lives as long as the longest-lived host in it, so that hosts which
# all stopped leave nothing behind.
_REGISTER = Script("""
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
""")

# KEYS: the host's key, the index. ARGV: the host id. In one step, so that the
# host registering again meanwhile is either gone or fully back.
_UNREGISTER = Script("""
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
""")

# KEYS: the index, then the keys of the hosts in it. ARGV: their host ids.
# Returns the records of live hosts and drops the expired ones from the index, in
# one step, so that a host registering meanwhile is never dropped.
_LIVE = Script("""
local records = {}
for i = 2, #KEYS do
  local record = redis.call('GET', KEYS[i])
  if record then
    records[#records + 1] = record
  else
    redis.call('SREM', KEYS[1], ARGV[i - 1])
  end
end
return records
""")


@implementer(IHostRegistry)
@define
class RedisHostRegistry:
    """Hosts in Redis: a key per host that expires with its TTL, and an index set."""

    redis: RedisClient

    def _host_key(self, host_id: str) -> str:
        return self.redis.key("host", host_id)

    @property
    def _index_key(self) -> str:
        return self.redis.key("hosts")

    def register(self, record: HostRecord, ttl: float) -> Deferred[None]:
        check_ttl(ttl)
        keys = [self._host_key(record.host_id), self._index_key]
        args = [encode_host(record), milliseconds(ttl), record.host_id]
        d = self.redis.run(_REGISTER, keys, args)
        return d.addCallback(lambda _: None)

    def unregister(self, host_id: str) -> Deferred[None]:
        keys = [self._host_key(host_id), self._index_key]
        d = self.redis.run(_UNREGISTER, keys, [host_id])
        return d.addCallback(lambda _: None)

    def live_hosts(self) -> Deferred[list[HostRecord]]:
        return Deferred.fromCoroutine(self._live_hosts())

    async def _live_hosts(self) -> list[HostRecord]:
        ids = sorted(await self.redis.bounded(self.redis.handler.smembers(self._index_key)))
        if not ids:
            return []
        keys = [self._index_key, *(self._host_key(i) for i in ids)]
        texts = await self.redis.run(_LIVE, keys, ids)
        return least_loaded_first(decode_host(text) for text in texts or ())

    def get(self, host_id: str) -> Deferred[HostRecord | None]:
        d = self.redis.bounded(self.redis.handler.get(self._host_key(host_id)))
        return d.addCallback(lambda text: None if text is None else decode_host(text))


def encode_host(record: HostRecord) -> str:
    return json.dumps(
        {
            "host_id": record.host_id,
            "public_host": record.public_host,
            "ports": list(record.ports),
            "capacity": record.capacity,
            "free": record.free,
            "updated_at": record.updated_at,
            "game_url": record.game_url,
        }
    )


def decode_host(text: str) -> HostRecord:
    try:
        data = json.loads(text)
        first, last = data["ports"]
        return HostRecord(
            str(data["host_id"]),
            str(data["public_host"]),
            (int(first), int(last)),
            int(data["capacity"]),
            int(data["free"]),
            float(data["updated_at"]),
            None if data.get("game_url") is None else str(data["game_url"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unreadable host record in Redis: {error!r}") from None
