"""Token buckets: the one rate limiter behind every limit in vinom.

Sans-I/O: a bucket is told the time (`now`, seconds) and answers. The lobby
owns one per connection (frames) and per address (`queue` requests, see
vinom/net/limits.py), the seat router one per player and message kind
(docs/games.md, "Action rate"). A bucket holds at most `burst` tokens, starts
full, and gains `rate` tokens per second; a request that finds a whole token
takes it.
"""

from __future__ import annotations

import math

from attrs import define, field

# A token counts as whole within rounding error, so that a timer set for
# `wait()` seconds finds it there.
_WHOLE = 1.0 - 1e-9


@define
class TokenBucket:
    """`rate` tokens per second (> 0) up to `burst` (>= 1); full at time `now`."""

    rate: float
    burst: float
    # When `tokens` was last brought up to date.
    now: float = 0.0
    tokens: float = field(init=False)

    def __attrs_post_init__(self) -> None:
        if not (0 < self.rate < math.inf and 1 <= self.burst < math.inf):
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1: {self!r}")
        self.tokens = self.burst

    def _refill(self, now: float) -> float:
        elapsed = now - self.now
        self.now = now
        if elapsed > 0:
            tokens = self.tokens + elapsed * self.rate
            self.tokens = tokens = tokens if tokens < self.burst else self.burst
            return tokens
        # A clock that steps back (the reactor's is the wall clock) refills
        # nothing and takes nothing away; refilling resumes from the new time,
        # so that a clock set back an hour does not stall the bucket for an hour.
        return self.tokens

    def take(self, now: float) -> bool:
        """Take one token if a whole one is there at `now`; False (nothing taken) if not."""
        tokens = self._refill(now)
        if tokens >= _WHOLE:
            self.tokens = tokens - 1.0 if tokens > 1.0 else 0.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds from `now` until a whole token is there (0 if one is now)."""
        tokens = self._refill(now)
        return 0.0 if tokens >= _WHOLE else (1.0 - tokens) / self.rate

    def ready_at(self, now: float) -> float:
        """When a whole token is there: `now` if one is, else a time after `now` at
        which `take` finds one. Set a timer for this, not for `now + wait(now)`.

        The reactor's clock is the wall clock (about 1.8e9 s), whose floats are
        0.24 us apart: `now + wait(now)` rounds a wait shorter than that back
        to `now` itself, or a longer one to a hair before the token is whole,
        and a timer set there finds no token and is set again for the same
        instant, for ever. The time returned here is moved up, one float at a
        time, until the refill `take` will compute there gives a whole token.
        """
        tokens = self._refill(now)
        if tokens >= _WHOLE:
            return now
        at = now + (1.0 - tokens) / self.rate
        while at <= now or tokens + (at - now) * self.rate < _WHOLE:
            at = math.nextafter(at, math.inf)
        return at

    def is_full(self, now: float) -> bool:
        """True when the bucket holds `burst` tokens at `now` (it is then as good as new)."""
        return self._refill(now) >= self.burst
