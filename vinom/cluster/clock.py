"""Deadlines that Redis scripts check against Redis's own clock.

When a lobby gives up on a call to Redis (it answered the player
`unavailable`), the call may still be waiting in a socket: a Redis that is
stopped or slow runs it once it goes on. A call that changes what a player
sees (queueing, cancelling, saving a new player, changing a party) therefore
carries a deadline, and its Lua script reads Redis's clock (`TIME`) and
refuses the call once the deadline has passed. The deadline falls at half the
caller's timeout (`DEADLINE_SHARE`), so a call Redis takes in time is
normally answered before the caller gives up; one Redis takes too late does
nothing at all.

The deadline is a time on Redis's clock, and the lobby's clock may disagree
with it. So the lobby estimates the offset from the times Redis reports (the
matchmaker's heartbeat carries `TIME`, every `tick_every`): Redis's time minus
the lobby's time when the answer arrived. An answer arrives after Redis
wrote its time, so an estimate is never above the true offset and a deadline
computed from it never falls later than intended (a late answer only makes
it earlier). The largest of the last `SAMPLES` estimates is used; until
there is one, the two clocks are taken to agree. docs/scaling.md, "When
something fails", says what this means for an operator.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IReactorTime

# The part of a call's timeout after which its script refuses to run it.
DEADLINE_SHARE = 0.5
# How many of the newest offset estimates count.
SAMPLES = 16

# The Lua function the scripts share (each script is sent whole, so it is
# pasted into each): whether a deadline (milliseconds on Redis's clock, '' for
# none) has passed.
TOO_LATE_LUA = """
local function too_late(deadline)
  if deadline == nil or deadline == '' then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline)
end
"""


class RedisClock:
    """One process's estimate of Redis's clock, and the deadlines it gives calls.

    `reply_timeout` is the connection pool's own bound on a reply, if it has
    one (a txredisapi pool gives up on a call after it, whatever its caller
    waits for): no deadline falls later than that allows.
    """

    def __init__(self, clock: IReactorTime, reply_timeout: float | None = None) -> None:
        self._clock = clock
        self._reply_timeout = reply_timeout
        self._offsets: deque[float] = deque(maxlen=SAMPLES)

    def heard(self, seconds: object, microseconds: object) -> None:
        """Redis said its time (`TIME`'s two numbers) in an answer that just arrived."""
        try:
            redis_time = int(str(seconds)) + int(str(microseconds)) / 1e6
        except ValueError:
            return
        self._offsets.append(redis_time - self._clock.seconds())

    def forget(self) -> None:
        """Drop the estimates: Redis is another server now (a Sentinel failover), whose
        clock may stand elsewhere; until it is heard from, the clocks are taken to agree."""
        self._offsets.clear()

    @property
    def offset(self) -> float:
        """Seconds to add to this process's clock to read Redis's (0 until known)."""
        return max(self._offsets, default=0.0)

    def deadline(self, timeout: float) -> str:
        """The deadline of a call made now whose caller waits `timeout` seconds: whole
        milliseconds since the epoch on Redis's clock, as the scripts take it."""
        if self._reply_timeout is not None:
            timeout = min(timeout, self._reply_timeout)
        at = self._clock.seconds() + self.offset + timeout * DEADLINE_SHARE
        return str(int(at * 1000))
