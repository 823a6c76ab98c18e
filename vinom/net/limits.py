"""Rate limits on the clock, over `TokenBucket`: per key (address), per address
(possibly shared between processes), and for log lines.

Both read the injected clock, so tests drive time with
`twisted.internet.task.Clock`.

`IAddressLimiter` is a per-address limit that may live outside the process:
`MemoryAddressLimiter` keeps token buckets for one lobby; the Redis one
(vinom.cluster.address_limits) counts in Redis, so lobbies sharing a Redis share the
limit. The lobby limits `party_join` with one: guessing party codes from one
address is as slow through every lobby as through one.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import Interface, implementer

from vinom.net.ratelimit import TokenBucket


class KeyedTokenBuckets:
    """One `TokenBucket` per key (a client address), forgetting buckets that are full again.

    A full bucket is the same as no bucket, so dropping it loses nothing; the
    sweep runs when the number of buckets doubles, which keeps the cost per
    call constant on average and the memory proportional to active clients.
    """

    __slots__ = ("_buckets", "_burst", "_clock", "_rate", "_sweep_at")

    MIN_SWEEP = 1024

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = self.MIN_SWEEP

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str) -> bool:
        """Take a token from `key`'s bucket if it has one."""
        now = self._clock.seconds()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, now)
        return bucket.take(now)

    def ready(self, key: str) -> bool:
        """Whether `key`'s bucket has a token now, taking none: a limit on failures
        asks before an attempt and takes (`allow`) only when the attempt fails."""
        bucket = self._buckets.get(key)
        return bucket is None or bucket.wait(self._clock.seconds()) == 0.0

    def _sweep(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.is_full(now)}
        self._sweep_at = max(self.MIN_SWEEP, 2 * len(self._buckets))


class LogLimiter:
    """Lets through at most `burst` log lines at once and `rate` per second after that.

    `allow()` says whether to log now; `take_suppressed()` is the number of
    lines held back since the last one logged, to mention in the next.
    """

    __slots__ = ("_bucket", "_burst", "_clock", "_rate", "suppressed")

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        # Made on first use: the clock may not tell time until the reactor runs.
        self._bucket: TokenBucket | None = None
        self.suppressed = 0

    def allow(self) -> bool:
        if self._bucket is None:
            self._bucket = TokenBucket(self._rate, self._burst, self._clock.seconds())
        if self._bucket.take(self._clock.seconds()):
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count


class IAddressLimiter(Interface):
    """A rate limit per client address (an IPv4 address or an IPv6 /64)."""

    def allow(client: str) -> Deferred[bool]:
        """Count one attempt from `client`; whether it is within the limit.

        May fail (with `vinom.errors.BackendUnavailable` when the count lives in a
        Redis that does not answer): the attempt is then not made.
        """


@implementer(IAddressLimiter)
class MemoryAddressLimiter:
    """`rate` attempts per second per address after a burst of `burst`, in this process."""

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        self._buckets = KeyedTokenBuckets(rate, burst, clock)

    def allow(self, client: str) -> Deferred[bool]:
        return succeed(self._buckets.allow(client))
