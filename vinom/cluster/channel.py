"""The placement channel's shared parts: its keys and the scripts that follow a match,
take its request, record its outcome and announce its end. `RemoteMatchHosting`
(vinom.cluster.placement) and `HostAgent` (vinom.cluster.agent) are its two ends;
docs/scaling.md ("Placing matches on game hosts", "Redis keys") has every step and key.

Each lobby hears the events of the matches it follows on a stream of its own,
`<prefix>placements:<lobby_id>`, read through a consumer group: unlike a pub/sub message,
an event waits there while the lobby is cut off, and the group's place is replicated, so
a lobby that reconnects or follows a Sentinel failover reads on from where it was.
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
from vinom.store.interfaces import MatchPlacement

# How long a lobby's stream keeps an event (`MINID ~`): by time, not count, since a lobby
# that did not read for a while must read every event of it; an `ended` lost is never
# said again (the lobby would count its match as running for good).
EVENTS_KEPT_FOR = 120.0

# How long a lobby's stream lives after its last event (a dead lobby's goes then).
EVENTS_TTL = 3600.0

# Lua: `tell` adds a message (JSON, field `m`) to one lobby's stream, `to_followers` to
# that of each lobby following a match (`<prefix>lobbies:<match_id>`: the lobbies of its
# players, and any a player reconnected through).
TO_FOLLOWERS_LUA = f"""
local function tell(stream, message)
  local id = redis.call('XADD', stream, '*', 'm', message)
  local added = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', stream, 'MINID', '~',
             string.format('%d', added - {milliseconds(EVENTS_KEPT_FOR)}))
  redis.call('PEXPIRE', stream, {milliseconds(EVENTS_TTL)})
end
local function to_followers(key, streams, message)
  for _, lobby in ipairs(redis.call('SMEMBERS', key)) do tell(streams .. lobby, message) end
end
"""

# The ranked results stream's bound (`MAXLEN ~`, vinom.cluster.ranked): a day of a busy
# cluster's ranked matches that no lobby could rate.
RESULTS_KEPT = 100_000

# Lua: a ranked match's end ('' for none) added to the ranked results stream, if a lobby
# that rates matches made it.
ADD_RESULT_LUA = f"""
local function add_result(stream, match_id, result)
  if result ~= '' and redis.call('EXISTS', stream) == 1 then
    redis.call('XADD', stream, 'MAXLEN', '~', {RESULTS_KEPT}, '*', 'm', match_id, 'r', result)
  end
end
"""

# How long the followers of a match ended `host_crashed` by its host's departure are kept
# for the host's own end, which a host cut off from Redis (not from its players) tells
# once it is back, and which its lobbies take over the `host_crashed`.
LATE_END_FOR = EVENTS_TTL

# A realm's stream keeps its requests this many times `place_timeout` (`MINID ~`: by time,
# since a cap on their number would drop the oldest still waiting in a flood).
REQUESTS_KEPT_FOR = 2

# KEYS: a stream. ARGV: the group, the TTL (ms). The group, reading from the stream's
# start (what was added before a group lost with its stream), and the TTL if none.
OPEN_GROUP = Script("""
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""")

# How long a match's followers are kept (as its placement record); its end deletes them.
FOLLOWERS_TTL = 24 * 3600.0

# The `failed` reason of a match a player left before it was placed.
WITHDRAWN = "withdrawn"

# KEYS: the match's followers, outcome, realm's request stream and `requested` marker,
# the lobby's stream. ARGV: the lobby id, the followers' TTL, the request, the stream's
# and marker's TTL, how long the stream keeps a request (ms), the match id, the `failed`
# told for a match placed and ended already. The lobby follows the match; an outcome
# recorded already is told to its stream at once (a placed match is followed for its
# end; placed and without followers, it ended). The first to follow, or the first after
# a failover lost the marker, adds the request in the same call: no outcome is published
# in between, and a lobby that died at once leaves it to the next lobby of its players.
FOLLOW = Script(
    TO_FOLLOWERS_LUA
    + """
