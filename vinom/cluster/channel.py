"""The placement channel's shared parts: its keys, its messages' host addresses, the
scripts that record a match's outcome and announce its end (vinom.cluster.placement
has the steps; `RemoteMatchHosting` there and `HostAgent` in vinom.cluster.agent are
its two ends).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred

from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.players import (
    DEFAULT_PLACEMENT_TTL,
    DEFAULT_PLAYER_TTL,
    PLACEMENT_LUA,
    encode_placement,
)
from vinom.cluster.settings import PlacementSettings
from vinom.protocol.address import HostAddress
from vinom.store.interfaces import MatchPlacement

# The lobbies that follow a match (`<prefix>lobbies:<match_id>`, a set) hear its
# placement events on their own channels (`<prefix>placements:<lobby_id>`): the
# lobbies that formed it or hold its players, as the match says (`lobbies`), written
# by the lobby that claims its placement. Lua: `to_followers` publishes a message to
# each (also used by vinom.cluster.hosts).
TO_FOLLOWERS_LUA = """
local function to_followers(key, channels, message)
  for _, lobby in ipairs(redis.call('SMEMBERS', key)) do
    redis.call('PUBLISH', channels .. lobby, message)
  end
end
"""

# How long the set of a match's followers is kept: as long as its placement record
# (vinom.cluster.players); its end deletes it.
FOLLOWERS_TTL = 24 * 3600.0

# KEYS: the match's outcome key, its followers. ARGV: the outcome (JSON), its TTL (ms),
# the channels' prefix. Records the outcome unless one is recorded already (the first
# decides) and, if it did, publishes it to the match's lobbies: one call. A failed
# match's followers are done with it.
_DECIDE = Script(
    TO_FOLLOWERS_LUA
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  to_followers(KEYS[2], ARGV[3], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
)


# KEYS: the match's outcome key, the host's matches, the host index, the match's
# followers. ARGV: the outcome (JSON), its TTL (ms), the channels' prefix, the match
# id, the TTL of the host's matches (ms), the key prefix, the placement record ('' for
# none) and its TTL (ms). `_DECIDE` for a host's `placed`: the match joins the host's
# matches in the same call, so that whoever claims the host's departure finds it
# (vinom.cluster.hosts; the index is kept at least as long), and its placement record is
# saved (vinom.cluster.players), where a `reconnect` through any lobby finds it: one
# writer per match, whatever the number of lobbies that follow it.
_DECIDE_PLACED = Script(
    TO_FOLLOWERS_LUA
    + PLACEMENT_LUA
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  local ttl = tonumber(ARGV[5])
  redis.call('SADD', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ttl)
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
  if ARGV[7] ~= '' then save_placement(ARGV[6], ARGV[7], ARGV[8]) end
  to_followers(KEYS[4], ARGV[3], ARGV[1])
  return 1
end
return 0
"""
)

# How long a match's end record (`PlacementKeys.ended`) is kept. A lobby reads it when
# it subscribes to its channel again (a published `ended` reaches only the lobbies
# subscribed at that moment: one cut off, or following a Sentinel failover, misses it),
# so it outlasts any outage a lobby is expected to come back from; one small key per
# match ended in the last hour.
ENDED_TTL = 3600.0

