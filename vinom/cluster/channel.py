"""The placement channel's shared parts: its keys, its messages' host addresses, the
scripts that ask for a match's placement, record its outcome and announce its end
(vinom.cluster.placement has the steps; `RemoteMatchHosting` there and `HostAgent` in
vinom.cluster.agent are its two ends).

Each lobby hears the placement events of the matches it follows on a Redis stream of
its own, `<prefix>placements:<lobby_id>`, which it reads through a consumer group
(`XREADGROUP`): unlike a pub/sub message, an event waits in the stream while the lobby
is cut off from Redis, and the group's place in it is replicated with it, so a lobby
that reconnects, or follows a Sentinel failover, reads on from where it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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

# How long a lobby's stream keeps an event (`MINID ~`, by the ids' times, as each is
# added): a live lobby reads them within a second, and one that did not read for a
# while (a long pause, its connection dropped, a failover it follows) reads every event
# of that while, however many: a count would drop the oldest, and an `ended` lost is
# never said again (the lobby would count its match as running for good).
EVENTS_KEPT_FOR = 120.0

# How long a lobby's stream lives after its last event (a dead lobby's goes then).
EVENTS_TTL = 3600.0

# The lobbies that follow a match (`<prefix>lobbies:<match_id>`, a set) hear its
# placement events on their own streams (`<prefix>placements:<lobby_id>`): the
# lobbies holding its players (the match's `lobbies`) and any a player of it
# reconnected through, each added as it follows the match (`FOLLOW`, `adopt`). Lua:
# `tell` adds a message (JSON, as field `m`) to one lobby's stream, `to_followers` to
# each follower's (also used by vinom.cluster.hosts).
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
# cluster's ranked matches that no lobby could rate (every account database down). An
# end trimmed unrated is lost, and counted where it is found.
RESULTS_KEPT = 100_000

# Lua: a ranked match's end (`result`, vinom.cluster.ranked.encode_result; '' for none)
# added to the ranked results stream, if it exists (a lobby that rates matches made it).
ADD_RESULT_LUA = f"""
local function add_result(stream, match_id, result)
  if result ~= '' and redis.call('EXISTS', stream) == 1 then
    redis.call('XADD', stream, 'MAXLEN', '~', {RESULTS_KEPT}, '*', 'm', match_id, 'r', result)
  end
end
"""

# How long the followers of a match ended by its host's departure (`host_crashed`)
# are kept for the host's own end: a host cut off from Redis, not from its players,
# tells it once it is back (vinom.cluster.agent), and its lobbies take it over the
# `host_crashed` (vinom.cluster.placement).
LATE_END_FOR = EVENTS_TTL

# A realm's stream keeps its requests this many times `place_timeout` (`MINID ~`, by
# the ids' times): a request waits that long at most for a host with a free slot
# (older, every lobby gave it up), however many wait, as in a flood with every host
# full; a cap on their number would drop the oldest still waiting.
REQUESTS_KEPT_FOR = 2

# KEYS: a stream (a lobby's events, a realm's requests). ARGV: the consumer group's name,
# the stream's TTL (ms). The group, reading from the stream's start (what was added
# before it: a group lost with its stream, say), and the stream's TTL if it has none
# yet (made by this call).
OPEN_GROUP = Script("""
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""")

# What `FOLLOW` answers for a match placed and ended already.
ENDED = "ended"

# How long the set of a match's followers is kept: as long as its placement record
# (vinom.cluster.players); its end deletes it.
FOLLOWERS_TTL = 24 * 3600.0

# The reason of the `failed` outcome of a match whose players all left before it was placed.
WITHDRAWN = "withdrawn"

# KEYS: the match's followers, its outcome, its realm's request stream, its `requested`
# marker. ARGV: the lobby id, the followers' TTL (ms), the request, the TTL of the
# stream and marker (ms), how long the stream keeps a request (ms, `REQUESTS_KEPT_FOR`),
# the match id (the entry's field `m`, which `TAKEABLE_LUA` checks).
# The lobby follows the match (it hears its outcome on its stream from now on) unless an
# outcome is recorded already (returned: nothing to wait for); the first lobby to follow
# it, or the first after a failover lost the marker, adds the request: one call, so no
# outcome is published in between, and a lobby that heard the match and died at once
# leaves it to the next lobby of its players, with no claim to take over. A match placed
# already is followed still (the lobby hears its end as the others do) while it runs:
# its end deletes its followers, which the first follower made before any host could
# place it; placed and without followers, it ended, and `ENDED` is returned (its players
# are not sent there).
FOLLOW = Script(f"""
local outcome = redis.call('GET', KEYS[2])
if outcome then
  if cjson.decode(outcome)['event'] == 'placed' then
    if redis.call('EXISTS', KEYS[1]) == 0 then return '{ENDED}' end
    redis.call('SADD', KEYS[1], ARGV[1])
  end
  return outcome
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('SET', KEYS[4], '1', 'PX', ARGV[4], 'NX') then
  local id = redis.call('XADD', KEYS[3], '*', 'r', ARGV[3], 'm', ARGV[6])
  local added = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', KEYS[3], 'MINID', '~', string.format('%d', added - tonumber(ARGV[5])))
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return false
""")

# Lua: whether a host is to host a request it read or claimed (`entry`: {id, fields}):
# not if an outcome is recorded for its match (a lobby gave it up, another host placed
# it), nor if it is older than `place_timeout` (ms, by Redis's clock: every
# lobby has given it up); such a request is acknowledged. ARGV[1] is the group. An
# entry without field `m` (a lobby of the version before it, during a rolling upgrade)
# names its match in its request: else a match given up would be hosted, a copy.
TAKEABLE_LUA = """
redis.replicate_commands()
local t = redis.call('TIME')
local function takeable(stream, entry, outcomes, place_timeout)
  local fields, match_id, request = entry[2], nil, nil
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'm' then match_id = fields[i + 1] end
    if fields[i] == 'r' then request = fields[i + 1] end
  end
  if not match_id and request then
    local ok, decoded = pcall(cjson.decode, request)
    if ok and type(decoded) == 'table' and type(decoded['match']) == 'table'
        and type(decoded['match']['match_id']) == 'string' then
      match_id = decoded['match']['match_id']
    end
  end
  local at = tonumber(string.match(entry[1], '^(%d+)'))
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now - at <= tonumber(place_timeout) and not (match_id and
      redis.call('EXISTS', outcomes .. match_id) == 1) then return true end
  redis.call('XACK', stream, ARGV[1], entry[1])
  return false
