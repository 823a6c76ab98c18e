"""The arena's cost as one room grows: vinom beside Colyseus at each room size.

`python -m benchmarks shape [--players 8,16,32,64] [--rounds 3] [--plot FILE]`
runs, for each round and each room size N in turn, `play --game arena --rooms 1
--players N` (vinom on this interpreter's build, over `--transport`) and
`colyseus-play --game arena --rooms 1 --players N` (the Colyseus peer,
benchmarks/peers/colyseus), each a child `python -m benchmarks <scenario>
--json -q` as `compare` starts them, alternated so that both see the same
machine. It prints, for each size, both servers' server CPU per player (ms of
CPU per second of play, the median of the rounds and their range), the ratio
vinom/Colyseus, and KB/s per client; `--plot FILE` also draws the two CPU
curves (medians, each round's range as a bar) as an SVG, so that the growth with
players is seen. The last line is the JSON of every figure.

A run that fails is shown with the end of its standard error, the others still
run, and `shape` then exits with 1.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.python import usage

from benchmarks.compare import PACKAGE_ROOT, run_child, side_env

SERVERS = (("vinom", "play"), ("Colyseus", "colyseus-play"))
FIGURE = "server_cpu_ms_per_player_s"


def sizes(text: str) -> list[int]:
    """usage.Options coerce of --players."""
    try:
        found = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--players must be numbers separated by commas, not {text!r}") from None
    if not found or min(found) < 2:
        raise ValueError(f"--players: each room size at least 2, not {text!r}")
    return found


sizes.coerceDoc = "Room sizes, e.g. 8,16,32,64."  # type: ignore[attr-defined]


class Options(usage.Options):
    synopsis = "[--players 8,16,32,64] [--rounds N] [--plot FILE]"
    longdesc = __doc__
    optFlags = [["quiet", "q", "No line on standard error as each run starts and ends."]]
    optParameters = [
        ["players", None, None, "Room sizes, one room each (default: 8,16,32,64).", sizes],
        ["rounds", None, 3, "Rounds; each runs every size on both servers.", int],
        ["transport", None, "udp", "vinom's transport: udp or ws.", str],
        ["warmup", None, "2", "Seconds of each run before measuring.", str],
        ["duration", None, "10", "Seconds each run measures.", str],
        ["plot", None, None, "Also draw the CPU curves to this SVG file.", str],
        ["timeout", None, None, "Each run's hard limit in seconds (its --timeout).", str],
    ]

    def postOptions(self) -> None:
        if self["transport"] not in ("udp", "ws"):
            raise usage.UsageError(f"--transport udp or ws, not {self['transport']!r}")
        if self["rounds"] < 1:
            raise usage.UsageError("--rounds must be at least 1")


def run_one(scenario: str, players: int, options: Options, cwd: str) -> dict[str, Any]:
    """One child run: its JSON line, or {"error": ...} with its standard error's end."""
    argv = [sys.executable, "-m", "benchmarks", scenario, "--game", "arena", "--rooms", "1",
            "--players", str(players), "--warmup", options["warmup"],
            "--duration", options["duration"], "--json", "-q"]  # fmt: skip
    if scenario == "play":
        argv[-2:-2] = ["--transport", options["transport"]]
    if options["timeout"] is not None:
        argv[-2:-2] = ["--timeout", options["timeout"]]
    _, result, error, tail = run_child(argv, cwd, side_env(False))
    if error is None and result is not None and FIGURE in result:
        return result
    return {"error": error or f"no {FIGURE} in its JSON line", "stderr_tail": tail}


