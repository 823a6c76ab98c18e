"""The parent side of a benchmark: worker processes, CPU pinning, progress and the report.

A scenario runs its server and its load generator as real child processes
(`python -m benchmarks.<worker>`), pinned to different cores when the
machine has at least two. Parent and workers talk in JSON lines: a worker
writes one object per line on its standard output (`{"type": "ready", ...}`,
`{"type": "progress", ...}`, `{"type": "result", ...}`) and reads commands
from its standard input. A worker exits when its standard input closes, so
no child outlives the harness even if the parent is killed; the harness also
terminates and then kills every child it started on every exit path, and
gives up on the whole run at a hard deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import IO, Any

import psutil
from hdrh.histogram import HdrHistogram

from vinom.server.build import build_info

# Latencies are recorded in microseconds, from 1 us to 60 s, 3 significant digits.
HISTOGRAM_LOWEST_US = 1
HISTOGRAM_HIGHEST_US = 60_000_000
HISTOGRAM_DIGITS = 3


class BenchError(Exception):
    """A scenario could not run to the end (a worker failed, timed out or is missing)."""


class Deadline(BenchError):
    """The hard time limit of the run passed."""


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(HISTOGRAM_LOWEST_US, HISTOGRAM_HIGHEST_US, HISTOGRAM_DIGITS)


def decode_histogram(encoded: str) -> HdrHistogram:
    """The histogram a worker sent as `encode_histogram` text."""
    return HdrHistogram.decode(base64.b64decode(encoded))


def encode_histogram(histogram: HdrHistogram) -> str:
    """Compressed histogram as JSON-safe text (workers send theirs to the parent)."""
    return base64.b64encode(histogram.encode()).decode("ascii")


def merge_histograms(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram holding every worker's values."""
    merged = new_histogram()
    for text in encoded:
        merged.add(decode_histogram(text))
    return merged


def percentile_ms(histogram: HdrHistogram, percentile: float) -> float:
    """A percentile of a microsecond histogram in milliseconds (0.0 when empty)."""
    if histogram.get_total_count() == 0:
        return 0.0
    return round(histogram.get_value_at_percentile(percentile) / 1000.0, 3)


def cpu_plan(loads: int, pin: bool) -> tuple[int | None, list[int | None]]:
    """Which core the server and each load process run on (None: unpinned).

    With two or more usable cores the server gets the first one to itself
    and the load processes share the rest, so the load never steals the
    server's core.
    """
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, [None] * loads
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, [None] * loads
    rest = cores[1:]
    return cores[0], [rest[i % len(rest)] for i in range(loads)]


class Worker:
    """One child process speaking JSON lines."""

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        stderr: IO[bytes],
        ignores_stdin: bool = False,
    ) -> None:
        self.name = name
        self.ignores_stdin = ignores_stdin
        self.popen = popen
        self.pid = popen.pid
        self._stderr = stderr
        self._buffer = b""
        self.messages: deque[dict[str, Any]] = deque()
        self.eof = False
        try:
            self._ps: psutil.Process | None = psutil.Process(popen.pid)
        except psutil.Error:
            self._ps = None

    def send(self, command: Mapping[str, Any]) -> None:
        """Write one command line to the worker's standard input."""
        stdin = self.popen.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def feed(self, data: bytes) -> None:
        """Bytes read from the worker's standard output; complete lines become messages."""
        if not data:
            self.eof = True
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                # Stray output (a library printing): keep it for diagnostics only.
                message = {"type": "output", "text": line.decode("utf-8", "replace")}
            if not isinstance(message, dict):
                message = {"type": "output", "text": repr(message)}
            self.messages.append(message)

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the worker has used so far."""
        if self._ps is None:
            return 0.0
        try:
            times = self._ps.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def rss_bytes(self) -> int:
        """The worker's resident memory now."""
        if self._ps is None:
            return 0
        try:
            return int(self._ps.memory_info().rss)
        except psutil.Error:
            return 0

    def stderr_tail(self, limit: int = 4000) -> str:
        """The end of what the worker wrote on standard error (for failure reports)."""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return text[-limit:]

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        """Close stdin (the polite signal), then SIGTERM, then SIGKILL.

        A worker that ignores its standard input gets SIGTERM at once.
        """
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        if self.ignores_stdin:
            with contextlib.suppress(OSError):
                self.popen.terminate()
        for step in (self.popen.terminate, self.popen.kill):
            try:
                self.popen.wait(grace)
                break
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    step()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._stderr.close()


