"""The udp-echo scenario: Twisted's bare UDP echo against vinom's encrypted session echo.

Both halves run the same work: `clients` sockets on 127.0.0.1 keep
`window` datagrams of `size` payload bytes in flight against a server
process that echoes each one; the rate is echoes received per second
during the measured window. Half (a) is a plain `DatagramProtocol`; half
(b) is vinom's handshake-authenticated, AEAD-encrypted session protocol
(`ServerEndpoint` behind `GameHostProtocol`, payloads as messages on the
unreliable channel). `ratio` = vinom / bare is the share of raw Twisted UDP
throughput that vinom keeps. By default every socket has one message in
flight, so every datagram carries one message both ways; with more per
socket vinom's host packs the replies it owes a session into one datagram
(see `*_datagrams_per_echo`), which measures batching, not protocol cost.

The halves run `rounds` times each, alternately (bare, vinom, bare, ...), and
each half reports its median run by rate: on a shared virtual machine one
run of either half moves by 20-30% from the next, and alternating spreads
whatever the neighbours do over both halves. `*_runs_per_s` lists every
run's rate.

`--relay` measures vinom's UDP relay (docs/gateway.md, "UDP relay") instead
of the session protocol: the second half, `relayed`, is the same bare echo
behind a relay process (benchmarks.relay_worker), each load socket
prefixing its datagrams with a route token of its own (one route per
socket). `relay_cpu_us_per_datagram` is the relay process's CPU in the
window over the datagrams it forwarded (two per echo: to the echo and
back); `added_p50_ms` and `added_p99_ms` are the relayed round trip's
percentiles less the direct (bare) one's, from the median runs.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.python import usage

from benchmarks.common import (
    MeasuredRun,
    ScenarioOptions,
    cpu_plan,
    cpu_row,
    latency_ms,
    non_negative_floats,
    positive_int,
    progress_for,
)
from benchmarks.harness import (
    BenchError,
    Harness,
    bottleneck,
    merge_histograms,
    report,
)
from benchmarks.ports import free_udp_port


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["size", None, "100", "Payload bytes per datagram."],
        ["window", None, "32", "Messages in flight in total."],
        [
            "clients",
            None,
            "32",
            "Client sockets (vinom: sessions) sharing the window. The default, one message "
            "in flight per socket, lets neither side pack several messages into a datagram.",
        ],
        ["warmup", None, "1", "Seconds of warm-up per half."],
        ["duration", None, "5", "Seconds measured per half."],
        ["only", None, None, "Run only one half: 'bare' or 'vinom'."],
        ["rounds", None, "3", "Runs of each half, alternating; each reports its median."],
    ]
    optFlags = [
        *ScenarioOptions.optFlags,
        ["relay", None, "Compare the bare echo direct and through vinom's UDP relay "
                        "(halves 'bare' and 'relayed') instead of bare and vinom."],
    ]

    def postOptions(self) -> None:
        for name in ("size", "window", "clients", "rounds"):
            self[name] = positive_int(self, name)
        non_negative_floats(self, "warmup", "duration")
        second = "relayed" if self["relay"] else "vinom"
        if self["only"] not in (None, "bare", second):
            raise usage.UsageError(f"--only must be 'bare' or '{second}'")

    def planned_seconds(self) -> float:
        halves = 1 if self["only"] else 2
        return self["rounds"] * halves * (self["warmup"] + self["duration"])


def run_half(options: Options, mode: str, harness: Harness, key: bytes) -> dict[str, Any]:
    """One half (bare or vinom): start its server and load, measure, stop both."""
    server_cpu, load_cpus = cpu_plan(1, options.pin)
    server_args = ["--mode", "bare" if mode == "relayed" else mode,
                   "--port", str(free_udp_port("127.0.0.1"))]  # fmt: skip
    if mode == "vinom":
        server_args += ["--key", key.hex()]
    server = harness.spawn(f"{mode}-server", "benchmarks.echo_server", server_args, server_cpu)
    load = relay = None
    try:
        ready = harness.wait_for(server, "ready", 30)
        target = ready["port"]
        if mode == "relayed":
            # The relay shares the server's core: what it costs is what a relay on
            # the game host's machine would take from it.
            relay = harness.spawn("relay", "benchmarks.relay_worker", ["--key", key.hex()],
                                  server_cpu)  # fmt: skip
            target = harness.wait_for(relay, "ready", 30)["port"]
        load_args = [
            "--mode", "bare" if mode == "relayed" else mode,
            "--port", str(target),
            "--size", str(options["size"]),
            "--window", str(options["window"]),
            "--clients", str(options["clients"]),
            "--warmup", str(options["warmup"]),
            "--duration", str(options["duration"]),
        ]  # fmt: skip
        if mode == "vinom":
            load_args += ["--key", key.hex()]
        if mode == "relayed":
            load_args += ["--relay-key", key.hex(), "--relay-to", str(ready["port"])]
        load = harness.spawn(f"{mode}-load", "benchmarks.echo_load", load_args, load_cpus[0])
        measured = MeasuredRun(
            harness, server, [load], options, f"udp-echo-{mode}", options["duration"],
            more_servers=[relay] if relay is not None else (),
        )  # fmt: skip
        (result,) = measured.run(mark_server=True, mark=[relay] if relay is not None else ())
    finally:
        if load is not None:
            harness.stop(load)
        if relay is not None:
            harness.stop(relay)
        harness.stop(server)
    window = float(result["window_s"]) or 1e-9
    first, last = (m["counters"] for m in measured.server_marks)
    received = last["datagrams_received"] - first["datagrams_received"]
    histogram = merge_histograms([result["histogram"]])
    relay_figures: dict[str, Any] = {}
    if relay is not None:
        start, end = (m["counters"] for m in measured.marks[relay.name])
        forwarded = end["forwarded"] - start["forwarded"]
        relay_cpu_s = measured.server_cpu_by_process[relay.name]
        relay_figures = {
            "relay_cpu_s": relay_cpu_s,
            "relay_forwarded": forwarded,
            "relay_dropped": end["dropped"] - start["dropped"],
            "relay_cpu_us_per_datagram": round(relay_cpu_s * 1e6 / max(forwarded, 1), 2),
        }
    return {
        **relay_figures,
        "per_s": result["count"] / window,
        "count": result["count"],
        "window_s": window,
        "server_cpu_s": measured.server_cpu_s,
        "load_cpu_s": measured.load_cpu_s,
        "refills": result.get("refills", 0),
        "server_datagrams_in_per_echo": round(received / max(result["count"], 1), 3),
        **latency_ms(histogram),
        "bottleneck": bottleneck(measured.server_cpu_s, measured.load_cpu_s, window),
    }


def run(options: Options) -> int:
    second = "relayed" if options["relay"] else "vinom"
    modes = [options["only"]] if options["only"] else ["bare", second]
    key = os.urandom(32)
    halves: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    progress = progress_for(options, "udp-echo", options.planned_seconds())
    done_before = [0.0]

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        progress.update(
            f"{worker.name}: {message.get('count', 0):,} echoes",
            done_before[0] + float(message.get("elapsed", 0.0)),
        )

    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    with Harness(options.hard_limit(), on_progress) as harness:
        for _ in range(options["rounds"]):
            for mode in modes:
                if mode in failures:
                    continue
                try:
                    runs[mode].append(run_half(options, mode, harness, key))
                except BenchError as e:
                    failures[mode] = str(e).splitlines()[0] if str(e) else repr(e)
                    failures[mode + "_detail"] = str(e)
                done_before[0] += options["warmup"] + options["duration"]
    progress.finish()
    for mode in modes:
        if runs[mode] and mode not in failures:
            ordered = sorted(runs[mode], key=lambda half: half["per_s"])
            halves[mode] = ordered[(len(ordered) - 1) // 2]

    bare = halves.get("bare", {})
    vinom = halves.get("vinom", {})
    relayed = halves.get("relayed", {})
    result: dict[str, Any] = {
        "scenario": "udp-echo",
        "size": options["size"],
        "window": options["window"],
        "clients": options["clients"],
        "bare_per_s": round(bare["per_s"], 1) if bare else None,
        "vinom_per_s": round(vinom["per_s"], 1) if vinom else None,
        "ratio": round(vinom["per_s"] / bare["per_s"], 3) if bare and vinom else None,
        "server_cpu_s": round(sum(h["server_cpu_s"] for h in halves.values()), 3),
        "load_cpu_s": round(sum(h["load_cpu_s"] for h in halves.values()), 3),
        "rounds": options["rounds"],
    }
    rows: list[tuple[str, Any]] = []
    for mode, half in halves.items():
        result[f"{mode}_runs_per_s"] = [round(run["per_s"], 1) for run in runs[mode]]
        result[f"{mode}_server_cpu_s"] = round(half["server_cpu_s"], 3)
        result[f"{mode}_load_cpu_s"] = round(half["load_cpu_s"], 3)
        result[f"{mode}_p50_ms"] = half["p50_ms"]
        result[f"{mode}_p99_ms"] = half["p99_ms"]
        result[f"{mode}_bottleneck"] = half["bottleneck"]
        result[f"{mode}_datagrams_per_echo"] = half["server_datagrams_in_per_echo"]
        result[f"{mode}_server_us_per_echo"] = round(
            half["server_cpu_s"] * 1e6 / max(half["count"], 1), 2
        )
        rows += [
            (f"{mode}: echoes/s", half["per_s"]),
            (f"{mode}: rtt p50 / p99 ms", f"{half['p50_ms']} / {half['p99_ms']}"),
            (f"{mode}: server CPU us / echo", result[f"{mode}_server_us_per_echo"]),
            (f"{mode}: server datagrams in / echo", half["server_datagrams_in_per_echo"]),
            cpu_row(
                half["server_cpu_s"],
                half["load_cpu_s"],
                half["window_s"],
                half["bottleneck"],
                f"{mode}: server / load CPU s",
            ),
        ]
    if relayed:
        result["relayed_per_s"] = round(relayed["per_s"], 1)
        result["relay_cpu_us_per_datagram"] = relayed["relay_cpu_us_per_datagram"]
        result["relay_dropped"] = relayed["relay_dropped"]
        rows.append(("relay CPU us / forwarded datagram", relayed["relay_cpu_us_per_datagram"]))
        if bare:
            result["added_p50_ms"] = round(relayed["p50_ms"] - bare["p50_ms"], 3)
            result["added_p99_ms"] = round(relayed["p99_ms"] - bare["p99_ms"], 3)
            rows.append(("relay adds p50 / p99 ms",
                         f"{result['added_p50_ms']} / {result['added_p99_ms']}"))  # fmt: skip
    if result["ratio"] is not None:
        # The same ratio from CPU cost per echo: steadier than rates when other
        # processes share the cores, and unaffected by which side was the limit.
        result["cpu_ratio"] = round(
            result["bare_server_us_per_echo"] / max(result["vinom_server_us_per_echo"], 1e-9), 3
        )
        rows.append(("ratio vinom/bare (rate)", result["ratio"]))
        rows.append(("ratio vinom/bare (server CPU per echo)", result["cpu_ratio"]))
    for mode in modes:
        if mode in failures:
            result[f"{mode}_error"] = failures[mode]
            rows.append((f"{mode}: FAILED", failures[mode]))
    title = (
        f"udp-echo: {options['size']} B payload, window {options['window']}, "
        f"{options['clients']} sockets, {options['duration']:g} s measured"
    )
    report(title, rows, result, table=options.show_table)
    for mode in modes:
        if mode in failures:
            sys.stderr.write(f"\n{mode} half failed:\n{failures[mode + '_detail']}\n")
    return 1 if failures else 0
