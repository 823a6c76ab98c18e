"""Log output formats for the server: twistd's text lines, or JSON lines for collectors.

twistd starts logging after `makeService`, looking first for an `ILogObserver`
component on the application; `ServerRoot` puts one there when JSON is
asked for, so `twistd vinom --log-format json` needs no `--logger` incantation.
JSON lines go to standard output, where container platforms collect them.
The web sites' access log (a line per HTTP request) is off unless asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any, cast

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import ILogObserver, jsonFileLogObserver
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


def json_lines_observer(stream: IO[str] | None = None) -> ILogObserver:
    """An observer writing one JSON object per event and line (record separator off)."""
    return jsonFileLogObserver(stream or sys.stdout, recordSeparator="")


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
