"""A stand-in for the Agones SDK server's REST interface, for tests.

Written from Agones's published description (sdks/swagger/sdk.swagger.json and
beta.swagger.json, and the SDK server's "local mode"): it serves the calls a game
server makes on localhost:$AGONES_SDK_HTTP_PORT, keeps one GameServer's state as
local mode does (Ready, Allocated, Reserved, Shutdown; labels under the
`agones.dev/sdk-` prefix; Counters declared up front, their count kept within
[0, capacity]), streams it on `GET /watch/gameserver` (newline-delimited JSON, the
current state first, then each change), and records every call in `calls` for a
test to read. `set_state` is Agones changing the state (a test marks the game
server Shutdown).
"""

from __future__ import annotations

import json
import time
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

LABEL_PREFIX = "agones.dev/sdk-"


@frozen
class Call:
    method: str
    path: str
    body: Any
    at: float


class AgonesSDKStandIn(Resource):
    """The SDK server's REST interface over one GameServer (module docstring)."""

    isLeaf = True

    def __init__(self, counters: dict[str, tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.state = "Scheduled"
        self.labels: dict[str, str] = {}
        self.annotations: dict[str, str] = {}
        # name -> [count, capacity]
        self.counters = {name: list(values) for name, values in (counters or {}).items()}
        self._watchers: list[Request] = []
        self._waiting: list[tuple[Any, Deferred[Call]]] = []

    # -- what a test does ----------------------------------------------------

    def site(self) -> Site:
        site = Site(self)
        site.noisy = False
        return site

    def set_state(self, state: str) -> None:
        """Agones changes the GameServer's state (e.g. to Shutdown)."""
        self.state = state
        self._changed()

    @property
    def watching(self) -> int:
        """Watch streams open now."""
        return len(self._watchers)

    def paths(self) -> list[str]:
        """`METHOD /path` of each call so far."""
        return [f"{c.method} {c.path}" for c in self.calls]

    def when_called(self, method: str, path: str, after: int = 0) -> Deferred[Call]:
        """Fires with the first call `method path` at index `after` or later."""
        for call in self.calls[after:]:
            if (call.method, call.path) == (method, path):
                d: Deferred[Call] = Deferred()
                d.callback(call)
                return d
        waiting: Deferred[Call] = Deferred()
        self._waiting.append(((method, path, after), waiting))
        return waiting

    def close_watches(self) -> None:
        for request in self._watchers:
            request.finish()
        self._watchers = []

    # -- the REST interface --------------------------------------------------

    def game_server(self) -> dict[str, Any]:
        return {
            "object_meta": {
                "name": "local", "namespace": "default", "uid": "1234",
                "resource_version": "v1", "generation": "1",
                "creation_timestamp": "1531795395",
                "annotations": dict(self.annotations), "labels": dict(self.labels),
            },
            "status": {
                "state": self.state, "address": "127.0.0.1",
                "ports": [{"name": "default", "port": 7777}],
                "counters": {name: {"count": str(count), "capacity": str(capacity)}
                             for name, (count, capacity) in self.counters.items()},
            },
        }  # fmt: skip

    def render(self, request: Request) -> bytes | int:
        method = request.method.decode()
        path = request.path.decode()
        raw = request.content.read() if request.content is not None else b""
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return self._error(request, 400, "the body is not JSON")
        call = Call(method, path, body, time.monotonic())
        self.calls.append(call)
        request.setHeader(b"content-type", b"application/json")
        if method == "GET" and path == "/watch/gameserver":
            # Open before anyone waiting for the call hears of it (`watching`).
            self._watchers.append(request)
            request.notifyFinish().addBoth(lambda _: self._forget(request))
            self._wake(call)
            request.write(self._watch_line())
            return NOT_DONE_YET
        self._wake(call)
        answer = self._answer(request, method, path, body)
        if isinstance(answer, int):
            return answer
        return json.dumps(answer).encode()

    def _answer(self, request: Request, method: str, path: str, body: Any) -> Any:
        transitions = {"/ready": "Ready", "/allocate": "Allocated", "/shutdown": "Shutdown"}
        if method == "POST" and path in transitions:
            self.set_state(transitions[path])
            return {}
        if method == "POST" and path == "/health":
            return {}
        if method == "POST" and path == "/reserve":
            self.set_state("Reserved")
            return {}
        if method == "GET" and path == "/gameserver":
            return self.game_server()
        if method == "PUT" and path in ("/metadata/label", "/metadata/annotation"):
            if not isinstance(body, dict) or not isinstance(body.get("key"), str):
                return self._error(request, 400, "a key and a value")
            where = self.labels if path.endswith("label") else self.annotations
            where[LABEL_PREFIX + body["key"]] = str(body.get("value", ""))
            self._changed()
            return {}
        prefix = "/v1beta1/counters/"
        if path.startswith(prefix):
            name = path[len(prefix) :]
            if name not in self.counters:
                return self._error(request, 404, f"counter not found: {name}")
            if method == "PATCH":
                return self._update_counter(request, name, body)
            if method == "GET":
                count, capacity = self.counters[name]
                return {"name": name, "count": str(count), "capacity": str(capacity)}
        return self._error(request, 404, f"no {method} {path}")

    def _update_counter(self, request: Request, name: str, body: Any) -> Any:
        if not isinstance(body, dict):
            return self._error(request, 400, "a CounterUpdateRequest")
        count, capacity = self.counters[name]
        try:
            if "capacity" in body:
                capacity = int(body["capacity"])
            if "count" in body:
                count = int(body["count"])
            count += int(body.get("countDiff", 0))
        except (TypeError, ValueError):
            return self._error(request, 400, "int64 fields as strings")
        if capacity < 0 or not 0 <= count <= capacity:
            return self._error(request, 400, f"OUT_OF_RANGE: count {count}, capacity {capacity}")
        self.counters[name] = [count, capacity]
        self._changed()
        return {"name": name, "count": str(count), "capacity": str(capacity)}

    @staticmethod
    def _error(request: Request, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"code": code, "message": message}).encode()

    def _watch_line(self) -> bytes:
        return json.dumps({"result": self.game_server()}).encode() + b"\n"

    def _changed(self) -> None:
        line = self._watch_line()
        for request in list(self._watchers):
            request.write(line)

    def _forget(self, request: Request) -> None:
        if request in self._watchers:
            self._watchers.remove(request)

    def _wake(self, call: Call) -> None:
        index = len(self.calls) - 1
        still = []
        for (method, path, after), waiting in self._waiting:
            if (method, path) == (call.method, call.path) and index >= after:
                waiting.callback(call)
            else:
                still.append(((method, path, after), waiting))
        self._waiting = still
