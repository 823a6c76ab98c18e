"""The ranked results stream: every finished ranked match's end, rated whichever lobby dies.

A match's placement events reach only the lobbies that follow it (vinom.cluster.channel):
if those all die before it ends, no lobby hears its end. So the game host that runs a
ranked match (`Match.ranked`) also adds its end, as it announces it, to one stream,
`<prefix>ranked-results`, while the stream exists (a lobby that rates matches made it:
with no such lobby nothing is added). Every lobby that rates matches (an account
database and players who sign in) reads that stream through one consumer group,
`lobbies` (`XREADGROUP`), hands each end to its subscriber (the lobby's
`MatchRatings.record_result`, which rates a match once per match id) and acknowledges
it only once that succeeded, deleting it in the same call: the stream holds the ends not
rated yet. An end read by a lobby that died, or whose write failed, stays pending; any
living lobby claims it (`XAUTOCLAIM`) once it has been pending for `claim_after`, and
rates it (again: the store answers a second call for a match id as the first). So each
end is delivered at least once and rated exactly once.

The stream is bounded: at most about `RESULTS_KEPT` entries (`MAXLEN ~` as each is
added, which only a long outage of every lobby's database would reach), and it lives
`RESULTS_TTL` after the last lobby read it. Each lobby reads its length and pending
count at each claim round, for the operations endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from vinom.cluster.channel import PlacementKeys, stream_lost
from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.outage import Outage
from vinom.hosting.interfaces import IRankedResults
from vinom.match import (
    Match,
    MatchEnded,
    match_from_json,
    match_to_json,
    outcome_from_json,
    outcome_to_json,
)
from vinom.net.limits import LogLimiter

# The consumer group every lobby that rates matches reads the stream through.
GROUP = "lobbies"

# How long the stream lives after a lobby last read it: with no lobby rating matches
# any more, it goes, and the hosts add nothing.
RESULTS_TTL = 24 * 3600.0

# An end pending this long on a lobby (it died, or its write failed) is claimed by the
# next lobby's claim round, its own included.
CLAIM_AFTER = 15.0
# How often a lobby claims such ends (and reads the stream's figures).
CLAIM_EVERY = 5.0

# (`RESULTS_KEPT`, vinom.cluster.channel: the stream's bound, `MAXLEN ~` as the hosts
# add to it.)

# The ends a lobby reads or claims in one call at most.
RESULTS_PER_READ = 64

# KEYS: the stream. ARGV: the group, the stream's TTL (ms). The group, reading the stream
# from its start, made with the stream if it has none; the TTL renewed.
OPEN = Script("""
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
""")

# KEYS: the stream. ARGV: the group, this lobby's consumer, `claim_after` (ms), how many,
# the stream's TTL (ms). The ends pending `claim_after` on any consumer, claimed for this
# one (`XAUTOCLAIM`), the ids of those trimmed meanwhile (Redis 7 drops them from the
# pending list), the stream's length and its pending count; a consumer holding nothing
# and idle `claim_after` (a lobby that stopped or died) leaves the group, so that it
# keeps no consumer per lobby process ever started (one only idle makes its own again
# at its next read); the stream's TTL renewed. One call.
CLAIM = Script("""
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
                           'COUNT', ARGV[4])
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, held, idle
  for j = 1, #consumer, 2 do
    if consumer[j] == 'name' then name = consumer[j + 1] end
    if consumer[j] == 'pending' then held = consumer[j + 1] end
    if consumer[j] == 'idle' then idle = consumer[j + 1] end
  end
  if held == 0 and name ~= ARGV[2] and idle >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
