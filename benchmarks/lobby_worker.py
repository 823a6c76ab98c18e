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

`matches` (spawn, drain): `matches` matches of a game played to their end by
its own bots (two or more per match), `at_once` of them at a time: each of
`at_once` lanes queues a match's players together, waits for every one of them
to see the end, then starts the lane's next match (no sooner than
`interval` seconds after the previous one began). The whole run is the
window. With `announce_running`, it says `running` once every bot has its
game session (or has failed): then every match is under way.

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

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, gatherResults
from twisted.internet.task import LoopingCall, deferLater

from benchmarks.loadgen import Latencies
from benchmarks.lobby_load import (
    Fleet,
    connect_lobby,
    error_kind,
    install_client_loss,
    match_client,
)
from benchmarks.worker import (
    Control,
    cpu_seconds,
    emit,
    global_reactor,
    run_guarded,
    start_control,
)
from vinom.client.bots import BotDriver, LobbyAddress
from vinom.client.game import connect_game

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


class MatchTally:
    """What the bots of `run_matches` saw, by match id."""

    def __init__(self) -> None:
        # Match id -> the players whose game session began, and the final phase
        # (or how their session ended without one) of those whose game is over.
        self.players: dict[str, int] = {}
        self.ends: dict[str, list[str]] = {}
        self.sessions = 0
        # Bots that failed before their game session began, and after their game.
        self.failed: dict[str, int] = {}
        self.disconnect_errors: dict[str, int] = {}

    def began(self, match_id: str) -> None:
        self.sessions += 1
        self.players[match_id] = self.players.get(match_id, 0) + 1
        self.ends.setdefault(match_id, [])

    def ended(self, match_id: str, how: str) -> None:
        self.ends[match_id].append(how)

    def fail(self, kind: str) -> None:
        self.failed[kind] = self.failed.get(kind, 0) + 1

    def running(self) -> int:
        """Matches with a player still in the game."""
        return sum(1 for m, n in self.players.items() if len(self.ends[m]) < n)

    def done(self) -> int:
        return sum(1 for m, n in self.players.items() if len(self.ends[m]) == n)

    def outcomes(self) -> dict[str, Any]:
        """`finished`: every player saw `finished`; `aborted`: every player saw a final
        phase, one at least `aborted`; `lost`: a player never saw a final phase."""
        counts = {"finished": 0, "aborted": 0, "lost": 0}
        endings: dict[str, int] = {}
        for match_id, ends in self.ends.items():
            for how in ends:
                endings[how] = endings.get(how, 0) + 1
            if len(ends) == self.players[match_id] and all(e == "finished" for e in ends):
                counts["finished"] += 1
            elif len(ends) == self.players[match_id] and all(
                e in ("finished", "aborted") for e in ends
            ):
                counts["aborted"] += 1
            else:
                counts["lost"] += 1
        return {"matches": len(self.ends), **counts, "endings": endings}


async def run_matches(reactor: Any, control: Control, settings: dict[str, Any]) -> dict[str, Any]:
    from vinom.games.registry import GameRegistry

    game = GameRegistry.from_plugins().get(settings.get("game", "tictactoe"))
    seats = int(settings.get("seats", 2))
    lobby = _lobby(settings)
    total = int(settings["matches"])
    lanes = max(1, min(int(settings.get("at_once", 1)), total))
    think = float(settings.get("think", 0.0))
    # A lane's matches begin at least this many seconds apart.
    interval = float(settings.get("interval", 0.0))
    match_timeout = float(settings.get("match_timeout", 120.0))
    announce = bool(settings.get("announce_running"))
    rng = random.Random(settings.get("seed"))
    tally = MatchTally()
    bots = [0]

    def check_running() -> None:
        if announce and tally.sessions + sum(tally.failed.values()) == total * seats:
            control.emit("running", running=tally.running(), sessions=tally.sessions,
                         failed=sum(tally.failed.values()))

    async def bot(name: str, bot_rng: random.Random) -> None:
        try:
            client = await connect_lobby(reactor, lobby)
            try:
                welcome = await client.hello(name)
                found = await client.queue(game.name)
            finally:
                client.close()
            session = await connect_game(reactor, found)
        except Exception as e:
            tally.fail(error_kind(e))
            check_running()
            return
        tally.began(found.game_id)
        check_running()
        driver = BotDriver(session, game.make_bot(welcome.player_id, bot_rng), think, reactor)
        driver.attach()
        ended: Deferred[str] = Deferred()

        def end(how: str) -> None:
            if not ended.called:
                ended.callback(how)

        session.finished.addCallback(lambda message: end(str(message.get("p"))))
        session.on_closed = lambda message: end(f"closed_{message.get('reason')}")
        expiry = reactor.callLater(match_timeout, end, "timeout")
        how = await ended
        if expiry.active():
            expiry.cancel()
        driver.cancel()
        tally.ended(found.game_id, how)
        # Out of the session's message handler first (see lobby_load.match_client).
        await deferLater(reactor, 0, lambda: None)
        try:
            await session.disconnect()
        except Exception as e:  # the game is over either way
            tally.disconnect_errors[error_kind(e)] = tally.disconnect_errors.get(
                error_kind(e), 0) + 1

    async def lane(matches: int) -> None:
        for _ in range(matches):
            began = reactor.seconds()
            names = [f"b{bots[0] + seat}" for seat in range(seats)]
            bots[0] += seats
            await gatherResults([
                Deferred.fromCoroutine(bot(name, random.Random(rng.random()))) for name in names
            ])  # fmt: skip
            rest = began + interval - reactor.seconds()
            if rest > 0:
                await deferLater(reactor, rest, lambda: None)

    def progress() -> None:
        control.emit("progress", count=tally.done(), running=tally.running(),
                     elapsed=time.perf_counter() - started)

    control.emit("measuring")
    started = time.perf_counter()
    cpu_start = cpu_seconds()
    ticker = LoopingCall(progress)
    ticker.clock = reactor
    ticker.start(0.5, now=False)
    base, extra = divmod(total, lanes)
    await gatherResults([
        Deferred.fromCoroutine(lane(base + (1 if i < extra else 0))) for i in range(lanes)
    ])  # fmt: skip
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_start
    ticker.stop()
    control.emit("window_end", elapsed=wall)
    return {
        **tally.outcomes(),
        "planned": total,
        "bot_failures": tally.failed,
        "disconnect_errors": tally.disconnect_errors,
        "window_s": wall,
        "load_cpu_s": cpu,
    }


KINDS = {"match-twisted": run_match, "fleet": run_fleet, "matches": run_matches}


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
