"""A game host under Agones (`twistd vinom host --agones`) and the SDK server it talks to.

The SDK server is the stand-in of tests/support/agones_sdk.py, on a real port,
named to the host as Agones does ($AGONES_SDK_HTTP_PORT); the host and a lobby
are real `twistd vinom` processes on a real Redis, and real bots play through
them. What is checked is what Agones would see: the calls, in order, over a
whole match's life (labels, the Counter, Ready, Health all along, Allocated
while a match runs, the drain's Counter and Shutdown after SIGTERM); a game
server Agones marks Shutdown takes no new match; and a host whose SDK server
does not answer keeps serving, says so on /ready and in one log line, and
reaches it once it answers.
"""

# slow: starts twistd vinom processes on Redis (tests/cluster/test_scaling.py)

from __future__ import annotations

import os
import random
import socket
from itertools import pairwise
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process
from tests.server.test_ops import http_get, metric_value
from tests.support.agones_sdk import AgonesSDKStandIn, Call
from tests.support.http import capture_log, listen_site
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from vinom.client.bots import play_bot
from vinom.fleet.agones import AgonesLifecycle, AgonesSDK
from vinom.hosting.ports import PortAllocator
from vinom.server.options import HostCommand

HEALTH_EVERY = 0.25
# Agones's default health check: a Health call at least every 5 s (periodSeconds).
AGONES_HEALTH_PERIOD = 5.0


