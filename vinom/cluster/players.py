"""The Redis player store: players and placements shared by every lobby process.

What one lobby saves, every lobby on the same Redis reads, so a player can
reconnect through any of them. The keys, their contents and their lifetimes
are listed in docs/scaling.md, "Redis keys"; in short (with the default
prefix `vinom:`):

- `vinom:player:<player_id>`: the player record (JSON), expiring `player_ttl`
  after it is saved, and never before the player's current match's placement;
- `vinom:match:<match_id>`: the placement (JSON), expiring after `placement_ttl`;
- `vinom:player-match:<player_id>`: the id of the player's current match,
  with the placement's lifetime;
- `vinom:match-ended:<match_id>`: `1` once the placed match has ended (its
  host keeps its room a little longer), with what is left of the placement's
  lifetime, removed with it.

The TTLs are a safety net for records a crashed lobby can no longer remove;
a lobby that runs removes them itself. Every call fails with
`vinom.cluster.client.BackendUnavailable` if Redis is down or silent past its timeout;
`save_player` (a `hello`) then saves nothing, even if Redis runs it later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred
from zope.interface import implementer

from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.clock import TOO_LATE_LUA
from vinom.cluster.settings import positive
from vinom.errors import BackendUnavailable
from vinom.identity import hash_secret, new_secret
from vinom.match import match_from_json, match_to_json
from vinom.protocol.address import HostAddress
from vinom.store.interfaces import IPlayerStore, MatchPlacement, PlayerRecord

DEFAULT_PLAYER_TTL = 12 * 3600.0
DEFAULT_PLACEMENT_TTL = 24 * 3600.0

# KEYS: the record, the player's current-match pointer. ARGV: the record, its TTL (ms),
# the deadline (ms on Redis's clock: vinom.cluster.clock). A player record outlives its
# player's current placement (reconnecting needs both). Past the deadline (the lobby
# has answered `unavailable`) nothing is saved: 0.
_SAVE_PLAYER = Script(
    TOO_LATE_LUA
    + """
if too_late(ARGV[3]) then return 0 end
local ttl = tonumber(ARGV[2])
local placed = redis.call('PTTL', KEYS[2])
if placed > ttl then ttl = placed end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return 1
"""
)

# Lua, shared with the game host's scripts (vinom.cluster.channel, vinom.cluster.hosts),
# which save a placement as the host places its match and remove it as it ends, so that
# one writer does each, whatever the number of lobbies following the match.
# `save_placement`: the placement (`text`, its JSON) under `<prefix>match:<id>` and each
# player's current-match pointer, for `ttl` ms; a player record outlives them.
# `remove_placement`: the placement goes, with each pointer that still names it (its
# player may be in a newer match by now); a player whose match ended gets a fresh
# player TTL (`player_ttl`, ms).
PLACEMENT_LUA = """
local function save_placement(prefix, text, ttl)
  local placement = cjson.decode(text)
  local match_id = placement['match']['match_id']
  redis.call('SET', prefix .. 'match:' .. match_id, text, 'PX', ttl)
  for _, ticket in ipairs(placement['match']['players']) do
    local player_id = ticket['player_id']
    redis.call('SET', prefix .. 'player-match:' .. player_id, match_id, 'PX', ttl)
    local record = prefix .. 'player:' .. player_id
    local left = redis.call('PTTL', record)
    if left >= 0 and left < tonumber(ttl) then redis.call('PEXPIRE', record, ttl) end
  end
end
local function remove_placement(prefix, match_id, player_ttl)
  local key = prefix .. 'match:' .. match_id
  local text = redis.call('GET', key)
  if not text then return end
  for _, ticket in ipairs(cjson.decode(text)['match']['players']) do
    local player_id = ticket['player_id']
    local pointer = prefix .. 'player-match:' .. player_id
    if redis.call('GET', pointer) == match_id then
      redis.call('DEL', pointer)
      local record = prefix .. 'player:' .. player_id
      if redis.call('PTTL', record) >= 0 then redis.call('PEXPIRE', record, player_ttl) end
    end
  end
  redis.call('DEL', key, prefix .. 'match-ended:' .. match_id)
