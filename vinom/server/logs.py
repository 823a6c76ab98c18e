"""Log output formats for the server: twistd's text lines, or JSON lines for collectors.

twistd starts logging after `makeService`, looking first for an `ILogObserver`
component on the application; `ServerRoot` puts one there when JSON is
asked for, so `twistd vinom --log-format json` needs no `--logger` incantation.
JSON lines go to standard output, where container platforms collect them: one
object per event with its time, level, namespace and rendered message, then the
event's own fields (`json_line`; docs/operations.md, "Logs").
The web sites' access log (a line per HTTP request) is off unless asked for.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any, cast

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import FileLogObserver, ILogObserver, formatEvent
from twisted.web import http, server

LOG_FORMATS = ("text", "json")


class Site(server.Site):
    """A twisted.web site that writes its access log (a line per HTTP request, which
    twisted.web writes by default) only when `access_log` is true: `--access-log`."""

    def __init__(self, resource: Any, *args: Any, access_log: bool = False, **kwargs: Any) -> None:
        super().__init__(resource, *args, **kwargs)
        self.access_log = access_log

    def log(self, request: http.Request) -> None:
        if self.access_log:
            super().log(request)


# The fields every JSON line starts with (docs/operations.md, "Logs"); an event's own
# field of one of these names gives way.
JSON_LINE_FIELDS = ("time", "level", "namespace", "message")
# What Twisted's legacy log bridge adds to an event (twisted.python.log.msg), which the
# rendered message already says.
_LEGACY_FIELDS = frozenset({"message", "time", "isError", "format", "why", "failure",
                            "printed", "system"})  # fmt: skip


def json_line(event: Mapping[str, Any]) -> str:
    """One event as one JSON object (no newline): `time` (seconds since the epoch),
    `level`, `namespace`, `message` (the text twistd's text log would show), then
    `traceback` when it carries a failure, and its own fields (values JSON cannot
    hold as their text). Twisted's bookkeeping (`log_format`, `log_flattened`,
    `log_logger`, `log_source`, ...) stays out: the message already says it."""
    level = event.get("log_level")
    line: dict[str, Any] = {
        "time": event.get("log_time"),
        "level": getattr(level, "name", None),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(dict(event)),
    }
    failure = event.get("log_failure")
    if failure is not None:
        line["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in line or key in _LEGACY_FIELDS:
            continue
        line[key] = value
    return json.dumps(line, default=str, ensure_ascii=False)


def json_lines_observer(stream: IO[str] | None = None) -> ILogObserver:
    """An observer writing one JSON object per event and line (`json_line`)."""
    return FileLogObserver(stream or sys.stdout, lambda event: json_line(event) + "\n")


class ServerRoot(service.MultiService):
    """The root service; when attached to an application it installs the chosen log format.

    `before_stop`, if set, runs when the service stops, before its children
    stop, and they stop once the Deferred it returns fires (the server's drain).
    The children stop together, in reverse order, except those with a true
    `stops_last` (the Redis pool, which the others use as they stop): these
    stop once the others have.
    """

    def __init__(self, log_format: str = "text", stream: IO[str] | None = None) -> None:
        super().__init__()
        self.before_stop: Callable[[], Deferred[None]] | None = None
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {LOG_FORMATS}, not {log_format!r}")
        self.log_format = log_format
        self._stream = stream

    def stopService(self) -> Deferred[object]:
        if self.before_stop is None:
            return self._stop_children()
        d = self.before_stop()
        return d.addCallback(lambda _: self._stop_children())

    def _stop_children(self) -> Deferred[object]:
        service.Service.stopService(self)
        children = list(reversed(list(self)))
        last = [child for child in children if getattr(child, "stops_last", False)]
        first = [child for child in children if child not in last]

        def stop(services: list[service.IService]) -> Deferred[object]:
            return cast(Deferred[object], DeferredList([maybeDeferred(s.stopService)
                                                        for s in services]))  # fmt: skip

        return stop(first).addCallback(lambda _: stop(last))

    def setServiceParent(self, parent: service.IServiceCollection) -> None:
        super().setServiceParent(parent)
        if self.log_format == "json":
            setter = getattr(parent, "setComponent", None)
            if setter is not None:
                setter(ILogObserver, json_lines_observer(self._stream))