ProgressCallback = Callable[[Worker, dict[str, Any]], None]


class Harness:
    """Starts workers, waits for their messages with a hard deadline, and always cleans up.

    Use as a context manager: leaving the block (normally, by an exception,
    Ctrl-C or SIGTERM) stops every worker.
    """

    def __init__(
        self,
        timeout: float,
        on_progress: ProgressCallback | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.on_progress = on_progress
        self.workers: list[Worker] = []
        self._selector = selectors.DefaultSelector()
        self._env = dict(os.environ if env is None else env)
        # Workers find this package where the parent did; they import the same
        # vinom as the parent (see benchmarks/__init__.py).
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, self._env.get("PYTHONPATH", "")) if p
        )
        vinom = sys.modules.get("vinom")
        if vinom is not None and vinom.__file__ and _is_under(vinom.__file__, package_root):
            self._env["VINOM_BENCH_SOURCES"] = "1"
        self._previous_sigterm: Any = None

    def __enter__(self) -> Harness:
        if _is_main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def spawn(self, name: str, module: str, args: Sequence[str], cpu: int | None) -> Worker:
        """Start `python -m module args...`, pinned to `cpu` when given."""
        return self.spawn_command(name, [sys.executable, "-m", module, *args], cpu)

    def spawn_command(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int | None,
        ignores_stdin: bool = False,
        own_group: bool = False,
    ) -> Worker:
        """Start any command (`argv`) as a worker, pinned to `cpu` when given; one that
        does not speak JSON lines (twistd) only ever sends `output` messages.

        A command that `ignores_stdin` (redis-server) would not notice the harness
        going: on Linux the kernel kills it when the harness process exits (even
        by SIGKILL), and `stop` sends it SIGTERM at once. With `own_group` the command
        leads a process group of its own (a new session), so that a signal can reach it
        and its children together (`os.killpg(worker.pid, ...)`).
        """
        # Closed by Worker.stop; kept open until then to show the tail on failure.
        stderr = tempfile.TemporaryFile(prefix=f"vinom-bench-{name}-")  # noqa: SIM115
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=self._env,
            close_fds=True,
            preexec_fn=_kill_with_parent if ignores_stdin and _HAS_PDEATHSIG else None,
            start_new_session=own_group,
        )
        worker = Worker(name, popen, stderr, ignores_stdin)
        self.workers.append(worker)
        assert popen.stdout is not None
        os.set_blocking(popen.stdout.fileno(), False)
        self._selector.register(popen.stdout, selectors.EVENT_READ, worker)
        if cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(popen.pid, {cpu})
        return worker

    def _pump(self, timeout: float) -> None:
        """Read whatever the workers wrote, waiting at most `timeout` seconds."""
        for key, _ in self._selector.select(max(0.0, timeout)):
            worker: Worker = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            worker.feed(data)
            if not data:
                self._selector.unregister(key.fileobj)

    def wait_for(
        self, worker: Worker, kind: str, timeout: float | None = None
    ) -> dict[str, Any]:
        """The worker's next message of type `kind`.

        Progress messages go to the progress callback on the way; an `error`
        message, the worker's exit or the deadline raise `BenchError`.
        """
        started = time.monotonic()
        cpu_at_start = worker.cpu_seconds()
        limit = self.deadline if timeout is None else min(self.deadline, started + timeout)
        while True:
            for candidate in self.workers:
                found = self._take(candidate, kind if candidate is worker else None)
                if found is not None:
                    return found
            if worker.eof or (not worker.running() and not self._readable(worker)):
                raise BenchError(
                    f"{worker.name} exited (code {worker.popen.poll()}) before sending "
                    f"{kind!r}:\n{worker.stderr_tail()}"
                )
            now = time.monotonic()
            if now >= limit:
                spent = how_it_waited(
                    worker.name, max(0.0, worker.cpu_seconds() - cpu_at_start), now - started
                )
                if limit >= self.deadline:
                    raise Deadline(
                        f"hard time limit of {self.timeout:.0f} s reached waiting for "
                        f"{worker.name}'s {kind!r} ({spent}):\n{worker.stderr_tail()}"
                    )
                raise BenchError(
                    f"{worker.name} did not send {kind!r} in time ({spent}):\n"
                    f"{worker.stderr_tail()}"
                )
            self._pump(min(0.25, limit - now))

    def _readable(self, worker: Worker) -> bool:
        return any(key.data is worker for key in self._selector.get_map().values())

    def _take(self, worker: Worker, kind: str | None) -> dict[str, Any] | None:
        """Handle queued messages of `worker`; return the first of type `kind`."""
        while worker.messages:
            message = worker.messages.popleft()
            mtype = message.get("type")
            if mtype == "error":
                raise BenchError(
                    f"{worker.name} failed: {message.get('message')}\n"
                    f"{message.get('traceback', '')}"
                )
            if mtype == "progress":
                if self.on_progress is not None:
                    self.on_progress(worker, message)
                continue
            if mtype == kind:
                return message
            if mtype == "output":
                continue
            # A message nobody waits for yet: keep it for a later wait_for.
            worker.messages.appendleft(message)
            return None
        return None

    def stop(self, worker: Worker) -> None:
        """Stop one worker now and forget it."""
        self._forget(worker)
        if worker in self.workers:
            self.workers.remove(worker)
        worker.stop()

    def _forget(self, worker: Worker) -> None:
        for key in list(self._selector.get_map().values()):
            if key.data is worker:
                self._selector.unregister(key.fileobj)

    def close(self) -> None:
        """Stop every worker (idempotent), the last started first: a worker may need
        one started before it (a server its Redis) while it stops."""
        workers, self.workers = self.workers[::-1], []
        for worker in workers:
            if worker.popen.stdin is not None and not worker.popen.stdin.closed:
                with contextlib.suppress(OSError):
                    worker.popen.stdin.close()
        for worker in workers:
            self._forget(worker)
            worker.stop()
        self._selector.close()


