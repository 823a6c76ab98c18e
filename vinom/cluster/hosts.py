"""The game-host registry: which game hosts are alive, and how much room each has.

A host is live while it renews its registration (its heartbeat) within its TTL, and has
departed (its matches ended) only once also gone: its presence connection closed (its process
died) or it was silent for the stall grace; a paused process keeps both. Hosts register only
when lobbies and hosts share a Redis, so `RedisHostRegistry` is the one implementation.
Steps and keys: docs/scaling.md, "Game hosts in the registry" and "Host registry".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from attrs import define, evolve, field, frozen, validators
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface, implementer

from vinom.cluster.channel import LATE_END_FOR, TO_FOLLOWERS_LUA, PlacementKeys
from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.players import DEFAULT_PLAYER_TTL, PLACEMENT_LUA
from vinom.cluster.settings import DEFAULT_PLACEMENT, positive
from vinom.cluster.watch import guarded, watch_key
from vinom.match import HOST_CRASHED

# The realm of a host or lobby given no --realm, and of a record written without one.
DEFAULT_REALM = "default"


def presence_channel(redis: RedisClient, host_id: str) -> str:
    """The host's presence channel: it carries nothing, its subscriber count is the news."""
    return redis.key("presence", "host", host_id)


def _port_range(instance: HostRecord, attribute: Any, ports: tuple[int, int]) -> None:
    first, last = ports
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"ports must be (first, last) with 1 <= first <= last <= 65535: {ports}")


def _free_within_capacity(instance: HostRecord, attribute: Any, free: int) -> None:
    if not 0 <= free <= instance.capacity:
        raise ValueError(f"free must be from 0 to the capacity {instance.capacity}: {free}")


@frozen
class HostRecord:
    """One game host as it last announced itself: UDP `ports` (first, last) on `public_host`,
    matches it can run (`capacity`) and take now (`free`), `updated_at` on its own clock."""

    host_id: str = field(validator=validators.min_len(1))
    public_host: str = field(validator=validators.min_len(1))
    ports: tuple[int, int] = field(validator=_port_range)
    capacity: int = field(validator=validators.ge(0))
    free: int = field(validator=_free_within_capacity)
    updated_at: float
    game_url: str | None = None
    realm: str = field(default=DEFAULT_REALM, validator=validators.min_len(1))
    # Seconds since its last heartbeat, on the registry's clock: not announced, not compared.
    silent_for: float = field(default=0.0, eq=False)


def least_loaded_first(records: Iterable[HostRecord]) -> list[HostRecord]:
    """Most free capacity first; ties by host id, so every process sees the same order."""
    return sorted(records, key=lambda record: (-record.free, record.host_id))


class IHostRegistry(Interface):
    """Live game hosts; every method returns a Deferred."""

    def register(record: HostRecord, ttl: float, matches: Sequence[str] = ()) -> Deferred[None]:
        """Announce `record`, live for `ttl` seconds (ValueError unless positive); `matches`
        (those it runs) are its matches again if it was not registered (paused, or data lost)."""

    def unregister(host_id: str) -> Deferred[None]:
        """The host is gone now (no error if unknown): for good at once with no match left,
        else departed as if its TTL ran out."""

    def live_hosts() -> Deferred[list[HostRecord]]:
        """Every live host, `least_loaded_first`, each with its `HostRecord.silent_for`."""

    def claim_departed() -> Deferred[list[str]]:
        """Departed hosts not claimed yet, each to exactly one caller in any process (which
        ends what it left); held back a while after Redis was away (vinom.cluster.watch)."""

    def departed(host_id: str) -> Deferred[bool]:
        """Whether the host is gone for good: neither live nor waiting to be claimed."""

    def get(host_id: str) -> Deferred[HostRecord | None]:
        """The host's record if it is live, else None."""


def check_ttl(ttl: float) -> None:
    """Raises ValueError unless `ttl` is positive (`IHostRegistry.register`)."""
    if not ttl > 0:
        raise ValueError(f"a host's TTL must be positive, not {ttl!r}")


