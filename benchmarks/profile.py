"""Sampling profiles of a scenario's server during its measured window (`--profile DIR`).

py-spy (a sampling profiler that attaches to a running process; install it
with `pip install py-spy`) records the server process for the measured
window only, in its raw "collapsed stacks" format. `summarize` turns that
file into the functions with the most samples: self (the function itself
was running) and total (it was on the stack), which is where to look when
a scenario misses its target.

Only samples holding the GIL count (`--gil`): a thread waiting in a system
call that released it (a record file's open and write on a disk busy with
other work) is not using the CPU, and counting it put `_append` at 6-19% of
a `match` profile whose records cost about 2% of the server's CPU. OpenSSL's
work is left out too: pyOpenSSL's calls release the GIL, so the lobby's TLS
handshakes (about 0.29 ms of server CPU a new player in `match`) do not show. The
garbage collector runs in whatever frame's allocation crossed its threshold,
so one collection (10-80 ms with a young generation of 10,000) lands whole on
one function: an allocating function like `GameHostCore.__init__` shows a
share that comes and goes between runs (0.6-6.3% self in `match`, 5.4
points of it measured as collections it triggered). Compare shares over
several runs, and the collector's own share with `gc.callbacks`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from typing import IO

from attrs import frozen


@frozen
class Hotspot:
    """One function's share of the samples."""

    function: str
    self_pct: float
    total_pct: float


def find_py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("py-spy")


def start(pid: int, path: str, seconds: float, rate: int = 250) -> subprocess.Popen[bytes]:
    """Record `pid` for `seconds` into `path` (raw collapsed stacks); RuntimeError without
    py-spy."""
    executable = find_py_spy()
    if executable is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return subprocess.Popen(
        [
            executable, "record", "--pid", str(pid), "--rate", str(rate),
            "--duration", str(max(1, round(seconds))), "--format", "raw",
            "--output", path, "--nonblocking", "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Let py-spy finish writing (it stops by itself after its duration)."""
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def summarize(path: str, top: int = 20) -> list[Hotspot]:
    """The `top` functions by self samples in a raw py-spy profile."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                stack, _, count_text = line.rstrip("\n").rpartition(" ")
                try:
                    count = int(count_text)
                except ValueError:
                    continue
                frames = [_short(frame) for frame in stack.split(";") if frame]
                if not frames:
                    continue
                samples += count
                self_counts[frames[-1]] += count
                for frame in set(frames):
                    total_counts[frame] += count
    except OSError:
        return []
    if samples == 0:
        return []
    return [
        Hotspot(name, round(100.0 * n / samples, 1), round(100.0 * total_counts[name] / samples, 1))
        for name, n in self_counts.most_common(top)
    ]


def _short(frame: str) -> str:
    """'f (/path/to/vinom/protocol/server.py:301)' -> 'f (vinom/protocol/server.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    filename = where.rsplit(":", 1)[0]
    for marker in ("/vinom/", "/twisted/", "/site-packages/", "/lib/python3"):
        at = filename.rfind(marker)
        if at >= 0:
            filename = filename[at + 1 :]
            break
    return f"{name} ({filename})" if filename else name


def write_summary(hotspots: Sequence[Hotspot], out: IO[str], title: str) -> None:
    out.write(f"\n{title}\n  self%  total%  function\n")
    for spot in hotspots:
        out.write(f"  {spot.self_pct:5.1f}  {spot.total_pct:6.1f}  {spot.function}\n")
    out.flush()
