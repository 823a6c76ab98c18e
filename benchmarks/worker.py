"""The child side of a benchmark: JSON lines to the parent, commands from it, exit on EOF.

Workers are real processes started by `benchmarks.harness.Harness`. They
report with `emit` (one JSON object per line on standard output) and stop
when their standard input closes, which also happens when the parent dies.
Twisted workers read commands through `Control` (a `StandardIO` line
protocol); plain-socket load generators poll standard input in their own
selector loop with `stdin_closed`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.internet.stdio import StandardIO
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

# A handler answers at once (a mapping), later (a Deferred firing with one), or not at all.
Handler = Callable[[dict[str, Any]], Mapping[str, Any] | Deferred[Any] | None]


def global_reactor(stock: bool = False) -> Any:
    """The process's reactor: vinom's, as in production (vinom.net.reactor), or with `stock`
    Twisted's default; workers are entry points, so they may install it."""
    try:
        from vinom.net.reactor import install
    except ImportError:  # a build before it (a baseline being compared): Twisted's
        stock = True
    if stock:
        from twisted.internet import reactor

        return reactor
    return install()


def reactor_name(reactor: Any) -> str:
    """The reactor's class, as twistd logs it (`vinom.net.reactor.EPollReactor`)."""
    return f"{type(reactor).__module__}.{type(reactor).__qualname__}"


def emit(kind: str, **fields: Any) -> None:
    """Send one message to the parent (for workers not using `Control`)."""
    sys.stdout.write(json.dumps({"type": kind, **fields}) + "\n")
    sys.stdout.flush()


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """Resident memory of this process now (from /proc, falling back to psutil)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss)


def stdin_closed() -> bool:
    """True once the parent closed our standard input (non-blocking check)."""
    import select

    readable, _, _ = select.select([sys.stdin.fileno()], [], [], 0)
    if not readable:
        return False
    try:
        return os.read(sys.stdin.fileno(), 4096) == b""
    except OSError:
        return True


def run_guarded(main: Callable[[], None]) -> None:
    """Run a worker's main; any exception becomes an `error` message and exit code 1."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:
        emit("error", message=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        sys.exit(1)


class Control(LineReceiver):
    """Commands from the parent on stdin, replies on stdout; EOF stops the reactor."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, reactor: IReactorCore, handlers: Mapping[str, Handler]) -> None:
        self.reactor = reactor
        self.handlers = dict(handlers)

    def emit(self, kind: str, **fields: Any) -> None:
        assert self.transport is not None
        self.transport.write(json.dumps({"type": kind, **fields}).encode() + b"\n")

    def lineReceived(self, line: bytes) -> None:
        try:
            command = json.loads(line)
            handler = self.handlers[command["type"]]
            reply = handler(command)
        except Exception as e:
            self.emit(
                "error", message=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()
            )
            return
        if isinstance(reply, Deferred):
            reply.addCallbacks(
                lambda answer: self.emit(command["type"], **answer), self._failed
            )
        elif reply is not None:
            self.emit(command["type"], **reply)

    def _failed(self, failure: Failure) -> None:
        self.emit(
            "error", message=f"{type(failure.value).__name__}: {failure.value}",
            traceback=failure.getTraceback(),
        )

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.reactor.running:
            self.reactor.stop()


def start_control(reactor: Any, handlers: Mapping[str, Handler]) -> Control:
    """Attach a `Control` protocol to this process's standard input and output."""
    control = Control(reactor, handlers)
    StandardIO(control, reactor=reactor)
    return control
