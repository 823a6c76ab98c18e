"""Per-address rate limits counted in Redis, shared by every lobby on the same Redis.

One counter per address and window (`INCR` and a TTL): guessing party codes
from one address is as slow through every lobby as through one.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import implementer

from vinom.cluster.client import RedisClient, Script
from vinom.net.limits import IAddressLimiter

# One atomic call: the first attempt of a window starts its TTL, so a counter never
# outlives its window (an INCR and a separate EXPIRE could leave it without one).
_COUNT_ATTEMPT = Script("""
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
""")


@implementer(IAddressLimiter)
class RedisAddressLimiter:
    """At most `burst` attempts per address in each window of `burst / rate` seconds,
    counted in Redis across every lobby that uses the same `name` and key prefix.

    The key is `<prefix><name>:<client>`, a counter that lapses with its window.
    Over time this allows `rate` attempts per second, as the token bucket of
    `MemoryAddressLimiter` does; at the turn of a window up to twice `burst` may
    pass in quick succession.
    """

    def __init__(self, redis: RedisClient, name: str, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self._redis = redis
        self._name = name
        self._burst = burst
        # At least a millisecond: PEXPIRE takes whole milliseconds.
        self.window_ms = max(1, round(1000 * burst / rate))

    def allow(self, client: str) -> Deferred[bool]:
        key = self._redis.key(self._name, client)
        d: Deferred[int] = self._redis.run(_COUNT_ATTEMPT, [key], [self.window_ms])
        return d.addCallback(lambda count: int(count) <= self._burst)
