"""A game host's Agones lifecycle: a small client of the Agones SDK server's REST interface.

On Kubernetes with Agones every game-host pod runs next to an SDK server (a
sidecar on localhost:$AGONES_SDK_HTTP_PORT, 9358 by default). `AgonesSDK` speaks
its REST interface (Agones's sdk.swagger.json and beta.swagger.json) with
twisted.web's client; `AgonesLifecycle` is the service of `twistd vinom
host --agones` that uses it:

- once the process listens it sets its labels (`PUT /metadata/label`: the realm,
  which Agones stores as `agones.dev/sdk-realm`), its match capacity as the
  Counter `matches` (`PATCH /v1beta1/counters/matches`: count = matches running,
  capacity = `--max-games`; the free capacity is their difference) and says
  `POST /ready`;
- every `health_every` seconds it says `POST /health`, while its game hosts
  answer (a host whose workers are all dead stops saying so, and Agones marks it
  Unhealthy);
- as matches start and end it updates the Counter; while it hosts a match it is
  `Allocated` (`POST /allocate`: Agones never removes an Allocated game server
  when it scales a Fleet down), and `Ready` again once its last match ended;
- it follows its GameServer (`GET /watch/gameserver`, newline-delimited JSON):
  once Agones marks it `Shutdown` it takes no new matches (`on_shutdown`: the
  host agent announces no free capacity) and the pod's SIGTERM that follows drains it;
- a drain (SIGTERM) sets the Counter's capacity to its count (no free capacity),
  and after the drain, as the process stops, it says `POST /shutdown`.

The SDK server may start after the game server, or go away: every call that
fails is retried with a growing pause (up to `RETRY_MAX` seconds), the host keeps
hosting the matches lobbies place on it through Redis, `problem()` says why it is
not ready (the operations endpoint's `/ready` answers 503 with it) and the log
has one line when the SDK server stops answering and one when it answers again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from contextlib import suppress
from functools import partial
from io import BytesIO
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from vinom.hosting.ports import PortAllocator
from vinom.net.http import quiet_agent

DEFAULT_SDK_PORT = 9358
SDK_PORT_VARIABLE = "AGONES_SDK_HTTP_PORT"
# The Counter the host's matches are counted in (the Fleet's template declares it).
COUNTER = "matches"
# The label key of the realm (Agones prefixes it: agones.dev/sdk-realm).
REALM_LABEL = "realm"
# Seconds a call to the SDK server may take.
CALL_TIMEOUT = 5.0
# The pause before retrying a failed call: doubled after each failure, up to RETRY_MAX.
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
# Seconds the stopping host tries to say Shutdown for.
SHUTDOWN_WAIT = 5.0


def sdk_port(environ: Mapping[str, str] = os.environ) -> int:
    """The SDK server's REST port: $AGONES_SDK_HTTP_PORT, else 9358."""
    text = environ.get(SDK_PORT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_SDK_PORT
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"${SDK_PORT_VARIABLE} must be a port number, not {text!r}")
    return int(text)