class AgonesHostTests(ClusterTestCase):
    timeout = 120

    def start_sdk(self, port: int = 0) -> tuple[AgonesSDKStandIn, int]:
        """The stand-in, its GameServer declaring the Counter `matches` as a Fleet's
        template would (deploy/overlays/agones)."""
        sdk = AgonesSDKStandIn({"matches": (0, 0)})
        listening = reactor.listenTCP(port, sdk.site(), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.addCleanup(sdk.close_watches)
        return sdk, listening.getHost().port

    async def start_host(self, sdk_port: int, ops: int, *extra: str) -> Process:
        # The process is started with this process's environment (ClusterTestCase.start).
        os.environ["AGONES_SDK_HTTP_PORT"] = str(sdk_port)
        try:
            return await self.start(
                "host", "--agones", "--limit", f"agones-health-interval={HEALTH_EVERY}",
                "--ops-port", f"tcp:{ops}:interface=127.0.0.1", *extra, ports=2,
            )  # fmt: skip
        finally:
            del os.environ["AGONES_SDK_HTTP_PORT"]

    async def play_one_match(self, lobby: Process) -> None:
        address = self.lobby_address(lobby)
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(reactor, address, GAME, f"bot{n}",
                                            rng=random.Random(n)))
            for n in range(2)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])

    async def test_the_calls_over_a_whole_match_lifecycle_end_with_shutdown_after_the_drain(
        self,
    ) -> None:
        sdk, sdk_port = self.start_sdk()
        ops = free_tcp_port()
        host = await self.start_host(sdk_port, ops, "--realm", "eu-west")
        await sdk.when_called("POST", "/ready")
        self.assertEqual(await http_get(f"http://127.0.0.1:{ops}/ready"), (200, b"ready\n"))
        self.assertEqual(sdk.state, "Ready")
        self.assertEqual(sdk.labels, {"agones.dev/sdk-realm": "eu-west"})

        # The host's realm is its label's: a lobby of that realm places on it.
        lobby = await self.start("lobby", "--realm", "eu-west")
        await self.play_one_match(lobby)
        # Its port back, the host is idle: Ready again, its Counter at 0 of 2.
        await until(lambda: sdk.paths().count("POST /ready") == 2, lambda: sdk.paths(), 30)
        self.assertEqual(sdk.counters["matches"], [0, 2])

        host.transport.signalProcess("TERM")
        self.assertEqual((await host.output.ended)[0], 0, host.text)
        self.assertEqual(sdk.state, "Shutdown")

        lifecycle = [c for c in sdk.calls if c.path not in ("/health", "/watch/gameserver")]
        self.assertEqual(
            [(c.method, c.path, c.body) for c in lifecycle],
            [
                ("PUT", "/metadata/label", {"key": "realm", "value": "eu-west"}),
                ("PATCH", "/v1beta1/counters/matches", {"count": "0", "capacity": "2"}),
                ("POST", "/ready", {}),
                # The match starts: one of two in use, and Allocated while it runs...
                ("PATCH", "/v1beta1/counters/matches", {"count": "1", "capacity": "2"}),
                ("POST", "/allocate", {}),
                # ...it ends: Ready again.
                ("PATCH", "/v1beta1/counters/matches", {"count": "0", "capacity": "2"}),
                ("POST", "/ready", {}),
                # SIGTERM: the drain leaves no free capacity, then Shutdown.
                ("PATCH", "/v1beta1/counters/matches", {"count": "0", "capacity": "0"}),
                ("POST", "/shutdown", {}),
            ],
        )
        self.assertIs(sdk.calls[-1], lifecycle[-1], "no call after Shutdown")
        self.check_health_all_along(sdk.calls, ready_at=lifecycle[2].at)
        self.assertNotIn("Traceback", host.text)

    def check_health_all_along(self, calls: list[Call], ready_at: float) -> None:
        """Health from the start to Shutdown, never a gap Agones would count as a miss."""
        health = [c.at for c in calls if c.path == "/health"]
        self.assertLessEqual(health[0], ready_at, "Health before Ready")
        times = [*health, calls[-1].at]
        gaps = [b - a for a, b in pairwise(times)]
        self.assertGreater(health[-1], ready_at, "Health after Ready")
        self.assertLess(max(gaps), AGONES_HEALTH_PERIOD, gaps)

    async def test_a_game_server_marked_shutdown_takes_no_new_match(self) -> None:
        sdk, sdk_port = self.start_sdk()
        ops, lobby_ops = free_tcp_port(), free_tcp_port()
        host = await self.start_host(sdk_port, ops)
        await sdk.when_called("POST", "/ready")
        await self.start("lobby", "--ops-port", f"tcp:{lobby_ops}:interface=127.0.0.1")

        async def lobby_sees_free_ports() -> float:
            code, text = await http_get(f"http://127.0.0.1:{lobby_ops}/metrics")
            self.assertEqual(code, 200)
            return metric_value(text, "vinom_free_ports")

        async def lobby_sees(ports: int) -> bool:
            return await lobby_sees_free_ports() == ports

        await until(lambda: lobby_sees(2), "the lobby seeing 2 free ports")

        # Agones marks it Shutdown (a Fleet scaled down, a node drained): the lobbies
        # see no free port on it any more, its /ready says why, its Counter has no room.
        sdk.set_state("Shutdown")
        await until(lambda: lobby_sees(0), "the lobby seeing no free port")
        self.assertEqual(
            await http_get(f"http://127.0.0.1:{ops}/ready"),
            (503, b"agones: this game server is marked Shutdown\n"),
        )
        await until(lambda: sdk.counters["matches"] == [0, 0], lambda: sdk.counters, 30)
        self.assertIn("marked Shutdown: it takes no new matches", host.text)

    async def test_an_sdk_server_that_does_not_answer_leaves_the_host_serving(self) -> None:
        sdk_port, ops = free_tcp_port(), free_tcp_port()
        # The SDK's port stays bound, not listening (a connection is refused), until the
        # stand-in comes up: no other process of a busy machine (the lobby started
        # below, another test) may take it and answer in its place.
        held = hold_tcp_port(sdk_port)
        host = await self.start_host(sdk_port, ops)
        lobby = await self.start("lobby")
        address = f"localhost:{sdk_port}"

        code, text = await http_get(f"http://127.0.0.1:{ops}/ready")
        self.assertEqual(code, 503)
        self.assertTrue(
            text.startswith(f"agones: the SDK server at {address} does not answer".encode()),
            text,
        )
        self.assertEqual(await http_get(f"http://127.0.0.1:{ops}/health"), (200, b"ok\n"))
        # It keeps hosting the matches lobbies place on it, and retries all the while
        # (Health every 0.25 s, the rest with a growing pause): one line in the log.
        await self.play_one_match(lobby)
        self.assertEqual(host.text.count("does not answer"), 1, host.text)
        self.assertIn("keeps serving and retries", host.text)

        # The SDK server comes up (a sidecar that started late): the host reaches it.
        for bound in held:
            bound.close()
        sdk, _port = self.start_sdk(sdk_port)
        await sdk.when_called("POST", "/ready")
        await until(lambda: "answers again" in host.text, lambda: host.text, 30)
        self.assertEqual(await http_get(f"http://127.0.0.1:{ops}/ready"), (200, b"ready\n"))
        self.assertEqual(sdk.state, "Ready")
        self.assertEqual(sdk.counters["matches"], [0, 2])
        self.assertEqual(host.text.count("does not answer"), 1, host.text)
        self.assertNotIn("Traceback", host.text)