# A host registering while its key is missing puts its matches back in the same call, so
# whoever sees it registered sees what it runs (vinom.cluster.placement). The index lives
# as long as the longest-lived key it leads to: hosts that all stopped leave nothing.
_REGISTER = """
watch(KEYS[4])
local ttl = tonumber(ARGV[2])
if #ARGV > 5 and redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 6, #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[5])
local keep = ttl
if redis.call('EXISTS', KEYS[3]) == 1 then
  keep = math.max(ttl, tonumber(ARGV[4]))
  redis.call('PEXPIRE', KEYS[3], keep)
end
if redis.call('PTTL', KEYS[2]) < keep then redis.call('PEXPIRE', KEYS[2], keep) end
return 1
"""

# Each live host's record and the milliseconds left of its TTL, in one step.
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

# Claims each departed host (SREM in one script: exactly one caller) and ends its matches. The
# followers stay for `LATE_END_FOR`: a host cut off from Redis comes back with the ends it saw.
_CLAIM_DEPARTED = (
    TO_FOLLOWERS_LUA
    + PLACEMENT_LUA
    + """
if not watch(KEYS[1]) then return {} end
local claimed = {}
local n = (#KEYS - 2) / 2
for i = 3, n + 2 do
  local host_id = ARGV[i + 4]
  if redis.call('EXISTS', KEYS[i]) == 0
      and (redis.call('EXISTS', KEYS[i + n]) == 0
           or redis.call('PUBSUB', 'NUMSUB', ARGV[i + 4 + n])[2] == 0)
      and redis.call('SREM', KEYS[2], host_id) == 1 then
    local matches_key = ARGV[1] .. host_id
    local match_ids = redis.call('SMEMBERS', matches_key)
    for _, match_id in ipairs(match_ids) do
      local followers = ARGV[3] .. match_id
      local message = cjson.encode({
        event = 'ended', match_id = match_id, host_id = host_id,
        outcome = {match_id = match_id, phase = 'aborted', reason = ARGV[4]}})
      remove_placement(ARGV[5], match_id, ARGV[6])
      to_followers(followers, ARGV[2], message)
      -- Kept for the host's own end, should it come back with one (`_END`).
      if redis.call('EXISTS', followers) == 1 then
        local crashed = ARGV[5] .. 'crashed:' .. match_id
        redis.call('RENAME', followers, crashed)
        redis.call('PEXPIRE', crashed, LATE_END_MS)
      end
    end
    redis.call('DEL', matches_key)
    claimed[#claimed + 1] = host_id
    claimed[#claimed + 1] = #match_ids
  end
end
return claimed
"""
).replace("LATE_END_MS", str(milliseconds(LATE_END_FOR)))

# A host leaving with no match left (each end announced) leaves the index: nothing to claim.
_UNREGISTER = Script("""
redis.call('DEL', KEYS[1], KEYS[4])
if redis.call('SCARD', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
""")