class SDKRefused(Exception):
    """The SDK server answered a call with an error status."""

    def __init__(self, method: str, path: str, code: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {code} {body[:200].decode(errors='replace')}")
        self.code = code


class _Lines(Protocol):
    """Newline-delimited JSON documents of a streamed response, one callback each."""

    def __init__(self, on_document: Callable[[dict[str, Any]], object]) -> None:
        self.on_document = on_document
        self.finished: Deferred[None] = Deferred()
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    document = json.loads(line)
                except ValueError:
                    continue  # not ours to fix: the next update carries the whole state
                if isinstance(document, dict):
                    self.on_document(document)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if not self.finished.called:  # (cancelled: the stream was closed by its reader)
            self.finished.callback(None)

    def close(self) -> None:
        """Close the stream: the response body's transport (twisted.web's
        TransportProxyProducer) is an IPushProducer, and stopping it drops the connection."""
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()


class AgonesSDK:
    """The Agones SDK server's REST interface (module docstring); every call fires with
    the decoded JSON answer, or fails (`SDKRefused` for an error status)."""

    def __init__(self, reactor: Any, port: int = DEFAULT_SDK_PORT, host: str = "localhost") -> None:
        self.address = f"{host}:{port}"
        self._reactor = reactor
        self._base = f"http://{host}:{port}"
        # No persistent connections: a call every few seconds, and nothing left open at
        # stop; and no log line for each (quiet_agent).
        self._agent = quiet_agent(reactor, CALL_TIMEOUT)
        self._watching: _Lines | None = None

    def _request(self, method: str, path: str, body: object | None) -> Deferred[IResponse]:
        headers = Headers({b"content-type": [b"application/json"]})
        producer = None if body is None else FileBodyProducer(BytesIO(json.dumps(body).encode()))
        d: Deferred[IResponse] = self._agent.request(
            method.encode(), (self._base + path).encode(), headers, producer
        )
        return d

    def call(self, method: str, path: str, body: object | None = None) -> Deferred[Any]:
        async def run() -> Any:
            response = await self._request(method, path, body)
            data = await readBody(response)
            if not 200 <= response.code < 300:
                raise SDKRefused(method, path, response.code, data)
            return json.loads(data) if data.strip() else {}

        d = Deferred.fromCoroutine(run())
        return d.addTimeout(CALL_TIMEOUT, self._reactor)

    def ready(self) -> Deferred[Any]:
        return self.call("POST", "/ready", {})

    def health(self) -> Deferred[Any]:
        return self.call("POST", "/health", {})

    def allocate(self) -> Deferred[Any]:
        return self.call("POST", "/allocate", {})

    def shutdown(self) -> Deferred[Any]:
        return self.call("POST", "/shutdown", {})

    def game_server(self) -> Deferred[Any]:
        return self.call("GET", "/gameserver")

    def set_label(self, key: str, value: str) -> Deferred[Any]:
        return self.call("PUT", "/metadata/label", {"key": key, "value": value})

    def set_counter(self, name: str, count: int, capacity: int) -> Deferred[Any]:
        # int64 fields travel as strings in the REST gateway's JSON.
        return self.call("PATCH", f"/v1beta1/counters/{name}",
                         {"count": str(count), "capacity": str(capacity)})  # fmt: skip

    def watch(self, on_game_server: Callable[[dict[str, Any]], object]) -> Deferred[None]:
        """Follow `GET /watch/gameserver`: `on_game_server` gets each GameServer sent; fires
        when the stream ends (fails if it could not be opened)."""

        async def run() -> None:
            opening = self._request("GET", "/watch/gameserver", None)
            opening.addTimeout(CALL_TIMEOUT, self._reactor)
            response = await opening
            if not 200 <= response.code < 300:
                raise SDKRefused("GET", "/watch/gameserver", response.code,
                                 await readBody(response))  # fmt: skip
            lines = _Lines(lambda document: on_game_server(document.get("result") or {}))
            self._watching = lines
            response.deliverBody(lines)
            try:
                await lines.finished
            except CancelledError:
                lines.close()  # a follower that stops closes its stream
                raise
            finally:
                self._watching = None

        return Deferred.fromCoroutine(run())

    def stop_watching(self) -> Deferred[None]:
        """Close the watch stream, if open; fires once it is closed."""
        lines = self._watching
        if lines is None or lines.transport is None:
            return succeed(None)
        done: Deferred[None] = Deferred()
        lines.finished.addBoth(lambda _: done.callback(None))
        lines.close()
        return done


class AgonesLifecycle(Service):
    """A game host's Agones lifecycle (module docstring)."""

    log = Logger()

    def __init__(
        self,
        sdk: AgonesSDK,
        clock: Any,
        allocator: PortAllocator,
        *,
        labels: Mapping[str, str],
        health_every: float,
        on_shutdown: Callable[[], object] = lambda: None,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sdk = sdk
        self._clock = clock
        self._allocator = allocator
        self._labels = dict(labels)
        self._on_shutdown = on_shutdown
        # Whether the game hosts answer (set by the wiring once the status reader exists).
        self.healthy = healthy
        self._health = LoopingCall(self._say_healthy)
        self._health.clock = clock
        self._health_every = health_every
        self._saying_healthy = False
        self.draining = False
        # Agones marked this game server Shutdown.
        self.marked_shutdown = False
        # Ready said (and answered): the lifecycle has begun.
        self.ready = False
        # Since when the SDK server does not answer (None: it does, or was not asked yet).
        self._unreachable_since: float | None = None
        # Calls are numbered as they are sent; the latest answered one's number. Several
        # calls are out at once (Health, a retried update, the watch), and one sent just
        # before the SDK server came up may fail after a later one was answered (each of
        # localhost's addresses is tried in turn): such a failure is news of the past.
        self._calls_sent = 0
        self._answered = 0
        self._last_error = ""
        # What the SDK server was last told (count, capacity) and (state), and whether
        # an update is on its way.
        self._counter_sent: tuple[int, int] | None = None
        self._counter_refused = False
        self._state_sent = ""
        self._syncing = False
        self._sync_again = False
        self._pauses: set[Deferred[None]] = set()
        # The lifecycle's own loops, and the Counter updates on their way.
        self._following: list[Deferred[Any]] = []
        self._tasks: list[Deferred[Any]] = []
        self._refusals: set[str] = set()
        allocator.add_observer(self._capacity_changed)

    # -- what the operations endpoint reads ------------------------------------

    def problem(self) -> str | None:
        """Why Agones should not count on this host now (for `/ready`), or None."""
        if self.marked_shutdown:
            return "agones: this game server is marked Shutdown"
        if self._unreachable_since is not None:
            return (f"agones: the SDK server at {self._sdk.address} does not answer "
                    f"({self._last_error}); retrying")  # fmt: skip
        if not self.ready:
            return f"agones: not Ready yet (SDK server at {self._sdk.address})"
        return None

    # -- service -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._health.start(self._health_every, now=True)
        self._following = [
            Deferred.fromCoroutine(self._begin()),
            Deferred.fromCoroutine(self._follow()),
        ]
        for task in self._following:
            task.addErrback(self._task_failed)

    def drain(self) -> None:
        """Take no new matches: the Counter's free capacity goes to zero."""
        if self.draining:
            return
        self.draining = True
        self._capacity_changed()

    def stopService(self) -> Deferred[None]:
        """After the drain: stop following and saying healthy, then say Shutdown."""
        super().stopService()
        self.draining = True
        if self._health.running:
            self._health.stop()
        for pause in list(self._pauses):
            pause.cancel()
        # The drain's last Counter update goes out before Shutdown (it is not retried).
        updating = list(self._tasks)
        # No GameServer update is followed once stopping (Shutdown comes back on it).
        for task in self._following:
            task.cancel()
        return Deferred.fromCoroutine(self._shut_down(updating))

    async def _shut_down(self, updating: list[Deferred[Any]]) -> None:
        await self._sdk.stop_watching()
        await DeferredList(updating)
        # A drain that came while an update was out only asked that update's loop to go
        # round again, which stops with the service: its Counter is sent here, once.
        if self._counter_sent is not None and self._counter_unsaid():
            with suppress(Exception):
                await self._send_counter()
        deadline = self._clock.seconds() + SHUTDOWN_WAIT
        pause = RETRY_FIRST
        while True:
            try:
                await self._sdk.shutdown()
            except Exception as error:
                if self._clock.seconds() + pause >= deadline:
                    self.log.warn("agones: saying Shutdown to the SDK server at {address} "
                                  "failed: {error}", address=self._sdk.address,
                                  error=_describe(error))  # fmt: skip
                    return
                await _sleep(self._clock, pause)
                pause *= 2
                continue
            self.log.info("agones: said Shutdown")
            return

    def _task_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.log.failure("agones: the lifecycle ended", failure)

    # -- calls, retried ----------------------------------------------------------

    def _sending(self) -> int:
        """The number of a call about to be sent (later calls, larger numbers)."""
        self._calls_sent += 1
        return self._calls_sent

    def _worked(self, sent: int) -> None:
        self._answered = max(self._answered, sent)
        if self._unreachable_since is not None:
            self.log.info(
                "agones: the SDK server at {address} answers again, after {seconds:.1f} s",
                address=self._sdk.address, seconds=self._clock.seconds() - self._unreachable_since,
            )  # fmt: skip
            self._unreachable_since = None

    def _failed(self, error: BaseException, sent: int) -> None:
        if isinstance(error, SDKRefused):
            # It answers, but refuses: a mistake in the GameServer's spec, said once per kind.
            self._worked(sent)
            text = str(error)
            if text not in self._refusals:
                self._refusals.add(text)
                self.log.warn("agones: the SDK server refused {error}", error=text)
            return
        if sent < self._answered:
            # Sent before a call that has been answered since: not news of now.
            return
        self._last_error = _describe(error)
        if self._unreachable_since is None:
            self._unreachable_since = self._clock.seconds()
            self.log.warn(
                "agones: the SDK server at {address} does not answer ({error}); this host "
                "keeps serving and retries (logged again once it answers)",
                address=self._sdk.address, error=self._last_error,
            )  # fmt: skip

    async def _until_done(self, call: Callable[[], Deferred[Any]], *,
                          refusal_ends: bool = False) -> Any:  # fmt: skip
        """`call()` until it works, pausing longer after each failure; with
        `refusal_ends`, an error status from the SDK server (a mistake in the
        GameServer's spec, not an outage) is raised instead of retried."""
        pause = RETRY_FIRST
        while True:
            sent = self._sending()
            try:
                result = await call()
            except CancelledError:
                raise
            except Exception as error:
                self._failed(error, sent)
                if refusal_ends and isinstance(error, SDKRefused):
                    raise
                if not self.running:
                    raise CancelledError() from None  # stopped: Shutdown is the last call
                await self._pause(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            self._worked(sent)
            return result

    async def _pause(self, seconds: float) -> None:
        pause = _sleep(self._clock, seconds)
        self._pauses.add(pause)
        try:
            await pause
        finally:
            self._pauses.discard(pause)

    # -- the lifecycle -----------------------------------------------------------

    async def _begin(self) -> None:
        for key, value in self._labels.items():
            # A refused label is said once; the host serves on without it.
            with suppress(SDKRefused):
                await self._until_done(partial(self._sdk.set_label, key, value),
                                       refusal_ends=True)  # fmt: skip
        await self._sync()
        await self._until_done(self._sdk.ready)
        self._state_sent = "Ready"
        self.ready = True
        self.log.info("agones: said Ready (SDK server at {address})", address=self._sdk.address)
        # Matches that started meanwhile.
        self._capacity_changed()

    def _say_healthy(self) -> None:
        if self._saying_healthy or not self.healthy():
            # Unhealthy: Agones marks the host Unhealthy once enough of these are missed.
            return
        self._saying_healthy = True

        sent = self._sending()

        def worked(_: object) -> None:
            self._worked(sent)

        def done(_: object) -> None:
            self._saying_healthy = False

        d = self._sdk.health().addCallbacks(worked, lambda f: self._failed(f.value, sent))
        d.addBoth(done)

    def _capacity_changed(self) -> None:
        if not self.running or not self.ready:
            return
        if self._syncing:
            self._sync_again = True
            return
        d = Deferred.fromCoroutine(self._sync())
        d.addErrback(self._task_failed)
        self._tasks.append(d)

        def done(result: object) -> object:
            self._tasks.remove(d)
            return result

        d.addBoth(done)

    def _counter(self) -> tuple[int, int]:
        """(count, capacity): matches running, and as many as can run (no more while draining)."""
        count = self._allocator.in_use
        return count, count if self.draining else self._allocator.size

    def _counter_unsaid(self) -> bool:
        """Whether the Counter differs from what the SDK server was last told (and it
        has the Counter at all)."""
        return not self._counter_refused and self._counter() != self._counter_sent

    def _send_counter(self) -> Deferred[Any]:
        count, capacity = self._counter()

        def sent(result: object) -> object:
            self._counter_sent = (count, capacity)
            return result

        return self._sdk.set_counter(COUNTER, count, capacity).addCallback(sent)

    async def _sync(self) -> None:
        """Tell the SDK server the Counter and the state the host has now, one update
        at a time, the changes made meanwhile in the next."""
        self._syncing = True
        try:
            self._sync_again = True
            while self._sync_again and self.running:
                self._sync_again = False
                if self._counter_unsaid():
                    try:
                        # A retry sends the Counter as it is then, not as it was.
                        await self._until_done(self._send_counter, refusal_ends=True)
                    except SDKRefused:
                        # No Counter `matches` in the GameServer's spec: said once.
                        self._counter_refused = True
                if not self.ready or self.draining or self.marked_shutdown:
                    continue
                # Allocated while it hosts a match (never removed by a scale-down), Ready idle.
                state = "Allocated" if self._allocator.in_use else "Ready"
                if state != self._state_sent:
                    call = self._sdk.allocate if state == "Allocated" else self._sdk.ready
                    with suppress(SDKRefused):
                        await self._until_done(call, refusal_ends=True)
                        self._state_sent = state
        finally:
            self._syncing = False

    async def _follow(self) -> None:
        pause = RETRY_FIRST
        while self.running:
            if await self._watch_once():
                pause = RETRY_FIRST
            if not self.running:
                return
            await self._pause(pause)
            pause = min(pause * 2, RETRY_MAX)

    async def _watch_once(self) -> bool:
        """Follow one watch stream to its end: True if it ended well. A failure is
        numbered as the stream's last sign of life (its opening, or its last update)."""
        sent = self._sending()

        def on_game_server(game_server: dict[str, Any]) -> None:
            nonlocal sent
            sent = self._sending()
            self._game_server(game_server, sent)

        try:
            await self._sdk.watch(on_game_server)
        except CancelledError:
            raise
        except Exception as error:
            self._failed(error, sent)
            return False
        return True

    def _game_server(self, game_server: dict[str, Any], sent: int) -> None:
        self._worked(sent)
        status = game_server.get("status") or {}
        if status.get("state") == "Shutdown" and not self.marked_shutdown:
            self.marked_shutdown = True
            self.log.info("agones: this game server is marked Shutdown: it takes no new matches")
            self.drain()
            self._on_shutdown()


def _sleep(clock: Any, seconds: float) -> Deferred[None]:
    """Fires after `seconds`; cancelling it cancels the timer."""
    calls: list[IDelayedCall] = []

    def cancel(_: Deferred[None]) -> None:
        if calls and calls[0].active():
            calls[0].cancel()

    d: Deferred[None] = Deferred(cancel)
    calls.append(clock.callLater(seconds, d.callback, None))
    return d


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__
