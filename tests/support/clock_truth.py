"""The server's tick at a moment, as the netcode clock tests measure it.

A ticking room runs tick k at its start plus k / rate and catches up by whole
steps when it runs late, dropping the steps beyond `MAX_CATCH_UP_TICKS` after
a longer stall (vinom.rooms.room). So the server's tick at a moment is
`(when - start) * rate`, its start being the earliest a snap could have left
it: the least of (came over loopback - k / rate) over the snaps of the second
either side (loopback takes next to nothing, so a snap a starved host sent
late is late, not a truth that moved).

When the host dropped ticks (its start moved later by more than a tick), the
server really is that much behind its old schedule, and a client's clock,
which keeps the fastest snapshot of its window (vinom.client.netcode), follows
within the window and its slew: the samples of that time are left out, as a
stall of the server, not an error of the clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from vinom.client.netcode import CLOCK_SLEW, CLOCK_WINDOW


def schedule_errors(
    samples: Sequence[Sequence[float]], rate: float, second: float = 1.0
) -> tuple[list[float], int]:
    """The clock's estimate less the server's tick at each sample ([when, estimate,
    the snap's tick, when that snap came over loopback], in units of `second`
    per second), and how many samples were left out after the host dropped ticks."""
    period = second / rate
    starts = []
    for when, _, _, _ in samples:
        starts.append(min(came - tick * period for _, _, tick, came in samples
                          if abs(came - when) <= second))  # fmt: skip
    # How long the clock may take to follow a start that moved by a tick: its window,
    # then its slew over the tick.
    follow = (CLOCK_WINDOW + (1 / rate) / CLOCK_SLEW) * second
    errors: list[float] = []
    skipped = 0
    moved_at: float | None = None
    baseline = starts[0] if starts else 0.0
    for (when, estimate, _, _), start in zip(samples, starts, strict=True):
        if start > baseline + period:  # the host dropped ticks: its schedule moved
            moved_at = when
            baseline = start
        baseline = min(baseline, start)
        if moved_at is not None and when - moved_at <= follow:
            skipped += 1
            continue
        errors.append(estimate - (when - start) / period)
    return errors, skipped