_DEPARTED = Script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
return 1
""")


@implementer(IHostRegistry)
@define
class RedisHostRegistry:
    """Hosts in Redis: a key per host, an index set, and a heard key lapsing `stall_grace`
    after the last heartbeat (Redis's clock: no process's clock matters, nothing to clean)."""

    log = Logger()

    redis: RedisClient
    # How long a host's matches outlive its last heartbeat, for the claimer.
    matches_ttl: float = field(default=DEFAULT_PLACEMENT.key_ttl, validator=positive)
    # How long a host whose key lapsed with its presence connection open is left be.
    stall_grace: float = field(default=DEFAULT_PLACEMENT.stall_grace, validator=positive)
    # Unbroken watch before a missing host is dead: a full TTL and heartbeat to come back.
    settle: float = field(default=DEFAULT_PLACEMENT.host_ttl + DEFAULT_PLACEMENT.heartbeat_every,
                          validator=validators.ge(0))  # fmt: skip
    _register_script: Script = field(init=False)
    _claim_script: Script = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._register_script = guarded(_REGISTER, self.settle)
        self._claim_script = guarded(_CLAIM_DEPARTED, self.settle)

    @property
    def _watch_key(self) -> str:
        return watch_key(self.redis.settings.key_prefix)

    def _host_key(self, host_id: str) -> str:
        return self._keys.host(host_id)

    def _heard_key(self, host_id: str) -> str:
        return self.redis.key("host-heard", host_id)

    @property
    def _index_key(self) -> str:
        return self._keys.hosts

    @property
    def _keys(self) -> PlacementKeys:
        return PlacementKeys(self.redis.settings.key_prefix)

    def register(
        self, record: HostRecord, ttl: float, matches: Sequence[str] = ()
    ) -> Deferred[None]:
        check_ttl(ttl)
        ttl_ms = milliseconds(ttl)
        keys = [self._host_key(record.host_id), self._index_key,
                self._keys.host_matches(record.host_id), self._watch_key,
                self._heard_key(record.host_id)]  # fmt: skip
        args = [encode_host(record, ttl_ms), ttl_ms, record.host_id, milliseconds(self.matches_ttl),
                milliseconds(self.stall_grace), *matches]  # fmt: skip
        d = self.redis.run(self._register_script, keys, args)
        return d.addCallback(lambda _: None)

    def unregister(self, host_id: str) -> Deferred[None]:
        # Its heard key goes too: it is gone, not paused.
        keys = [self._host_key(host_id), self._index_key, self._keys.host_matches(host_id),
                self._heard_key(host_id)]  # fmt: skip
        d = self.redis.run(_UNREGISTER, keys, [host_id])
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
        # Run with no host indexed too: the call renews the watch.
        ids = await self._indexed()
        keys = [self._watch_key, self._index_key, *(self._host_key(i) for i in ids),
                *(self._heard_key(i) for i in ids)]  # fmt: skip
        args = [self._keys.host_matches(""), self._keys.streams, self._keys.followers(""),
                HOST_CRASHED, self._keys.prefix, milliseconds(DEFAULT_PLAYER_TTL), *ids,
                *(presence_channel(self.redis, i) for i in ids)]  # fmt: skip
        claimed = list(await self.redis.run(self._claim_script, keys, args) or ())
        for host_id, ended in zip(claimed[::2], claimed[1::2], strict=True):
            if ended:
                self.log.warn("game host {host_id} left the registry: {ended} of its "
                              "matches ended ({reason})", host_id=host_id, ended=ended,
                              reason=HOST_CRASHED)  # fmt: skip
            else:
                self.log.info("game host {host_id} left the registry with no match "
                              "running", host_id=host_id)  # fmt: skip
        return [str(host_id) for host_id in claimed[::2]]

    def departed(self, host_id: str) -> Deferred[bool]:
        keys = [self._host_key(host_id), self._index_key]
        return self.redis.run(_DEPARTED, keys, [host_id]).addCallback(lambda gone: gone == 1)


def encode_host(record: HostRecord, ttl_ms: int | None = None) -> str:
    """The record as stored, with the TTL it was registered with (`decode_live`)."""
    data: dict[str, Any] = {
        "host_id": record.host_id, "public_host": record.public_host, "ports": list(record.ports),
        "capacity": record.capacity, "free": record.free, "updated_at": record.updated_at,
        "game_url": record.game_url, "realm": record.realm,
    }  # fmt: skip
    if ttl_ms is not None:
        data["ttl_ms"] = ttl_ms
    return json.dumps(data)


def decode_host(text: str) -> HostRecord:
    try:
        data = json.loads(text)
        first, last = data["ports"]
        return HostRecord(
            str(data["host_id"]), str(data["public_host"]), (int(first), int(last)),
            int(data["capacity"]), int(data["free"]), float(data["updated_at"]),
            None if data.get("game_url") is None else str(data["game_url"]),
            str(data.get("realm") or DEFAULT_REALM),
        )  # fmt: skip
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
