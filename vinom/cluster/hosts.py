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

from attrs import define, evolve, field, frozen, validators
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface, implementer

from vinom.cluster.channel import TO_FOLLOWERS_LUA, PlacementKeys
from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.settings import DEFAULT_PLACEMENT, positive


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
    # Seconds since its last heartbeat, as the registry measured when it was read
    # (on the registry's clock, so the hosts' and lobbies' clocks do not matter);
    # not part of what the host announced, so not compared.
    silent_for: float = field(default=0.0, eq=False)


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
        """The host is gone now (no error if unknown): it departed, as if its TTL ran out."""

    def live_hosts() -> Deferred[list[HostRecord]]:
        """Every live host, least loaded first (`least_loaded_first`), each with how long
        it has been silent (`HostRecord.silent_for`)."""

    def claim_departed() -> Deferred[list[str]]:
        """The ids of the hosts that departed (their TTL ran out, or they unregistered)
        and were not claimed yet. Each departure goes to exactly one caller, in every
        process sharing the registry: the one that ends what the host left. A host that
        registers again before it is claimed has not departed."""

    def get(host_id: str) -> Deferred[HostRecord | None]:
        """The host's record if it is live, else None."""


def check_ttl(ttl: float) -> None:
    """Raises ValueError unless `ttl` is positive (`IHostRegistry.register`)."""
    if not ttl > 0:
        raise ValueError(f"a host's TTL must be positive, not {ttl!r}")


# KEYS: the host's key, the index, the host's matches. ARGV: the record, its TTL (ms),
# the host id, the matches' TTL (ms). The index lives as long as the longest-lived key
# it leads to (a host, or the matches a departed host left for its claimer), so that
# hosts which all stopped leave nothing behind; the matches of a host live on
# `matches_ttl` past its last heartbeat, for whoever claims its departure.
_REGISTER = Script("""
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('SADD', KEYS[2], ARGV[3])
local keep = ttl
if redis.call('EXISTS', KEYS[3]) == 1 then
  keep = math.max(ttl, tonumber(ARGV[4]))
  redis.call('PEXPIRE', KEYS[3], keep)
end
if redis.call('PTTL', KEYS[2]) < keep then redis.call('PEXPIRE', KEYS[2], keep) end
return 1
""")

# KEYS: the keys of the hosts in the index. The record and the milliseconds left of
# its TTL of each live host, in one step.
_LIVE = Script("""
local found = {}
for i = 1, #KEYS do
  local record = redis.call('GET', KEYS[i])
  if record then
    found[#found + 1] = record
    found[#found + 1] = redis.call('PTTL', KEYS[i])
  end
end
return found
""")

# KEYS: the index, then the keys of the hosts in it. ARGV: the prefix of the hosts'
# matches keys, the prefix of the lobbies' channels, the prefix of the matches'
# followers keys, then the host ids. A host in the index without a key has departed:
# this call claims it (SREM: in one script, so exactly one caller does) and ends the
# matches it left (`ended`, `host_crashed`, to each match's lobbies, as the host would
# have). Returns each claimed host id and how many matches it ended.
_CLAIM_DEPARTED = Script(
    TO_FOLLOWERS_LUA
    + """
local claimed = {}
for i = 2, #KEYS do
  local host_id = ARGV[i + 2]
  if redis.call('EXISTS', KEYS[i]) == 0 and redis.call('SREM', KEYS[1], host_id) == 1 then
    local matches_key = ARGV[1] .. host_id
    local match_ids = redis.call('SMEMBERS', matches_key)
    for _, match_id in ipairs(match_ids) do
      local followers = ARGV[3] .. match_id
      to_followers(followers, ARGV[2], cjson.encode({
        event = 'ended', match_id = match_id, host_id = host_id,
        outcome = {match_id = match_id, phase = 'aborted', reason = 'host_crashed'}}))
      redis.call('DEL', followers)
    end
    redis.call('DEL', matches_key)
    claimed[#claimed + 1] = host_id
    claimed[#claimed + 1] = #match_ids
  end
end
return claimed
"""
)