def hold_tcp_port(port: int) -> list[socket.socket]:
    """Sockets bound to `port` on 127.0.0.1 and ::1 (where there is one), not listening."""
    held = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        bound = socket.socket(family, socket.SOCK_STREAM)
        try:
            bound.bind((host, port))
        except OSError:
            bound.close()
            if family == socket.AF_INET:
                raise
            continue
        held.append(bound)
    return held


class _SDKCalls:
    """An AgonesSDK whose every call goes through `_call(name)`, for the doubles below."""

    address = "localhost:9358"

    def _call(self, name: str) -> Deferred[Any]:
        raise NotImplementedError

    def set_label(self, key: str, value: str) -> Deferred[Any]:
        return self._call("label")

    def set_counter(self, name: str, count: int, capacity: int) -> Deferred[Any]:
        return self._call(f"counter {count}/{capacity}")

    def ready(self) -> Deferred[Any]:
        return self._call("ready")

    def health(self) -> Deferred[Any]:
        return self._call("health")

    def allocate(self) -> Deferred[Any]:
        return self._call("allocate")

    def shutdown(self) -> Deferred[Any]:
        return self._call("shutdown")

    def watch(self, on_game_server: Any) -> Deferred[None]:
        return self._call("watch")

    def stop_watching(self) -> Deferred[None]:
        return succeed(None)