def how_it_waited(name: str, cpu_s: float, waited_s: float) -> str:
    """How a worker spent a wait that timed out: a worker that stays silent while
    busy is stuck in a loop (its stack shows where: py-spy dump), an idle one waits
    for something that never comes."""
    # A loop gets less than a whole core on a shared machine; a wait uses next to nothing.
    busy = "busy: a loop, not a wait" if cpu_s >= 0.2 * waited_s else "idle"
    return f"{name} used {cpu_s:.1f} CPU s in the {waited_s:.1f} s waited, {busy}"


# prctl(PR_SET_PDEATHSIG) exists on Linux only.
_HAS_PDEATHSIG = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1


def _kill_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the process that started it exits."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Progress:
    """A one-line progress bar on standard error, drawn only on a terminal."""

    WIDTH = 30

    def __init__(self, label: str, total_s: float, enabled: bool | None = None) -> None:
        self.label = label
        self.total_s = max(total_s, 1e-9)
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last_draw = 0.0
        self._drawn = False

    def update(self, text: str = "", elapsed: float | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        if elapsed is None:
            elapsed = now - self.started
        fraction = min(1.0, max(0.0, elapsed / self.total_s))
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        sys.stderr.write(f"\r{self.label:<12} [{bar}] {fraction * 100:3.0f}% {text:<40}")
        sys.stderr.flush()
        self._drawn = True

    def finish(self) -> None:
        if self.enabled and self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


def report(
    title: str,
    rows: Sequence[tuple[str, Any]],
    result: Mapping[str, Any],
    out: IO[str] | None = None,
    table: bool = True,
) -> None:
    """Print a human table and then the result as one JSON line (always the last line).

    Both say which build of vinom ran (`build`, see `build_info`).
    """
    out = out or sys.stdout
    build = build_info()
    result = {**result, "build": build}
    rows = [*rows, ("build", f"{build['code']}, AEAD {build['aead']}")]
    if table:
        width = max((len(name) for name, _ in rows), default=0)
        out.write(f"{title}\n{'-' * len(title)}\n")
        for name, value in rows:
            out.write(f"{name:<{width}}  {human_number(value)}\n")
    out.write(json.dumps(dict(result), sort_keys=True) + "\n")
    out.flush()


def human_number(value: Any) -> str:
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def bottleneck(
    server_cpu_s: float, load_cpu_s: float, wall_s: float, load_cores: int = 1
) -> str:
    """Which side limited the rate: the busier one relative to the cores it had."""
    if wall_s <= 0:
        return "unknown"
    server_busy = server_cpu_s / wall_s
    load_busy = load_cpu_s / (wall_s * max(load_cores, 1))
    if server_busy >= 0.9 and server_busy >= load_busy:
        return "server"
    if load_busy >= 0.9:
        return "load"
    return "neither (latency-bound)"


def _is_under(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory
