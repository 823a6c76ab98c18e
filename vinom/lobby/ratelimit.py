"""A token bucket: the per-connection frame rate limit of the lobby.

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