return {claimed[2], claimed[3] or {}, redis.call('XLEN', KEYS[1]), pending[1]}
""")

# KEYS: the stream. ARGV: the group, the entry's id. An end rated: acknowledged and
# deleted (one group reads the stream: nobody else is to read it).
DONE = Script("""
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
""")

Record = Callable[[Match, MatchEnded], Deferred[None]]


def encode_result(match: Match, outcome: MatchEnded | None) -> str:
    """The stream entry's `r` of a match's end: `{"match", "outcome"}` (JSON) for a ranked
    match that finished with a result, else '' (nothing to add)."""
    if not match.ranked or outcome is None or outcome.phase != "finished":
        return ""
    if outcome.result is None:
        return ""
    data = {"match": match_to_json(match), "outcome": outcome_to_json(outcome)}
    return json.dumps(data, separators=(",", ":"))


def decode_result(fields: Sequence[Any]) -> tuple[Match, MatchEnded] | None:
    """The match and its end an entry's fields (a flat list, as Redis gives them) hold,
    or None for an entry that holds none (trimmed, or not one `encode_result` made)."""
    if not fields or len(fields) % 2:
        return None
    values = {_text(k): v for k, v in zip(fields[::2], fields[1::2], strict=True)}
    try:
        data = json.loads(values["r"])
        match, outcome = match_from_json(data["match"]), outcome_from_json(data["outcome"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if outcome.match_id != match.match_id:
        return None
    return match, outcome


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@implementer(IRankedResults)
class RankedResultsReader(Service):
    """A lobby's reader of the ranked results stream (module docstring): while it runs
    and has a subscriber, it reads the ends as they come (`XREADGROUP ... BLOCK`, on a
    connection of the pool taken out of its turn), claims those pending `claim_after`
    every `claim_every`, and acknowledges each once its subscriber's Deferred fired."""

    log = Logger()

    def __init__(
        self, *, redis: RedisClient, clock: IReactorTime, consumer: str,
        claim_after: float = CLAIM_AFTER, claim_every: float = CLAIM_EVERY,
    ) -> None:  # fmt: skip
        self._redis = redis
        self._clock = clock
        self.consumer = consumer
        self.key = PlacementKeys(redis.settings.key_prefix).results
        self._claim_after = claim_after
        self._claim_every = claim_every
        self._record: Record | None = None
        self._reading: Deferred[None] = succeed(None)
        # Whether an end is with the subscriber now (a stop does not wait for it).
        self._rating = False
        self._log_limit = LogLimiter(1.0, 10, clock)
        # Redis away: one line as the reads begin to fail, one once they work again.
        self._outage = Outage(self.log, clock, "reading the ranked results stream")
        # For the operations endpoint: the stream's length and pending count as of the
        # last claim round (None before the first), the ends rated here, those found
        # trimmed before any lobby rated them.
        self.backlog: int | None = None
        self.pending: int | None = None
        self.recorded = 0
        self.lost = 0

    def subscribe(self, record: Record) -> None:
        self._record = record

    def startService(self) -> None:
        super().startService()
        if self._record is None:
            return  # this lobby rates nothing: it reads nothing (nor makes the stream)
        self._reading = Deferred.fromCoroutine(self._read()).addErrback(
            lambda f: self.log.failure("ranked results: the loop ended", f)
        )

    def stopService(self) -> Deferred[None]:
        """Stop reading (the read out answers within a second). An end being rated is
        not waited for: pending until it is acknowledged, it is claimed by another lobby
        if this one stops first."""
        super().stopService()
        reading, self._reading = self._reading, succeed(None)
        return succeed(None) if self._rating else reading

    async def _read(self) -> None:
        assert self._record is not None
        ttl = milliseconds(RESULTS_TTL)
        group_ready = False
        next_claim = self._clock.seconds()
        while self.running:
            try:
                if not group_ready:
                    await self._redis.run(OPEN, [self.key], [GROUP, ttl])
                    group_ready = True
                if self._clock.seconds() >= next_claim:
                    next_claim = self._clock.seconds() + self._claim_every
                    claimed = await self._redis.run(CLAIM, [self.key], [
                        GROUP, self.consumer, milliseconds(self._claim_after),
                        RESULTS_PER_READ, ttl])  # fmt: skip
                    entries, trimmed, backlog, pending = claimed
                    self.backlog, self.pending = int(backlog), int(pending)
                    if trimmed:
                        self.lost += len(trimmed)
                        self.log.warn("ranked results: {count} match end(s) trimmed from "
                                      "the stream before any lobby rated them",
                                      count=len(trimmed))  # fmt: skip
                    await self._handle(entries or ())
                reply = await self._redis.blocking(
                    "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", RESULTS_PER_READ,
                    "BLOCK", 1000, "STREAMS", self.key, ">")  # fmt: skip
            except Exception as error:
                if not self.running:
                    return
                group_ready = not stream_lost(error)
                if group_ready:
                    self._outage.failed(error)
                    await deferLater(self._clock, 0.5, lambda: None)
                continue
            self._outage.worked()
            for _, entries in reply or ():
                await self._handle(entries)

    async def _handle(self, entries: Sequence[Any]) -> None:
        """Rate each end, in order, and acknowledge those rated (or holding no end)."""
        assert self._record is not None
        for entry_id, fields in entries:
            if not self.running:
                return  # (the rest, pending, are claimed by the other lobbies)
            decoded = decode_result(fields or ())
            if decoded is None:
                if self._log_limit.allow():
                    self.log.warn("ranked results: entry {entry_id} holds no match end",
                                  entry_id=_text(entry_id))  # fmt: skip
            else:
                self._rating = True
                try:
                    await self._record(*decoded)
                except Exception as error:
                    # Pending still: claimed again after `claim_after`, here or elsewhere.
                    if self._log_limit.allow():
                        self.log.warn("ranked results: rating {match_id} failed: {error}; "
                                      "it is tried again", match_id=decoded[0].match_id,
                                      error=error)  # fmt: skip
                    continue
                finally:
                    self._rating = False
                self.recorded += 1
            try:
                await self._redis.run(DONE, [self.key], [GROUP, entry_id])
            except Exception as error:
                # Pending still: rated again (the store answers as the first time).
                if self._log_limit.allow():
                    self.log.warn("ranked results: acknowledging {entry_id} failed: {error}",
                                  entry_id=_text(entry_id), error=error)  # fmt: skip