# KEYS: the host's matches, the match's followers, its end record. ARGV: the match id,
# the channels' prefix, the `ended` message, the record's TTL (ms), the key prefix, the
# player TTL (ms). The match leaves the host's matches as its end is recorded and
# published to its lobbies, which are then done with it, and its placement record goes
# (vinom.cluster.players): one call. The end record is what a lobby that missed the
# message reads (`RemoteMatchHosting.catch_up`).
_END = Script(
    TO_FOLLOWERS_LUA
    + PLACEMENT_LUA
    + """
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
remove_placement(ARGV[5], ARGV[1], ARGV[6])
to_followers(KEYS[2], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""
)


@frozen
class PlacementKeys:
    """The Redis keys and channel of the placement channel under one prefix."""

    prefix: str

    @property
    def channels(self) -> str:
        """The prefix of the lobbies' channels (`channel`)."""
        return self.prefix + "placements:"

    def channel(self, lobby_id: str) -> str:
        """A lobby's channel: the placement events of the matches it follows."""
        return self.channels + lobby_id

    def followers(self, match_id: str) -> str:
        """The ids of the lobbies that follow a match (a set)."""
        return f"{self.prefix}lobbies:{match_id}"

    def requests(self, host_id: str) -> str:
        return f"{self.prefix}place:{host_id}"

    def placer(self, match_id: str) -> str:
        return f"{self.prefix}placer:{match_id}"

    def claim(self, match_id: str, attempt: int) -> str:
        return f"{self.prefix}claim:{match_id}:{attempt}"

    def outcome(self, match_id: str) -> str:
        return f"{self.prefix}outcome:{match_id}"

    def ended(self, match_id: str) -> str:
        """A match's end record: its `ended` message, kept `ENDED_TTL`."""
        return f"{self.prefix}ended:{match_id}"

    def host_matches(self, host_id: str) -> str:
        """The ids of the matches placed on a host and not ended (a set)."""
        return f"{self.prefix}host-matches:{host_id}"

    @property
    def hosts(self) -> str:
        """The host registry's index (vinom.cluster.hosts)."""
        return f"{self.prefix}hosts"


def address_json(address: HostAddress) -> dict[str, Any]:
    """A host address as the channel's messages carry it."""
    data: dict[str, Any] = {"host": address.host, "port": address.port}
    if address.game_url is not None:
        data["game_url"] = address.game_url
    return data


def address_from(data: Mapping[str, Any]) -> HostAddress:
    """The host address of a channel message (`address_json`)."""
    game_url = data.get("game_url")
    return HostAddress(
        str(data["host"]), int(data["port"]), game_url=None if game_url is None else str(game_url)
    )


def decide(redis: RedisClient, keys: PlacementKeys, settings: PlacementSettings,
           outcome: Mapping[str, Any], placement: MatchPlacement | None = None,
           ) -> Deferred[bool]:  # fmt: skip
    """Record a match's outcome (`placed` or `failed`) and publish it to the lobbies that
    follow the match, unless an outcome is recorded already; whether this one was. A
    `placed` one saves `placement` in the player store's keys in the same call."""
    text = json.dumps(outcome, separators=(",", ":"))
    match_id = str(outcome["match_id"])
    ttl = milliseconds(settings.key_ttl)
    if outcome["event"] == "placed":
        index = [keys.outcome(match_id), keys.host_matches(str(outcome["host_id"])), keys.hosts,
                 keys.followers(match_id)]  # fmt: skip
        record = "" if placement is None else encode_placement(placement)
        d = redis.run(_DECIDE_PLACED, index, [text, ttl, keys.channels, match_id, ttl,
                                              keys.prefix, record,
                                              milliseconds(DEFAULT_PLACEMENT_TTL)])  # fmt: skip
    else:
        index = [keys.outcome(match_id), keys.followers(match_id)]
        d = redis.run(_DECIDE, index, [text, ttl, keys.channels])
    return d.addCallback(lambda recorded: recorded == 1)


def announce_end(redis: RedisClient, keys: PlacementKeys, host_id: str,
                 message: Mapping[str, Any]) -> Deferred[None]:  # fmt: skip
    """Record a match's `ended` and publish it to its lobbies as its host, taking it out
    of the host's matches and removing its placement record. Saying it again changes
    nothing for a lobby that heard it."""
    text = json.dumps(message, separators=(",", ":"))
    match_id = str(message["match_id"])
    index = [keys.host_matches(host_id), keys.followers(match_id), keys.ended(match_id)]
    d = redis.run(_END, index, [match_id, keys.channels, text, milliseconds(ENDED_TTL),
                                keys.prefix, milliseconds(DEFAULT_PLAYER_TTL)])  # fmt: skip
    return d.addCallback(lambda _: None)
