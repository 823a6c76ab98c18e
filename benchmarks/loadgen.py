"""Shared pieces of the load generators: the warm-up/measure timeline and cheap latency counts.

Load generators are plain-socket loops (no reactor) so that they cost as
little CPU as possible per message. `Timeline` tells a loop which phase it
is in, sends the parent the `measuring` and `window_end` marks at the
phase boundaries (the parent samples the server's CPU there) and a
`progress` message twice a second. `Latencies` counts microsecond values in
a dict while the loop runs and builds the HDR histogram only at the end,
because recording into `hdrh` costs about 1.5 us per value in Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from benchmarks.harness import encode_histogram, new_histogram
from benchmarks.worker import cpu_seconds, emit

WARMUP = 0
MEASURING = 1
DONE = 2


class Latencies:
    """Microsecond latencies, counted per distinct value."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def record(self, value_us: int) -> None:
        counts = self.counts
        counts[value_us] = counts.get(value_us, 0) + 1

    def clear(self) -> None:
        self.counts.clear()

    def encoded(self) -> str:
        histogram = new_histogram()
        highest = histogram.highest_trackable_value
        for value, count in self.counts.items():
            histogram.record_value(min(max(value, 1), highest), count)
        return encode_histogram(histogram)


class Timeline:
    """Warm-up, then the measured window, then done; reports the boundaries to the parent.

    `on_measure` runs at the start of the measured window so the loop can
    reset its counters; `progress` returns the fields of a progress message.
    """

    def __init__(
        self,
        warmup: float,
        duration: float,
        on_measure: Callable[[], None] | None = None,
        progress: Callable[[], dict[str, Any]] | None = None,
        progress_every: float = 0.5,
    ) -> None:
        self.warmup = warmup
        self.duration = duration
        self.on_measure = on_measure
        self.progress = progress
        self.progress_every = progress_every
        self.phase = WARMUP
        self.started = time.perf_counter()
        self.measure_started = 0.0
        self.measure_ended = 0.0
        self.cpu_at_start = 0.0
        self.cpu_at_end = 0.0
        self._next_progress = self.started + progress_every

    @property
    def measuring(self) -> bool:
        return self.phase == MEASURING

    def start(self) -> None:
        """Restart the clock (after any setup the warm-up should not include)."""
        self.started = time.perf_counter()
        self._next_progress = self.started + self.progress_every
        if self.warmup <= 0:
            self._begin_measuring(self.started)

    def check(self, now: float) -> int:
        """Advance the phase for `now` (perf_counter seconds); returns the phase."""
        if self.phase == WARMUP and now - self.started >= self.warmup:
            self._begin_measuring(now)
        if self.phase == MEASURING and now - self.measure_started >= self.duration:
            self.measure_ended = now
            self.cpu_at_end = cpu_seconds()
            self.phase = DONE
            emit("window_end", elapsed=now - self.measure_started)
        if now >= self._next_progress:
            self._next_progress = now + self.progress_every
            fields = self.progress() if self.progress is not None else {}
            emit("progress", elapsed=now - self.started, phase=self.phase, **fields)
        return self.phase

    def _begin_measuring(self, now: float) -> None:
        self.phase = MEASURING
        self.measure_started = now
        if self.on_measure is not None:
            self.on_measure()
        self.cpu_at_start = cpu_seconds()
        emit("measuring")

    @property
    def window_s(self) -> float:
        return self.measure_ended - self.measure_started

    @property
    def load_cpu_s(self) -> float:
        return self.cpu_at_end - self.cpu_at_start


class PlayTallies(Protocol):
    """What a play load counts over the measured window (benchmarks.room_load,
    websocket_load, webtransport_load)."""

    measuring: bool
    latencies: Latencies
    moves: int
    messages: int
    errors: int
    resends: int
    error_codes: dict[str, int]

    def mark_window(self) -> None: ...


def play_timeline(settings: dict[str, Any], play: PlayTallies) -> Timeline:
    """The play loads' warm-up and window: at its start every tally starts again."""

    def on_measure() -> None:
        play.mark_window()
        play.measuring = True
        play.latencies.clear()
        play.moves = play.messages = play.errors = play.resends = 0
        play.error_codes.clear()

    return Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=on_measure,
        progress=lambda: {"count": play.moves},
    )