class _SDKAway(_SDKCalls):
    """Every call fails as a refused connection does (until `away` is False); `calls` in order."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float]] = []
        self.away = True

    def _call(self, name: str) -> Deferred[Any]:
        self.calls.append((name, self.clock.seconds()))
        if self.away:
            return fail(ConnectionRefusedError("Connection was refused by other side"))
        return succeed({})


class RetryTests(SynchronousTestCase):
    """The lifecycle on a Clock: retries with a growing pause, one log line per outage."""

    def test_retries_pause_longer_each_time_and_the_outage_is_one_line(self) -> None:
        clock = Clock()
        sdk = _SDKAway(clock)
        allocator = PortAllocator(range(7400, 7402))
        lifecycle = AgonesLifecycle(sdk, clock, allocator, labels={"realm": "eu"},  # type: ignore[arg-type]
                                    health_every=2.0)  # fmt: skip
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        lifecycle.startService()
        for _ in range(240):
            clock.advance(0.25)
        labels = [at for name, at in sdk.calls if name == "label"]
        pauses = [b - a for a, b in pairwise(labels)]
        self.assertEqual(pauses, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0][: len(pauses)])
        self.assertGreaterEqual(len(pauses), 7)
        # Health all along (every 2 s), whatever else fails.
        self.assertEqual(len([n for n, _ in sdk.calls if n == "health"]), 31)
        self.assertEqual(
            lifecycle.problem(),
            "agones: the SDK server at localhost:9358 does not answer "
            "(Connection was refused by other side); retrying",
        )
        said = [formatEvent(e) for e in events if "agones" in formatEvent(e)]
        self.assertEqual(len(said), 1, said)

        # It answers: the lifecycle goes on where it was, and says so once.
        sdk.away = False
        clock.advance(10.0)
        self.assertIsNone(lifecycle.problem())
        names = [n for n, _ in sdk.calls if n not in ("health", "watch")]
        self.assertEqual(names[-3:], ["label", "counter 0/2", "ready"])
        said = [formatEvent(e) for e in events if "agones" in formatEvent(e)]
        self.assertIn("answers again", said[1])
        self.assertIn("said Ready", said[2])

        # A match starts and ends: the Counter follows at once, no retry pause.
        port = self.successResultOf(allocator.acquire())
        allocator.release(port)
        names = [n for n, _ in sdk.calls if n not in ("health", "watch")]
        self.assertEqual(names[-4:], ["counter 1/2", "allocate", "counter 0/2", "ready"])
        lifecycle.drain()
        self.successResultOf(lifecycle.stopService())
        names = [n for n, _ in sdk.calls if n not in ("health", "watch")]
        self.assertEqual(names[-2:], ["counter 0/0", "shutdown"])


class _SDKHeld(_SDKCalls):
    """Calls stay out until the test answers them, in any order."""

    def __init__(self) -> None:
        self.out: list[tuple[str, Deferred[Any]]] = []

    def _call(self, name: str) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.out.append((name, d))
        return d

    def take(self, name: str) -> Deferred[Any]:
        for n, (called, d) in enumerate(self.out):
            if called == name:
                del self.out[n]
                return d
        raise AssertionError(f"no {name} call out: {[c for c, _ in self.out]}")


class CallsOutOfOrderTests(SynchronousTestCase):
    """Several calls are out at once: a failure reported after a later call was answered
    (a connection refused just before the SDK server came up, reported late) does not
    make the host say the SDK server stopped answering again."""

    def test_a_late_failure_of_an_earlier_call_is_not_a_new_outage(self) -> None:
        clock = Clock()
        sdk = _SDKHeld()
        lifecycle = AgonesLifecycle(sdk, clock, PortAllocator(range(7400, 7402)),  # type: ignore[arg-type]
                                    labels={"realm": "eu"}, health_every=1.0)  # fmt: skip
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def said(what: str) -> int:
            return sum(what in formatEvent(e) for e in events)

        refused = ConnectionRefusedError("Connection was refused by other side")
        lifecycle.startService()
        label = sdk.take("label")
        sdk.take("health").errback(refused)
        self.assertEqual(said("does not answer"), 1)
        clock.advance(1.0)
        # The SDK server is up: the Health sent after the label call is answered...
        sdk.take("health").callback({})
        self.assertEqual(said("answers again"), 1)
        # ...and the label call's refusal arrives later: news of the past.
        label.errback(refused)
        self.assertEqual(said("does not answer"), 1)
        self.assertNotIn("does not answer", lifecycle.problem() or "")

        # A call sent after the last answer that fails is a new outage, said again.
        clock.advance(1.0)
        sdk.take("health").errback(refused)
        self.assertEqual(said("does not answer"), 2)
        self.assertIn("does not answer", lifecycle.problem() or "")
        for _, d in sdk.out:
            d.callback({})
        sdk.out.clear()
        lifecycle.stopService()
        for _, d in sdk.out:
            d.callback({})


class DrainWhileUpdatingTests(SynchronousTestCase):
    """SIGTERM comes while an update is still out (the Ready after a match, not yet
    answered): the drain's Counter still goes out, before Shutdown."""

    def test_the_drain_counter_goes_out_after_the_update_before_shutdown(self) -> None:
        clock = Clock()
        sdk = _SDKHeld()
        allocator = PortAllocator(range(7400, 7402))
        lifecycle = AgonesLifecycle(sdk, clock, allocator, labels={},  # type: ignore[arg-type]
                                    health_every=1.0)  # fmt: skip
        lifecycle.startService()
        sdk.take("counter 0/2").callback({})
        sdk.take("ready").callback({})
        port = self.successResultOf(allocator.acquire())
        sdk.take("counter 1/2").callback({})
        sdk.take("allocate").callback({})
        allocator.release(port)
        sdk.take("counter 0/2").callback({})
        ready = sdk.take("ready")
        # SIGTERM: the drain, then the stop, both before Ready is answered.
        lifecycle.drain()
        stopped = lifecycle.stopService()
        ready.callback({})
        sdk.take("counter 0/0").callback({})
        self.assertNoResult(stopped)
        sdk.take("shutdown").callback({})
        self.successResultOf(stopped)
        self.assertEqual([name for name, _ in sdk.out if name not in ("health", "watch")], [])


