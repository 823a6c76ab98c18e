"""`Outage`: one log line when a call repeated in the background starts failing, one
when it works again, not a line per failed attempt; while it fails, `problem` says so
(a lobby's `/ready` answers 503 with it).

A lobby reads the hosts every 0.5 s, ticks every second, checks its players' parties
every second: while Redis is away every attempt fails, and a line for each would flood
the log (several a second per lobby) with what the first said.
"""

from __future__ import annotations

from attrs import define, field
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


@define
class Outage:
    """The state of one repeated call: `failed` after each failure, `worked` after each
    success. The first failure of a run is a warning; the first success after it says,
    as info, how long the failures lasted."""

    log: Logger
    clock: IReactorTime
    # What the call does, for the log: "reading the live game hosts".
    doing: str
    since: float | None = field(default=None, init=False)
    error: object = field(default=None, init=False)

    def failed(self, error: object) -> None:
        self.error = error
        if self.since is None:
            self.since = self.clock.seconds()
            self.log.warn("{doing} failed: {error} (logged again once it works)",
                          doing=self.doing, error=error)  # fmt: skip

    def worked(self) -> None:
        if self.since is not None:
            self.log.info("{doing} works again, after {seconds:.1f} s of failures",
                          doing=self.doing, seconds=self.clock.seconds() - self.since)  # fmt: skip
            self.since = None

    def problem(self) -> str | None:
        """What fails, and since when, while it does (else None)."""
        if self.since is None:
            return None
        return (f"{self.doing} failed: {self.error} "
                f"(for {self.clock.seconds() - self.since:.1f} s)")  # fmt: skip
