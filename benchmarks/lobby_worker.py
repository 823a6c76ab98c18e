"""Load worker of the lobby scenarios: `python -m benchmarks.lobby_worker <kind> <json>`.

`match`: C clients, at most `in_flight` at once, each from a TLS lobby
connection to the first state of its full room, through the lean clients of
`benchmarks.match_load` in a plain poll loop (no reactor). `match-twisted`:
the same through the vinom client library on the reactor
(`lobby_load.match_client`), for comparison. The whole run is the measured
window.

`fleet` (soak): bots playing games back to back (`lobby_load.Fleet`), with
client-side loss; after `warmup` seconds the counters restart and the
window lasts `duration` seconds.

`match-twisted` and `fleet` run on the reactor and talk to the parent through
`worker.Control`; `match` writes to standard output and watches standard input
itself.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore
from twisted.internet.task import LoopingCall

from benchmarks.loadgen import Latencies
from benchmarks.lobby_load import Fleet, error_kind, install_client_loss, match_client
from benchmarks.worker import (
    Control,
    cpu_seconds,
    emit,
    global_reactor,
    run_guarded,
    start_control,
)
from vinom.client.bots import LobbyAddress

# Seconds the bots get to stop after the window before the result is sent anyway.
STOP_GRACE_S = 15.0


def _lobby(settings: dict[str, Any]) -> LobbyAddress:
    return LobbyAddress(settings["host"], int(settings["port"]), settings.get("trust"))


async def run_match(reactor: Any, control: Control, settings: dict[str, Any]) -> dict[str, Any]:
    lobby = _lobby(settings)
    clients = int(settings["clients"])
    limit = DeferredSemaphore(int(settings["in_flight"]))
    latencies = Latencies()
    errors: dict[str, int] = {}
    done = [0]

    async def one(index: int) -> None:
        try:
            seconds = await match_client(
                reactor, lobby, settings.get("game", "duel"), f"m{index}",
                float(settings.get("client_timeout", 60.0)),
            )
            latencies.record(int(seconds * 1e6))
        except Exception as e:
            kind = error_kind(e)
            errors[kind] = errors.get(kind, 0) + 1
        done[0] += 1

    def progress() -> None:
        control.emit("progress", count=done[0], elapsed=time.perf_counter() - started)

    control.emit("measuring")
    started = time.perf_counter()
    cpu_start = cpu_seconds()
    ticker = LoopingCall(progress)
    ticker.clock = reactor
    ticker.start(0.5, now=False)
    runs = [limit.run(one, i) for i in range(clients)]
    await DeferredList(runs, consumeErrors=True)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_start
    ticker.stop()
    control.emit("window_end", elapsed=wall)
    return {
        "clients": clients,
        "completed": clients - sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "window_s": wall,
        "load_cpu_s": cpu,
        "histogram": latencies.encoded(),
    }


async def run_fleet(reactor: Any, control: Control, settings: dict[str, Any]) -> dict[str, Any]:
    from vinom.games.registry import GameRegistry

    game = GameRegistry.from_plugins().get(settings.get("game", "maze"))
    rng = random.Random(settings.get("seed"))
    loss = install_client_loss(float(settings.get("loss", 0.0)), rng)
    fleet = Fleet(
        reactor, _lobby(settings), game, int(settings["bots"]),
        think_time=float(settings.get("think", 0.0)),
        lobby_slots=int(settings.get("lobby_slots", 64)),
        seed=settings.get("seed"),
    )
    warmup = float(settings["warmup"])
    duration = float(settings["duration"])
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def progress() -> None:
        control.emit("progress", elapsed=time.perf_counter() - started, **fleet.snapshot())

    def begin_window() -> None:
        fleet.reset()
        marks["start"] = time.perf_counter()
        marks["cpu_start"] = cpu_seconds()
        control.emit("measuring")

    def end_window() -> None:
        marks["end"] = time.perf_counter()
        marks["cpu_end"] = cpu_seconds()
        fleet.counting = False
        control.emit("window_end", elapsed=marks["end"] - marks["start"])
        fleet.stop_now()

    ticker = LoopingCall(progress)
    ticker.clock = reactor
    ticker.start(0.5, now=False)
    reactor.callLater(warmup, begin_window)
    reactor.callLater(warmup + duration, end_window)
    # Bots keep playing until the window ends; then whatever is in progress stops.
    # The figures are final at the window's end: do not wait long for stragglers.
    running = fleet.run(reactor.seconds() + warmup + duration)
    stopped: Deferred[None] = Deferred()

    def release(_: object = None) -> None:
        if not stopped.called:
            stopped.callback(None)

    running.addBoth(release)
    reactor.callLater(warmup + duration + STOP_GRACE_S, release)
    await stopped
    ticker.stop()
    if "end" not in marks:
        raise RuntimeError("every bot stopped before the measured window ended")
    snapshot = fleet.snapshot()
    return {
        **snapshot,
        "still_running": fleet.bots - fleet.stopped_bots,
        "error_kinds": dict(fleet.errors),
        "window_s": marks["end"] - marks["start"],
        "load_cpu_s": marks["cpu_end"] - marks["cpu_start"],
        "histogram": fleet.latencies.encoded(),
        "dropped_in": loss.dropped_in,
        "dropped_out": loss.dropped_out,
    }


KINDS = {"match-twisted": run_match, "fleet": run_fleet}


def main() -> None:
    kind, settings = sys.argv[1], json.loads(sys.argv[2])
    if kind == "match":
        from benchmarks.match_load import run_match as run_lean_match

        emit("result", **run_lean_match(settings))
        return
    reactor = global_reactor()
    control = start_control(reactor, {})
    outcome: dict[str, Any] = {}

    def finished(result: dict[str, Any]) -> None:
        control.emit("result", **result)
        outcome["ok"] = True

    def failed(failure: Any) -> None:
        control.emit(
            "error", message=f"{failure.type.__name__}: {failure.value}",
            traceback=failure.getTraceback(),
        )

    def start() -> None:
        d = Deferred.fromCoroutine(KINDS[kind](reactor, control, settings))
        d.addCallbacks(finished, failed)
        d.addBoth(lambda _: reactor.callLater(0.2, reactor.stop))

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        sys.exit(1)


if __name__ == "__main__":
    run_guarded(main)
