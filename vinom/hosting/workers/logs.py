"""A game-host worker's log, carried to the lobby process at each event's own level.

The worker (vinom.hosting.workers.main) writes each log event as one JSON line on
its stderr: its level, its namespace and its text (a failure's traceback
included). The lobby process (vinom.hosting.workers.child) logs the event again
under the same namespace and level, so that a worker's critical line is
critical in the server's log too, and adds its one time stamp. Twisted's own
chatter at info about the worker's pipe (AMP's "connection established" and
"connection lost") is left out: it says nothing an operator can act on.
"""

from __future__ import annotations

import json
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
)
from zope.interface import provider

# Namespaces whose info lines a worker does not pass on (module docstring).
QUIET_NAMESPACES = ("twisted.protocols.amp",)


def worker_log_observer(stream: IO[str]) -> ILogObserver:
    """The worker's observer: one JSON line per event on `stream` (module docstring)."""

    @provider(ILogObserver)
    def write(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback().rstrip()}"
        level = event.get("log_level", LogLevel.info)
        record = {"level": level.name, "namespace": event.get("log_namespace", "-"),
                  "text": text}  # fmt: skip
        stream.write(json.dumps(record) + "\n")
        stream.flush()

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.debug)
    for namespace in QUIET_NAMESPACES:
        predicate.setLogLevelForNamespace(namespace, LogLevel.warn)
    return FilteringLogObserver(write, [predicate])


def read_worker_event(line: bytes) -> tuple[LogLevel, str, str] | None:
    """(level, namespace, text) of a line `worker_log_observer` wrote; None for any
    other line (what a game printed, or Python's own last words on stderr)."""
    try:
        record = json.loads(line)
        return (LogLevel.levelWithName(record["level"]), str(record["namespace"]),
                str(record["text"]))  # fmt: skip
    except (ValueError, TypeError, KeyError, LogLevel.InvalidLogLevelError):
        return None