end
"""

# ARGV: the key prefix, the placement, its TTL (ms).
_SAVE_PLACEMENT = Script(PLACEMENT_LUA + """
save_placement(ARGV[1], ARGV[2], ARGV[3])
return 1
""")

# ARGV: the key prefix, the match id, the player TTL (ms), then the ids of the players
# to forget.
_REMOVE_PLACEMENT = Script(PLACEMENT_LUA + """
remove_placement(ARGV[1], ARGV[2], ARGV[3])
for i = 4, #ARGV do redis.call('DEL', ARGV[1] .. 'player:' .. ARGV[i]) end
return 1
""")


# KEYS: the placement, its ended mark. The mark lives as long as the placement has left.
MARK_ENDED = Script("""
local left = redis.call('PTTL', KEYS[1])
if left > 0 then redis.call('SET', KEYS[2], '1', 'PX', left) end
return 1
""")

# KEYS: the placement, its ended mark: the placement's JSON and 1 if ended (0 if not),
# or nil.
_GET_PLACEMENT = Script("""
local text = redis.call('GET', KEYS[1])
if not text then return false end
return {text, redis.call('EXISTS', KEYS[2])}
""")


def ended_keys(redis: RedisClient, match_id: str) -> list[str]:
    """The keys of a placement and of its ended mark (`MARK_ENDED`)."""
    return [redis.key("match", match_id), redis.key("match-ended", match_id)]


# KEYS: the player record. ARGV: what to answer if there is none (`UNKNOWN_PLAYER_TEXT`).
# A lookup of an unknown id then reads, sends and decodes a record as one of a known id
# does: a `reconnect` takes as long either way, and its timing tells no one which ids
# exist (docs/lobby.md).
_GET_PLAYER = Script("""
local text = redis.call('GET', KEYS[1])
if text then return text end
return ARGV[1]
""")


@implementer(IPlayerStore)
@define
class RedisPlayerStore:
    """Players and placements in Redis, behind `IPlayerStore`, shared by every lobby
    on it; TTLs in seconds."""

    redis: RedisClient
    player_ttl: float = field(default=DEFAULT_PLAYER_TTL, validator=positive)
    placement_ttl: float = field(default=DEFAULT_PLACEMENT_TTL, validator=positive)
    # How a record's text is read: a parameter so that a test can watch the work
    # `get_player` does for known and unknown ids alike.
    decode: Callable[[str, str], PlayerRecord] = field(
        default=lambda text, key: decode_player(text, key)
    )

    @property
    def _player_ttl_ms(self) -> int:
        return milliseconds(self.player_ttl)

    @property
    def _placement_ttl_ms(self) -> int:
        return milliseconds(self.placement_ttl)

    def _player_key(self, player_id: str) -> str:
        return self.redis.key("player", player_id)

    def _match_key(self, match_id: str) -> str:
        return self.redis.key("match", match_id)

    def _pointer_key(self, player_id: str) -> str:
        return self.redis.key("player-match", player_id)

    def save_player(self, record: PlayerRecord) -> Deferred[None]:
        keys = [self._player_key(record.player_id), self._pointer_key(record.player_id)]
        args = [encode_player(record), self._player_ttl_ms, self.redis.deadline()]

        def saved(done: object) -> None:
            if done == 0:
                raise BackendUnavailable("saving a player: Redis ran it after its deadline")

        d = self.redis.run(_SAVE_PLAYER, keys, args)
        return d.addCallback(saved)

    def get_player(self, player_id: str) -> Deferred[PlayerRecord | None]:
        """The record, or None; an unknown id costs what a known one does (`_GET_PLAYER`)."""
        key = self._player_key(player_id)

        def found(text: str) -> PlayerRecord | None:
            record = self.decode(text, key)
            return None if text == UNKNOWN_PLAYER_TEXT else record

        return self.redis.run(_GET_PLAYER, [key], [UNKNOWN_PLAYER_TEXT]).addCallback(found)

    def remove_player(self, player_id: str) -> Deferred[None]:
        d = self.redis.bounded(self.redis.handler.delete(self._player_key(player_id)))
        return d.addCallback(lambda _: None)

    def save_placement(self, placement: MatchPlacement) -> Deferred[None]:
        args = [self.redis.key(""), encode_placement(placement), self._placement_ttl_ms]
        d = self.redis.run(_SAVE_PLACEMENT, [], args)
        return d.addCallback(lambda _: None)

    def get_placement(self, match_id: str) -> Deferred[MatchPlacement | None]:
        keys = ended_keys(self.redis, match_id)

        def read(found: list[Any] | None) -> MatchPlacement | None:
            if not found:
                return None
            text, ended = found
            return decode_placement(text, keys[0], ended=int(ended) == 1)

        return self.redis.run(_GET_PLACEMENT, keys, []).addCallback(read)

    def placement_ended(self, match_id: str) -> Deferred[None]:
        d = self.redis.run(MARK_ENDED, ended_keys(self.redis, match_id), [])
        return d.addCallback(lambda _: None)

    def placement_for_player(self, player_id: str) -> Deferred[MatchPlacement | None]:
        def found(match_id: str | None) -> Deferred[MatchPlacement | None] | None:
            # A pointer whose placement is gone (removed, expired) leads to nothing.
            return None if match_id is None else self.get_placement(match_id)

        d = self.redis.bounded(self.redis.handler.get(self._pointer_key(player_id)))
        return d.addCallback(found)

    def remove_placement(self, match_id: str, forget: Iterable[str] = ()) -> Deferred[None]:
        args = [self.redis.key(""), match_id, self._player_ttl_ms, *forget]
        d = self.redis.run(_REMOVE_PLACEMENT, [], args)
        return d.addCallback(lambda _: None)


def encode_player(record: PlayerRecord) -> str:
    return json.dumps(
        {
            "player_id": record.player_id,
            "name": record.name,
            "secret_hash": record.secret_hash,
            "created_at": record.created_at,
        }
    )


def decode_player(text: str, key: str) -> PlayerRecord:
    try:
        data = json.loads(text)
        return PlayerRecord(
            str(data["player_id"]),
            str(data["name"]),
            str(data["secret_hash"]),
            float(data["created_at"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unreadable player record at Redis key {key!r}: {error!r}") from None


# What `get_player` reads for an unknown id: a record of a real one's shape and size
# (an id, an 8-letter name, a SHA-256, a time) under an id no player has ("p-" and 16
# x's are not hex). Only the exact text means "unknown".
UNKNOWN_PLAYER_TEXT = encode_player(
    PlayerRecord("p-" + "x" * 16, "xxxxxxxx", hash_secret(new_secret()), 1_700_000_000.123456)
)


def encode_placement(placement: MatchPlacement) -> str:
    match = placement.match
    return json.dumps(
        {
            "match": match_to_json(match),
            "address": placement.address.to_json(),
            "placed_at": placement.placed_at,
        }
    )


def decode_placement(text: str | bytes, key: str, *, ended: bool = False) -> MatchPlacement:
    try:
        data = json.loads(text)
        match = data["match"]
        return MatchPlacement(
            match_from_json(match),
            HostAddress.from_json(data["address"]),
            float(data["placed_at"]),
            ended=ended,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unreadable placement at Redis key {key!r}: {error!r}") from None