local outcome = redis.call('GET', KEYS[2])
if outcome then
  if cjson.decode(outcome)['event'] == 'placed' then
    if redis.call('EXISTS', KEYS[1]) == 0 then outcome = ARGV[7]
    else redis.call('SADD', KEYS[1], ARGV[1]) end
  end
  tell(KEYS[5], outcome)
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('SET', KEYS[4], '1', 'PX', ARGV[4], 'NX') then
  local id = redis.call('XADD', KEYS[3], '*', 'r', ARGV[3], 'm', ARGV[6])
  local added = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', KEYS[3], 'MINID', '~', string.format('%d', added - tonumber(ARGV[5])))
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return 1
"""
)

# Lua: whether a host is to host a request it read or claimed (`entry`: {id, fields}):
# not if an outcome is recorded for its match, nor if it is older than `place_timeout`
# (ms, by Redis's clock: every lobby gave it up); such a request is acknowledged.
# ARGV[1] is the group.
TAKEABLE_LUA = """
redis.replicate_commands()
local t = redis.call('TIME')
local function takeable(stream, entry, outcomes, place_timeout)
  local fields, match_id = entry[2], nil
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'm' then match_id = fields[i + 1] end
  end
  local at = tonumber(string.match(entry[1], '^(%d+)'))
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now - at <= tonumber(place_timeout) and not (match_id and
      redis.call('EXISTS', outcomes .. match_id) == 1) then return true end
  redis.call('XACK', stream, ARGV[1], entry[1])
  return false
end
"""

# KEYS: a realm's request stream. ARGV: the group, this host's id, how many, the outcome
# keys' prefix, `place_timeout` (ms). The requests no host read yet that are to be hosted.
READ = Script(TAKEABLE_LUA + """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[1], '>')
local taken = {}
for _, entry in ipairs(reply and reply[1][2] or {}) do
  if takeable(KEYS[1], entry, ARGV[4], ARGV[5]) then table.insert(taken, entry) end
end
return taken
""")

# KEYS: a realm's request stream, the guard's key (vinom.cluster.watch). ARGV: the
# group, this host's id, `claim_after` (ms), the hosts' and the outcomes' key prefixes,
# `place_timeout` (ms). A request read and not acknowledged for `claim_after`, claimed
# (`XCLAIM`) if this host read it or its reader is dead: its registration gone while
# Redis has been watched for a host's TTL and heartbeat. A registered reader is alive
# (slow, or a failover lost its `placed`, which it says again): taking its request would
# send the match's players to two addresses. Returns the claimed entry to host ({id, {}}
# for one trimmed away), or nothing. First, a dead reader holding nothing leaves the
# group, which so keeps no consumer per host process ever started.
CLAIM_SOURCE = TAKEABLE_LUA + """
local judged = watch(KEYS[2])
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', 16)
if judged then
  for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local name, held
    for j = 1, #consumer, 2 do
      if consumer[j] == 'name' then name = consumer[j + 1] end
      if consumer[j] == 'pending' then held = consumer[j + 1] end
    end
    if held == 0 and name ~= ARGV[2] and redis.call('EXISTS', ARGV[4] .. name) == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    end
  end
end
for _, entry in ipairs(pending) do
  local reader = entry[2]
  if reader == ARGV[2] or (judged and redis.call('EXISTS', ARGV[4] .. reader) == 0) then
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], entry[1])
    if not claimed[1] then return {entry[1], {}} end
    if takeable(KEYS[1], claimed[1], ARGV[5], ARGV[6]) then return claimed[1] end
  end
end
return false
"""

# KEYS: request streams. ARGV: the group. Where a host waits for each stream's next
# request from (`XREAD ... BLOCK`): after the last the group was given, so that one added
# between the read that found none and the wait wakes it at once ('$' would not).
WAIT_FROM = Script("""
local ids = {}
for i, key in ipairs(KEYS) do
  ids[i] = '$'
  if redis.call('EXISTS', KEYS[i]) == 1 then
    for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local name, last
      for j = 1, #group, 2 do
        if group[j] == 'name' then name = group[j + 1] end
        if group[j] == 'last-delivered-id' then last = group[j + 1] end
      end
      if name == ARGV[1] then ids[i] = last end
    end
  end
