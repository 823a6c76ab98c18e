"""`python -m benchmarks.load`: drive a running vinom server with bots; progress and summary.

    python -m benchmarks.load --game maze --bots 1000 --duration 60 --lobby HOST:PORT --trust CERT

The bots play through the lobby exactly as players would (TLS, hello,
queue, the UDP session, the game's own bot choosing moves), games back to
back until the duration is over; then whatever is still running is left.
Progress goes to standard error once a second; the summary (matches,
moves, errors, latency percentiles of moves) to standard output, with
`--json` as one JSON line. The exit code is 0 when no bot hit an error.

A server's per-IP limit on lobby connections applies to all the bots
together (they come from one address): keep `--lobby-slots` at or below the
server's `--limit max-connections-per-ip` (32 by default).

Entry points: `main(argv)` and `run(options)`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python import usage

from benchmarks.harness import decode_histogram, percentile_ms
from benchmarks.lobby_load import Fleet, install_client_loss
from vinom.client.bots import LobbyAddress

try:
    from vinom.cli.options import QUEUE_OPTION, SignInOptions, check_queue
except ImportError:  # a build from before vinom.cli.options (compare's baseline)
    from vinom.cli import QUEUE_OPTION, SignInOptions, check_queue


def parse_lobby(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise usage.UsageError(f"--lobby must look like HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


class Options(SignInOptions):
    synopsis = ("--lobby HOST:PORT [--trust CERT] [--game maze] [--bots N] [--duration S] "
                "[--queue ranked] [--auth KIND ...]")
    longdesc = __doc__
    optParameters = [
        ["lobby", "l", "localhost:7350", "The lobby to connect to, HOST:PORT."],
        ["trust", "t", None, "PEM certificate to trust (the server's dev certificate); "
                             "default: the system's CAs."],
        ["game", "g", "maze", "Game the bots queue for."],
        ["bots", "b", "10", "Bots playing at once."],
        ["duration", "d", "60", "Seconds to run."],
        ["think", None, "0.2", "Seconds a bot waits before each action."],
        ["lobby-slots", None, "32", "Lobby connections the bots hold at most at once."],
        ["loss", None, "0", "Simulated client-side loss: probability to drop each datagram."],
        ["seed", None, None, "Random seed (bots and simulated loss)."],
        QUEUE_OPTION,
    ]
    optFlags = [
        ["json", None, "Print the summary as one JSON line."],
        ["quiet", "q", "No progress lines."],
    ]

    def postOptions(self) -> None:
        self["lobby-address"] = parse_lobby(self["lobby"])
        for name in ("bots", "lobby-slots"):
            try:
                self[name] = int(self[name])
            except ValueError:
                raise usage.UsageError(f"--{name} must be a whole number") from None
            if self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        for name in ("duration", "think", "loss"):
            try:
                self[name] = float(self[name])
            except ValueError:
                raise usage.UsageError(f"--{name} must be a number") from None
            if self[name] < 0:
                raise usage.UsageError(f"--{name} must not be negative")
        if self["duration"] <= 0:
            raise usage.UsageError("--duration must be greater than 0")
        if self["loss"] >= 1:
            raise usage.UsageError("--loss must be below 1")
        if self["seed"] is not None:
            try:
                self["seed"] = int(self["seed"])
            except ValueError:
                raise usage.UsageError("--seed must be a whole number") from None
        check_queue(self)
        # Signed in as `vinom bots --name load` would be (docs/client.md, "Signing in").
        self.check_sign_in()
        self["auths"] = self.credentials([f"bot:load{i}" for i in range(self["bots"])],
                                         self["lobby-address"][0])  # fmt: skip


def _progress_line(fleet: Fleet, elapsed: float, duration: float) -> str:
    s = fleet.snapshot()
    rate = s["moves"] / elapsed if elapsed > 0 else 0.0
    return (
        f"[{elapsed:5.0f}/{duration:.0f} s] playing {s['playing']:,}, in lobby {s['in_lobby']:,}, "
        f"matches {s['matches_started']:,} started / {s['matches_finished']:,} finished, "
        f"moves {s['moves']:,} ({rate:,.0f}/s), errors {s['errors']}"
    )


def summarize(fleet: Fleet, elapsed: float) -> dict[str, Any]:
    """The run's figures (JSON-safe)."""
    histogram = decode_histogram(fleet.latencies.encoded())
    s = fleet.snapshot()
    errors = {k: n for k, n in fleet.errors.items() if not k.startswith("rejected_")}
    rejected = sum(n for k, n in fleet.errors.items() if k.startswith("rejected_"))
    return {
        "game": fleet.game.name,
        "bots": fleet.bots,
        "elapsed_s": round(elapsed, 2),
        "matches_started": s["matches_started"],
        "matches_finished": s["matches_finished"],
        "matches_aborted": s["matches_aborted"],
        "moves": s["moves"],
        "moves_per_s": round(s["moves"] / elapsed, 1) if elapsed > 0 else 0.0,
        "move_p50_ms": percentile_ms(histogram, 50),
        "move_p90_ms": percentile_ms(histogram, 90),
        "move_p99_ms": percentile_ms(histogram, 99),
        "move_max_ms": percentile_ms(histogram, 100),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rejected_actions": rejected,
    }


