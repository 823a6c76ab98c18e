"""`HeartbeatWatch`: when a supervisor gives up on a child that leaves its heartbeats
unanswered, judged only over time the supervisor itself was running.

The supervisor (vinom.hosting.workers.child) checks each child every
heartbeat interval. A child is killed once it has been silent for longer
than its limit. But a supervisor that was itself stopped (SIGSTOP of its
whole process group, a VM paused, a long garbage collection or a blocking
call) could not hear its children meanwhile, and they were most likely
stopped with it: the silence it finds on resuming is its own pause, not the
child's fault. So a gap between two of its own checks longer than
`PAUSE_AFTER` intervals counts as a pause of the supervisor: the silence
being judged starts again at the resume, and a child is judged by the
heartbeats it answers after it (as a Kubernetes probe counts consecutive
failed probes, not the wall-clock time since the last success). A child
that is still silent `limit` seconds after the resume is killed as before:
within `limit` plus one interval.

Sans-I/O: the caller passes the time (its reactor's `seconds()`, which its
timers run on). A clock set back between two checks judges the silence from
that check on, so that a step back never holds off a kill for its length.
"""

from __future__ import annotations

from attrs import define, field

# A check this many heartbeat intervals after the previous one (one missed) means
# the supervisor did not run meanwhile.
PAUSE_AFTER = 2.0


@define
class HeartbeatWatch:
    """One child's silence, as its supervisor's checks measure it (module docstring)."""

    interval: float
    # The start of the silence being judged: the last answer, or the last resume.
    since: float
    _last_check: float = field(init=False)
    # The supervisor's own pauses found so far, and the length of the last one.
    pauses: int = field(init=False, default=0)
    last_pause: float = field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        self._last_check = self.since

    def answered(self, now: float) -> None:
        """The child answered at `now`."""
        self.since = now

    def check(self, now: float, limit: float) -> float | None:
        """A periodic check at `now`: the seconds of silence if they exceed `limit`
        (the child is to be killed), else None. A check late by more than
        `PAUSE_AFTER` intervals is a pause of the supervisor: its silence is not
        the child's (counted in `pauses`), and the judged silence starts now."""
        gap = now - self._last_check
        self._last_check = now
        if gap < 0:
            self.since = now  # the clock was set back: judged from now on
            return None
        if gap > PAUSE_AFTER * self.interval:
            self.pauses += 1
            self.last_pause = gap
            self.since = now
            return None
        silent = now - self.since
        return silent if silent > limit else None