end
return ids
""")

# KEYS: a realm's request stream. ARGV: the group, the entry id, the request, the TTL,
# the match id. A request a stopping host took, given back: added again and acknowledged.
GIVE_BACK = Script("""
redis.call('XADD', KEYS[1], '*', 'r', ARGV[3], 'm', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
""")

# KEYS: the match's outcome, followers[, the request's stream]. ARGV: the outcome, its
# TTL, the streams' prefix[, the request's entry id]. The outcome recorded unless one is
# (the first decides) and told to the followers, who are then done with a failed match;
# the host's request acknowledged either way.
_DECIDE = Script(
    TO_FOLLOWERS_LUA
    + """
if KEYS[3] then redis.call('XACK', KEYS[3], 'hosts', ARGV[4]) end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  to_followers(KEYS[2], ARGV[3], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
)


# KEYS: the match's outcome, the host's matches, the host index, the followers[, the
# request's stream]. ARGV: the outcome, its TTL, the streams' prefix, the match id, the
# host's matches' TTL, the key prefix, the placement record ('' for none) and its TTL[,
# the entry id]. `_DECIDE` for a host's `placed`: in the same call the match joins the
# host's matches (whoever claims the host's departure finds it) and its placement record
# is saved for a `reconnect` through any lobby: one writer per match.
_DECIDE_PLACED = Script(
    TO_FOLLOWERS_LUA
    + PLACEMENT_LUA
    + """
if KEYS[5] then redis.call('XACK', KEYS[5], 'hosts', ARGV[9]) end
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

# KEYS: the host's matches, the match's followers, those kept by the claim of the host's
# departure, the ranked results stream. ARGV: the match id, the streams' prefix, the
# `ended` message, the key prefix, the player TTL, the ranked result ('' for none). In
# one call the match leaves the host's matches, its end is told to its followers (and to
# those of a `host_crashed` end, which it replaces), its placement record goes, and a
# ranked match's end joins the ranked results stream.
_END = Script(
    TO_FOLLOWERS_LUA
    + PLACEMENT_LUA
    + ADD_RESULT_LUA
    + """
redis.call('SREM', KEYS[1], ARGV[1])
remove_placement(ARGV[4], ARGV[1], ARGV[5])
to_followers(KEYS[2], ARGV[2], ARGV[3])
to_followers(KEYS[3], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3])
add_result(KEYS[4], ARGV[1], ARGV[6] or '')
return 1
"""
)


@frozen
class PlacementKeys:
    """The Redis keys and channel of the placement channel under one prefix."""

    prefix: str

    @property
    def streams(self) -> str:
        """The prefix of the lobbies' streams (`events`)."""
        return self.prefix + "placements:"

    def events(self, lobby_id: str) -> str:
        """A lobby's stream: the placement events of the matches it follows."""
        return self.streams + lobby_id

    def followers(self, match_id: str) -> str:
        """The ids of the lobbies that follow a match (a set)."""
        return f"{self.prefix}lobbies:{match_id}"

    def crashed(self, match_id: str) -> str:
        """The followers of a match ended `host_crashed`, kept for its host's own end."""
        return f"{self.prefix}crashed:{match_id}"

    def requests(self, realm: str, relayed: bool = False) -> str:
        """A realm's placement requests (group `hosts`); `relayed`: those of lobbies with
        --relay, which only hosts announcing an IP address read."""
        return f"{self.prefix}place:{realm}{':relayed' if relayed else ''}"

    def requested(self, match_id: str) -> str:
        return f"{self.prefix}requested:{match_id}"

    def outcome(self, match_id: str) -> str:
        return f"{self.prefix}outcome:{match_id}"

    def host_matches(self, host_id: str) -> str:
        """The ids of the matches placed on a host and not ended (a set)."""
        return f"{self.prefix}host-matches:{host_id}"

    def host(self, host_id: str) -> str:
        """A live host's registration (vinom.cluster.hosts)."""
        return f"{self.prefix}host:{host_id}"

    @property
    def hosts(self) -> str:
        """The host registry's index (vinom.cluster.hosts)."""
        return f"{self.prefix}hosts"

    @property
    def results(self) -> str:
        """The ranked results stream (vinom.cluster.ranked; its consumer group: `lobbies`)."""
        return f"{self.prefix}ranked-results"


# KEYS: a match's host's registration, the host's matches, the followers. ARGV: the
# lobby id, the followers' TTL, the match id. After Redis lost its data, a lobby's
# running match: 1 if its host (registered again, its matches put back) runs it, and it
# is followed again; 0 if its registered host runs it no more (its end reached nobody);
# -1 if its host has not registered again.
RECHECK = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
""")


def stream_lost(error: object) -> bool:
    """Whether a failed stream read says Redis lost the stream or its group (to make
    again, not an outage): `NOGROUP`, or `UNBLOCKED` (Redis 7's answer to a read blocked
    on a stream deleted meanwhile)."""
    text = str(error)
    return "NOGROUP" in text or "UNBLOCKED" in text


def decide(redis: RedisClient, keys: PlacementKeys, settings: PlacementSettings,
           outcome: Mapping[str, Any], placement: MatchPlacement | None = None,
           ack: tuple[str, str] | None = None) -> Deferred[bool]:  # fmt: skip
    """Record a match's outcome (`placed` or `failed`) unless one is, and tell it to its
    followers; whether this one was. A `placed` saves `placement` in the same call;
    `ack` (a request's stream and entry id) is acknowledged either way."""
    text = json.dumps(outcome, separators=(",", ":"))
    match_id = str(outcome["match_id"])
    ttl = milliseconds(settings.key_ttl)
    acked = ([ack[0]], [ack[1]]) if ack is not None else ([], [])
    if outcome["event"] == "placed":
        index = [keys.outcome(match_id), keys.host_matches(str(outcome["host_id"])), keys.hosts,
                 keys.followers(match_id), *acked[0]]  # fmt: skip
        record = "" if placement is None else encode_placement(placement)
        d = redis.run(_DECIDE_PLACED, index, [text, ttl, keys.streams, match_id, ttl,
                                              keys.prefix, record,
                                              milliseconds(DEFAULT_PLACEMENT_TTL),
                                              *acked[1]])  # fmt: skip
    else:
        index = [keys.outcome(match_id), keys.followers(match_id), *acked[0]]
        d = redis.run(_DECIDE, index, [text, ttl, keys.streams, *acked[1]])
    return d.addCallback(lambda recorded: recorded == 1)


def withdraw(redis: RedisClient, keys: PlacementKeys, settings: PlacementSettings,
             match_id: str) -> Deferred[bool]:  # fmt: skip
    """A player of a match not placed yet left it: record it `failed` (`withdrawn`) unless
    an outcome is (`decide`), told to every lobby that follows it, and to one that follows
    it later (`FOLLOW`); whether this call did."""
    return decide(redis, keys, settings,
                  {"event": "failed", "match_id": match_id, "reason": WITHDRAWN})  # fmt: skip


def announce_end(redis: RedisClient, keys: PlacementKeys, host_id: str,
                 message: Mapping[str, Any], result: str = "") -> Deferred[None]:  # fmt: skip
    """Tell a match's `ended` to its lobbies as its host (`_END`; `result`: a ranked
    match's end). Said again, it changes nothing (a match id is rated once)."""
    text = json.dumps(message, separators=(",", ":"))
    match_id = str(message["match_id"])
    index = [keys.host_matches(host_id), keys.followers(match_id), keys.crashed(match_id),
             keys.results]  # fmt: skip
    d = redis.run(_END, index, [match_id, keys.streams, text, keys.prefix,
                                milliseconds(DEFAULT_PLAYER_TTL), result])  # fmt: skip
    return d.addCallback(lambda _: None)