class OptionTests(SynchronousTestCase):
    """`--agones` and its options: an operator's mistake is one line before anything starts."""

    def parse(self, *argv: str, environ: dict[str, str] | None = None) -> HostCommand:
        key = self.mktemp()
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        self.patch(os, "environ", environ or {})
        options = HostCommand()
        options.parseOptions(["--redis", "redis://127.0.0.1:6379", "--token-key-file", key,
                              *argv])  # fmt: skip
        return options

    def test_the_sdk_port_comes_from_the_environment(self) -> None:
        self.assertEqual(self.parse("--agones")["agones-sdk-port"], 9358)
        options = self.parse("--agones",
                             environ={"AGONES_SDK_HTTP_PORT": "59358"})  # fmt: skip
        self.assertEqual(options["agones-sdk-port"], 59358)
        self.assertIsNone(self.parse()["agones-sdk-port"])

    def test_mistakes_are_one_line(self) -> None:
        cases = [
            (("--agones",), {"AGONES_SDK_HTTP_PORT": "http"},
             "$AGONES_SDK_HTTP_PORT must be a port number, not 'http'"),
            (("--agones", "--realm", "eu west"), {},
             "--realm must be a Kubernetes label value"),
            (("--agones", "--limit", "agones-health-interval=0"), {},
             "--limit agones-health-interval must be a number greater than 0"),
        ]  # fmt: skip
        for argv, environ, says in cases:
            with self.subTest(argv=argv):
                error = self.assertRaises(UsageError, self.parse, *argv, environ=environ)
                self.assertIn(says, str(error))
                self.assertNotIn("\n", str(error))


class InProcessTests(TestCase):
    """The lifecycle service in this process, on the real reactor and real HTTP."""

    async def test_a_stop_closes_the_watch_and_leaves_nothing_open(self) -> None:
        sdk = AgonesSDKStandIn({"matches": (0, 0)})
        listening = reactor.listenTCP(0, sdk.site(), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        allocator = PortAllocator(range(7400, 7403))
        lifecycle = AgonesLifecycle(
            AgonesSDK(reactor, listening.getHost().port, host="127.0.0.1"), reactor, allocator,
            labels={"realm": "eu"}, health_every=HEALTH_EVERY,
        )  # fmt: skip
        lifecycle.startService()
        await sdk.when_called("POST", "/ready")
        await sdk.when_called("GET", "/watch/gameserver")
        self.assertEqual(sdk.watching, 1)
        await lifecycle.stopService()
        self.assertEqual(sdk.paths()[-1], "POST /shutdown")
        # The watch stream is closed by the host (trial fails a test that leaves a
        # connection or a timer behind).
        await until(lambda: not sdk.watching, "the watch stream closed")
        # A stop is a drain: no free capacity is left before Shutdown.
        self.assertEqual(sdk.counters["matches"], [0, 0])
        self.assertEqual(sdk.paths()[-2], "PATCH /v1beta1/counters/matches")

    async def test_calls_write_no_log_line(self) -> None:
        sdk = AgonesSDKStandIn({"matches": (0, 0)})
        client = AgonesSDK(reactor, listen_site(self, sdk), host="127.0.0.1")
        lines = capture_log(self)
        for _ in range(5):
            self.assertEqual(await client.health(), {})
        self.assertEqual(sdk.paths(), ["POST /health"] * 5)
        self.assertEqual(lines, [])