end
"""

# KEYS: a realm's request stream. ARGV: the group, this host's id, how many, the prefix
# of the outcome keys, `place_timeout` (ms). The requests no host read yet, as many as
# asked (`XREADGROUP`), that are to be hosted (`TAKEABLE_LUA`): one call.
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
# group, this host's id, `claim_after` (ms), the prefix of the hosts' keys, the prefix
# of the outcome keys, `place_timeout` (ms). A request read and not acknowledged for
# `claim_after` (`XPENDING ... IDLE`), claimed (`XCLAIM`) by this host when it read it
# itself or its reader is dead: its registration gone while Redis has been watched for
# a host's TTL and heartbeat (`settle`). A reader still registered is alive (slow, or a
# failover lost its `placed` and acknowledgement, which it says again as it subscribes
# to the new master): taking its request would host the match twice, and the lobbies
# that heard its `placed` and those that hear the other host's would send their players
# to two addresses. The claimed entry that is to be hosted (`TAKEABLE_LUA`; {id, {}}
# for one trimmed away), or nothing. First, a dead reader holding nothing more (its
# requests claimed by a previous call) leaves the group (`XGROUP DELCONSUMER`): the
# group keeps no consumer per host process ever started. (A reader only paused holds
# nothing it could lose: its next read makes its consumer again.)
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

# KEYS: request streams. ARGV: the group. Where a host waits for the next request of
# each stream from (`XREAD ... BLOCK`): after the last the group was given, so that a
# request added between the host's read that found none and its wait wakes it at once
# (from `$`, it would wait out its block); `$` for a stream or group not made yet.
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

# KEYS: a realm's request stream. ARGV: the group, the entry id, the request, the
# stream's TTL (ms), the match id. A request a stopping host took and could not host,
# given back to the realm's other hosts: added again and acknowledged, in one call.
GIVE_BACK = Script("""
redis.call('XADD', KEYS[1], '*', 'r', ARGV[3], 'm', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
""")

# KEYS: the match's outcome key, its followers[, the request's stream]. ARGV: the
# outcome (JSON), its TTL (ms), the streams' prefix[, the request's entry id]. Records
# the outcome unless one is recorded already (the first decides) and, if it did,
# publishes it to the match's lobbies; a host acknowledges the request it read (group
# `hosts`) whichever outcome is recorded: one call. A failed match's followers are done
# with it.
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


# KEYS: the match's outcome key, its followers, the lobbies whose players of it all left
# (`<prefix>left:<match_id>`). ARGV: the `failed` outcome (JSON), its TTL (ms), the lobby
# id, the streams' prefix, then the ids of the other lobbies the match was published to
# (those holding its players, which follow it as they hear it). A lobby whose players of
# a match waiting for a host all left says so, and goes on following it; once every lobby
# that follows it, or that it was published to, has said so (nobody of it is connected to
# any lobby), it is recorded `failed` (`withdrawn`, unless an outcome is recorded) and
# told to its followers, so that no host takes it. While a lobby with a player of it
# still follows it, it waits on for them, as a match waits in one lobby while one of its
# players is connected.
_WITHDRAW = Script(
    TO_FOLLOWERS_LUA
    + """
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
for _, lobby in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('SISMEMBER', KEYS[3], lobby) == 0 then return 0 end
end
for i = 5, #ARGV do
  if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 0 then return 0 end
end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  to_followers(KEYS[2], ARGV[4], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
)


# KEYS: the match's outcome key, the host's matches, the host index, the match's
# followers[, the request's stream]. ARGV: the outcome (JSON), its TTL (ms), the
# streams' prefix, the match id, the TTL of the host's matches (ms), the key prefix, the
# placement record ('' for none) and its TTL (ms)[, the request's entry id]. `_DECIDE`
# for a host's `placed` (its request acknowledged the same way): the match joins the host's
# matches in the same call, so that whoever claims the host's departure finds it
# (vinom.cluster.hosts; the index is kept at least as long), and its placement record is
# saved (vinom.cluster.players), where a `reconnect` through any lobby finds it: one
# writer per match, whatever the number of lobbies that follow it.
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

# KEYS: the host's matches, the match's followers, the followers kept by the claim of
# the host's departure (`<prefix>crashed:<match_id>`, vinom.cluster.hosts), the ranked
# results stream. ARGV: the match id, the streams' prefix, the `ended` message, the key
# prefix, the player TTL (ms), the ranked result ('' for none). The match leaves the
# host's matches as its end is told to its lobbies, which are then done with it, its
# placement record goes (vinom.cluster.players), and a ranked match's end is added to
# the ranked results stream, whatever lobby follows it: one call. A host whose
# departure was claimed while it was only cut off from Redis tells its lobbies the end
# it saw all the same: they take it over their `host_crashed`.
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

    def left(self, match_id: str) -> str:
        """The lobbies whose players of a match waiting for a host all left (a set)."""
        return f"{self.prefix}left:{match_id}"

    def crashed(self, match_id: str) -> str:
        """The followers of a match its host's departure ended (`host_crashed`), kept
        for `LATE_END_FOR` for the host's own end (a set)."""
        return f"{self.prefix}crashed:{match_id}"

    def requests(self, realm: str, relayed: bool = False) -> str:
        """A realm's stream of placement requests (its hosts' consumer group: `hosts`);
        `relayed`: those of lobbies with --relay, which only hosts announcing an IP
        address read."""
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


# KEYS: a match's host's registration, the host's matches, the match's followers. ARGV:
# this lobby's id, the followers' TTL (ms), the match id. After Redis lost its data (a
# restart without persistence), a lobby's running match: 1 if its host still runs it
# (the host put its matches back as it registered again, vinom.cluster.hosts), and the
# lobby follows it again, so that its end reaches the lobby; 0 if its host, registered,
# runs it no more (it ended while Redis was away or had just lost the followers set, and
# its end reached nobody); -1 if its host is not registered (yet).
RECHECK = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
""")


def stream_lost(error: object) -> bool:
    """Whether a failed stream read says Redis lost the stream or its group, which the
    reader makes again, not an outage to log: `NOGROUP`, or `UNBLOCKED` (Redis 7 wakes
    a read blocked on a stream deleted meanwhile, such as one that lapsed, with it;
    Redis 6 answers such a read with nothing)."""
    text = str(error)
    return "NOGROUP" in text or "UNBLOCKED" in text


def decide(redis: RedisClient, keys: PlacementKeys, settings: PlacementSettings,
           outcome: Mapping[str, Any], placement: MatchPlacement | None = None,
           ack: tuple[str, str] | None = None) -> Deferred[bool]:  # fmt: skip
    """Record a match's outcome (`placed` or `failed`) and publish it to the lobbies that
    follow the match, unless an outcome is recorded already; whether this one was. A
    `placed` one saves `placement` in the player store's keys in the same call, and
    `ack` (a request's stream and entry id) is acknowledged in it either way."""
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
             lobby_id: str, match_id: str,
             others: Sequence[str] = ()) -> Deferred[bool]:  # fmt: skip
    """Say that this lobby's players of a match waiting for a host all left: the match
    is recorded `failed` (`withdrawn`) and told to its followers once every lobby that
    follows it, or of `others` (the lobbies it was published to), has said so; whether
    this call did."""
    failed = {"event": "failed", "match_id": match_id, "reason": WITHDRAWN}
    text = json.dumps(failed, separators=(",", ":"))
    d = redis.run(_WITHDRAW, [keys.outcome(match_id), keys.followers(match_id),
                              keys.left(match_id)],
                  [text, milliseconds(settings.key_ttl), lobby_id, keys.streams,
                   *others])  # fmt: skip
    return d.addCallback(lambda recorded: recorded == 1)


def announce_end(redis: RedisClient, keys: PlacementKeys, host_id: str,
                 message: Mapping[str, Any], result: str = "") -> Deferred[None]:  # fmt: skip
    """Record a match's `ended` and publish it to its lobbies as its host, taking it out
    of the host's matches and removing its placement record; `result`, a ranked match's
    end (vinom.cluster.ranked.encode_result), goes to the ranked results stream. Saying
    it again changes nothing for a lobby that heard it (nor for the ratings: a match id
    is rated once)."""
    text = json.dumps(message, separators=(",", ":"))
    match_id = str(message["match_id"])
    index = [keys.host_matches(host_id), keys.followers(match_id), keys.crashed(match_id),
             keys.results]  # fmt: skip
    d = redis.run(_END, index, [match_id, keys.streams, text, keys.prefix,
                                milliseconds(DEFAULT_PLAYER_TTL), result])  # fmt: skip
    return d.addCallback(lambda _: None)