@implementer(IHostRegistry)
@define
class RedisHostRegistry:
    """Hosts in Redis: a key per host that expires with its TTL, and an index set.

    A host's departure is claimed by the first `claim_departed` after its key is gone
    (expired, or deleted by `unregister`); the same call ends the matches the host
    left in `<prefix>host-matches:<host_id>` (which `HostAgent` keeps: the placement
    channel, vinom.cluster.channel), publishing their `ended` as `host_crashed`.
    """

    log = Logger()

    redis: RedisClient
    # How long a host's matches are kept past its last heartbeat, for the claimer.
    matches_ttl: float = field(default=DEFAULT_PLACEMENT.key_ttl, validator=positive)

    def _host_key(self, host_id: str) -> str:
        return self.redis.key("host", host_id)

    @property
    def _index_key(self) -> str:
        return self.redis.key("hosts")

    @property
    def _keys(self) -> PlacementKeys:
        return PlacementKeys(self.redis.settings.key_prefix)

    def register(self, record: HostRecord, ttl: float) -> Deferred[None]:
        check_ttl(ttl)
        ttl_ms = milliseconds(ttl)
        keys = [self._host_key(record.host_id), self._index_key,
                self._keys.host_matches(record.host_id)]  # fmt: skip
        args = [encode_host(record, ttl_ms), ttl_ms, record.host_id,
                milliseconds(self.matches_ttl)]  # fmt: skip
        d = self.redis.run(_REGISTER, keys, args)
        return d.addCallback(lambda _: None)

    def unregister(self, host_id: str) -> Deferred[None]:
        # Left in the index: the first `claim_departed` finds it gone and claims it.
        d = self.redis.bounded(self.redis.handler.delete(self._host_key(host_id)))
        return d.addCallback(lambda _: None)

    def live_hosts(self) -> Deferred[list[HostRecord]]:
        return Deferred.fromCoroutine(self._live_hosts())

    async def _indexed(self) -> list[str]:
        return sorted(await self.redis.bounded(self.redis.handler.smembers(self._index_key)))

    async def _live_hosts(self) -> list[HostRecord]:
        ids = await self._indexed()
        if not ids:
            return []
        found = await self.redis.run(_LIVE, [self._host_key(i) for i in ids], [])
        found = list(found or ())
        return least_loaded_first(
            decode_live(text, int(left)) for text, left in zip(found[::2], found[1::2], strict=True)
        )

    def get(self, host_id: str) -> Deferred[HostRecord | None]:
        d = self.redis.bounded(self.redis.handler.get(self._host_key(host_id)))
        return d.addCallback(lambda text: None if text is None else decode_host(text))

    def claim_departed(self) -> Deferred[list[str]]:
        return Deferred.fromCoroutine(self._claim_departed())

    async def _claim_departed(self) -> list[str]:
        ids = await self._indexed()
        if not ids:
            return []
        keys = [self._index_key, *(self._host_key(i) for i in ids)]
        args = [self._keys.host_matches(""), self._keys.channels, self._keys.followers(""), *ids]
        claimed = list(await self.redis.run(_CLAIM_DEPARTED, keys, args) or ())
        for host_id, ended in zip(claimed[::2], claimed[1::2], strict=True):
            self.log.warn("game host {host_id} left the registry: {ended} of its matches "
                          "ended (host_crashed)", host_id=host_id, ended=ended)  # fmt: skip
        return [str(host_id) for host_id in claimed[::2]]


def encode_host(record: HostRecord, ttl_ms: int | None = None) -> str:
    """The record as the registry keeps it; with the TTL it was registered with (which
    `decode_live` measures its silence against)."""
    data: dict[str, Any] = {
        "host_id": record.host_id,
        "public_host": record.public_host,
        "ports": list(record.ports),
        "capacity": record.capacity,
        "free": record.free,
        "updated_at": record.updated_at,
        "game_url": record.game_url,
    }
    if ttl_ms is not None:
        data["ttl_ms"] = ttl_ms
    return json.dumps(data)


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


def decode_live(text: str, left_ms: int) -> HostRecord:
    """A live host's record, and its silence: its TTL less the `left_ms` of it left."""
    record = decode_host(text)
    try:
        ttl_ms = int(json.loads(text).get("ttl_ms", left_ms))
    except (ValueError, TypeError):
        ttl_ms = left_ms
    return evolve(record, silent_for=max(0, ttl_ms - left_ms) / 1000)