def summary(runs: Mapping[str, Mapping[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Each server's medians and ranges by room size, and the CPU ratios."""
    out: dict[str, Any] = {}
    for name, by_size in runs.items():
        out[name] = {}
        for players, results in by_size.items():
            cpu = [r[FIGURE] for r in results if FIGURE in r]
            kbs = [r.get("kbytes_per_s_per_client", 0.0) for r in results if FIGURE in r]
            if cpu:
                out[name][players] = {"cpu_median": statistics.median(cpu), "cpu_min": min(cpu),
                                      "cpu_max": max(cpu), "kb_s_median": statistics.median(kbs),
                                      "rounds": len(cpu)}  # fmt: skip
    ours, theirs = out.get("vinom", {}), out.get("Colyseus", {})
    out["ratio"] = {n: round(ours[n]["cpu_median"] / theirs[n]["cpu_median"], 3)
                    for n in ours if n in theirs and theirs[n]["cpu_median"] > 0}  # fmt: skip
    return out


def svg(figures: Mapping[str, Any], players: Sequence[int]) -> str:
    """The two CPU curves: room size across (even steps), ms per player-second up."""
    width, height, left, bottom, top, right = 560, 340, 60, 40, 30, 110
    top_value = max((f["cpu_max"] for name, _ in SERVERS for f in figures[name].values()),
                    default=1.0) * 1.1  # fmt: skip
    step = (width - left - right) / max(1, len(players) - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return height - bottom - (height - top - bottom) * v / top_value

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="{left}" y="18">arena, one room: server CPU ms per player-second</text>',
             f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="black"/>',
             f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>']  # fmt: skip
    for tick in range(5):
        value = top_value * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                     f"{value:.1f}</text>")  # fmt: skip
    for i, n in enumerate(players):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                     f"{n}</text>")  # fmt: skip
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" '
                 'text-anchor="middle">players in the room</text>')
    for (name, _), colour in zip(SERVERS, ("#c0392b", "#2c3e50"), strict=True):
        points = [(x(i), figures[name][n]) for i, n in enumerate(players) if n in figures[name]]
        if points:
            line = " ".join(f"{px:.1f},{y(f['cpu_median']):.1f}" for px, f in points)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                         'stroke-width="2"/>')
            for px, f in points:
                parts.append(f'<line x1="{px:.1f}" y1="{y(f["cpu_min"]):.1f}" x2="{px:.1f}" '
                             f'y2="{y(f["cpu_max"]):.1f}" stroke="{colour}"/>'
                             f'<circle cx="{px:.1f}" cy="{y(f["cpu_median"]):.1f}" r="3" '
                             f'fill="{colour}"/>')  # fmt: skip
            last = points[-1]
            parts.append(f'<text x="{last[0] + 8:.1f}" y="{y(last[1]["cpu_median"]) + 4:.1f}" '
                         f'fill="{colour}">{name}</text>')  # fmt: skip
    return "\n".join([*parts, "</svg>", ""])


def run(options: Options) -> int:
    players: list[int] = options["players"] or [8, 16, 32, 64]
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        name: {n: [] for n in players} for name, _ in SERVERS}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="vinom-shape-") as cwd:
        for number in range(1, options["rounds"] + 1):
            for n in players:
                for name, scenario in SERVERS:
                    if not options["quiet"]:
                        sys.stderr.write(f"shape: round {number}, {n} players, {name} ... ")
                        sys.stderr.flush()
                    result = run_one(scenario, n, options, cwd)
                    runs[name][n].append(result)
                    failed += "error" in result
                    if not options["quiet"]:
                        sys.stderr.write(f"{result.get(FIGURE, 'FAILED')}\n")
                    if "error" in result:
                        why, tail = result["error"], result["stderr_tail"]
                        sys.stderr.write(f"shape: {name} at {n} players failed ({why}):\n{tail}\n")
    figures = summary(runs)
    print(f"{'players':>8} {'vinom ms/s':>14} {'Colyseus ms/s':>14} {'ratio':>7} "
          f"{'vinom KB/s':>11} {'Colyseus KB/s':>14}")  # fmt: skip
    for n in players:
        ours, theirs = figures["vinom"].get(n), figures["Colyseus"].get(n)
        cells = [f"{f['cpu_median']:.3f}" if f else "-" for f in (ours, theirs)]
        kbs = [f"{f['kb_s_median']:.2f}" if f else "-" for f in (ours, theirs)]
        print(f"{n:>8} {cells[0]:>14} {cells[1]:>14} {figures['ratio'].get(n, '-'):>7} "
              f"{kbs[0]:>11} {kbs[1]:>14}")  # fmt: skip
    if options["plot"]:
        with open(options["plot"], "w", encoding="utf-8") as f:
            f.write(svg(figures, players))
    print(json.dumps({"scenario": "shape", "transport": options["transport"],
                      "rounds": options["rounds"], "figures": figures, "runs": runs,
                      "harness": PACKAGE_ROOT}))  # fmt: skip
    return 1 if failed else 0
