"""Token buckets: the lobby's frame and queue rate limits, and its log limiter.

The bucket holds up to `burst` tokens and refills at `rate` tokens per second;
each frame takes one. The clock is injected so tests drive time with
`twisted.internet.task.Clock`.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime


class TokenBucket:
    """Allows `rate` events per second on average and `burst` at once."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.seconds()

    @property
    def tokens(self) -> float:
        """Tokens available now (refilled up to this moment)."""
        self._refill()
        return self._tokens

    def allow(self, cost: float = 1.0) -> bool:
        """Take `cost` tokens if there are enough; False (taking none) otherwise."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def _refill(self) -> None:
        now = self._clock.seconds()
        # A clock that steps backwards (wall-clock adjustment) must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)


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

    def allow(self, key: str, cost: float = 1.0) -> bool:
        """Take `cost` tokens from `key`'s bucket if it has enough."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep()
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
        return bucket.allow(cost)

    def _sweep(self) -> None:
        full = float(self._burst)
        self._buckets = {k: b for k, b in self._buckets.items() if b.tokens < full}
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
            self._bucket = TokenBucket(self._rate, self._burst, self._clock)
        if self._bucket.allow():
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count