def print_summary(summary: dict[str, Any], out: IO[str]) -> None:
    rows = [
        ("matches started / finished / aborted",
         f"{summary['matches_started']:,} / {summary['matches_finished']:,} / "
         f"{summary['matches_aborted']:,}"),
        ("moves applied", f"{summary['moves']:,} ({summary['moves_per_s']:,.1f}/s)"),
        ("move latency p50 / p90 / p99 / max ms",
         f"{summary['move_p50_ms']} / {summary['move_p90_ms']} / {summary['move_p99_ms']} / "
         f"{summary['move_max_ms']}"),
        ("rejected actions", f"{summary['rejected_actions']:,}"),
        ("errors", f"{summary['errors']:,}"
         + (f" {summary['error_kinds']}" if summary["error_kinds"] else "")),
    ]
    title = f"load: {summary['bots']:,} {summary['game']} bots, {summary['elapsed_s']:g} s"
    out.write(f"{title}\n{'-' * len(title)}\n")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.write(f"{name:<{width}}  {value}\n")
    out.flush()


def run(options: Options, reactor: Any = None) -> int:
    """Run the bots against the lobby in `options`; returns the exit code."""
    if reactor is None:
        from benchmarks.worker import global_reactor

        reactor = global_reactor()
    from vinom.errors import UnknownGame
    from vinom.games.registry import GameRegistry

    try:
        game = GameRegistry.from_plugins().get(options["game"])
    except UnknownGame as e:
        sys.stderr.write(f"load: {e}\n")
        return 2
    rng = random.Random(options["seed"])
    install_client_loss(options["loss"], rng)
    host, port = options["lobby-address"]
    fleet = Fleet(
        reactor, LobbyAddress(host, port, options["trust"]), game, options["bots"],
        think_time=options["think"], lobby_slots=options["lobby-slots"], seed=options["seed"],
        queue=options["queue"], auths=options["auths"],
    )
    duration = options["duration"]
    started = time.perf_counter()
    outcome: dict[str, Any] = {}

    def progress() -> None:
        sys.stderr.write(_progress_line(fleet, time.perf_counter() - started, duration) + "\n")
        sys.stderr.flush()

    ticker = LoopingCall(progress)
    ticker.clock = reactor

    def stop() -> None:
        outcome["elapsed"] = time.perf_counter() - started
        fleet.counting = False
        fleet.stop_now()

    def finished(_: object) -> None:
        if ticker.running:
            ticker.stop()
        if reactor.running:
            reactor.stop()

    def begin() -> None:
        if not options["quiet"]:
            ticker.start(1.0, now=False)
        reactor.callLater(duration, stop)
        d: Deferred[None] = fleet.run(reactor.seconds() + duration)
        d.addBoth(finished)

    reactor.callWhenRunning(begin)
    reactor.run()
    summary = summarize(fleet, outcome.get("elapsed", time.perf_counter() - started))
    if options["json"]:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    else:
        print_summary(summary, sys.stdout)
    return 0 if summary["errors"] == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.load ARGS`: parse `argv` (without the command names) and run."""
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nload: {e}\n")
        return 2
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
