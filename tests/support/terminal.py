"""A command in a pseudo-terminal, as a person runs `vinom play` or `vinom replay`:
what it draws, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase


class TerminalProcess(ProcessProtocol):
    """Collects a process's screen output and its end."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[BaseException] = Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        # The exception, not the Failure: a Failure would make the Deferred fail.
        self.ended.callback(reason.value or Exception("no reason"))


def in_a_terminal(
    case: TestCase, argv: Sequence[str], env: Mapping[str, str], path: str | None = None
) -> tuple[TerminalProcess, Any]:
    """Run `argv` in a pseudo-terminal (killed at `case`'s cleanup if still there):
    its `TerminalProcess` and its process transport (`write` types keys)."""
    terminal = TerminalProcess()
    process = reactor.spawnProcess(
        terminal, argv[0], list(argv), env=dict(env), path=path, usePTY=True
    )

    def kill() -> Deferred[BaseException]:
        if not terminal.ended.called:
            process.signalProcess("KILL")
        return terminal.ended

    case.addCleanup(kill)
    return terminal, process
