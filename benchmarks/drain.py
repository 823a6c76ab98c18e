"""The drain scenario: SIGTERM to a real `twistd -n vinom` while M matches run; all must end.

The server is `twistd -n vinom` itself, a child process of the bench (its
SIGTERM handler, the drain of vinom/server/drain.py, is installed only by twistd),
with the bench's loopback options and `--drain-timeout` (default 60 s);
games run where `--host-workers` says (default: the server's own default,
one worker per core beyond the first). Bots (the game's own, default
`tictactoe`, `think` seconds before each move, default 1) queue for
`matches` matches (default 100) at once through the TLS lobby. Once every
bot has its game session, the bench sends SIGTERM to the server: the lobby
takes no new players, running matches play to their end, then the process
exits. `running` is how many matches were under way at that moment.

A match is `finished` if every one of its players saw `finished`,
`aborted` if every player saw a final phase and one at least `aborted`
(as matches still running when the drain times out are, with reason
`shutdown`), `lost` if a player never saw a final phase (its session
closed, or timed out, first). `drain_s` runs from SIGTERM to the server
process's exit, `exit_code` is its exit status. The run passes if every
match finished, none was lost and the server exited 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Any

from benchmarks.common import (
    ScenarioOptions,
    cpu_plan,
    non_negative_float,
    non_negative_int,
    positive_int,
    progress_for,
    report_failure,
)
from benchmarks.harness import BenchError, Deadline, Harness, report
from benchmarks.ports import free_tcp_port, free_udp_range
from benchmarks.server_worker import server_args


def twistd_main() -> str:
    """`python -c` code running twistd on the vinom this bench imported (and its plugin)."""
    import vinom

    root = os.path.dirname(os.path.dirname(os.path.abspath(vinom.__file__)))
    return (
        f"import sys; sys.path.insert(0, {root!r}); sys.argv[0] = 'twistd'; "
        "from twisted.scripts.twistd import run; run()"
    )


class Options(ScenarioOptions):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["matches", None, "100", "Matches running when the server gets SIGTERM."],
        ["game", None, "tictactoe", "The (two-player) game the bots play."],
        ["think", None, "1", "Seconds a bot waits before each move (the matches' length)."],
        ["drain-timeout", None, "60", "The server's --limit drain-timeout."],
        ["host-workers", None, None, "The server's --host-workers (default: its own default)."],
    ]

    def postOptions(self) -> None:
        self["matches"] = positive_int(self, "matches")
        self["think"] = non_negative_float(self, "think")
        self["drain-timeout"] = non_negative_float(self, "drain-timeout")
        if self["host-workers"] is None:
            self["host-workers"] = max(1, (os.cpu_count() or 1) - 1)  # as twistd vinom
        else:
            self["host-workers"] = non_negative_int(self, "host-workers")

    def planned_seconds(self) -> float:
        # Bots connecting, then a match of up to 9 moves.
        return self["matches"] * 0.05 + 10 * self["think"]

    def hard_limit(self) -> float:
        if self["timeout"] is not None:
            return float(self["timeout"])
        return self.planned_seconds() + self["drain-timeout"] + self.slack


def _wait_listening(log_path: str, process: Any, limit: float) -> None:
    """Until twistd logs that it listens; BenchError if it exits or takes too long."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with open(log_path, "rb") as f:
                if b"starting on" in f.read():
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise BenchError(f"twistd exited (code {process.returncode}):\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise BenchError(f"twistd did not listen within {limit:g} s:\n{_tail(log_path)}")
        time.sleep(0.05)


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-limit:]
    except OSError:
        return ""


def run(options: Options) -> int:
    progress = progress_for(options, "drain", options.planned_seconds())
    state: dict[str, Any] = {}

    def on_progress(worker: Any, message: dict[str, Any]) -> None:
        text = f"{message.get('running', 0)} running, {message.get('count', 0)} ended"
        if "sigterm_at" in state:
            text += " (draining)"
        progress.update(text, message.get("elapsed"))

    data_dir = tempfile.mkdtemp(prefix="vinom-bench-drain-")
    log_path = os.path.join(data_dir, "twistd.log")
    server_cpu, load_cpus = cpu_plan(1, options.pin)
    try:
        with Harness(options.hard_limit(), on_progress) as harness:
            lobby_port = free_tcp_port("127.0.0.1")
            udp = free_udp_range("127.0.0.1", options["matches"] + 16)
            workers = options["host-workers"]
            hosting = (["--matches", "workers", "--host-workers", str(workers)] if workers
                       else ["--matches", "here"])  # fmt: skip
            server = harness.spawn_command(
                "twistd",
                [sys.executable, "-c", twistd_main(), "-n", "--pidfile=", "--logfile", log_path,
                 "vinom", *server_args(lobby_port, udp, data_dir, options["game"],
                                       extra=hosting), *hosting,
                 "--limit", f"drain-timeout={options['drain-timeout']:g}"],
                server_cpu,
            )  # fmt: skip
            _wait_listening(log_path, server.popen, 60)
            exited: dict[str, float] = {}

            def watch() -> None:
                server.popen.wait()
                exited["at"] = time.monotonic()

            threading.Thread(target=watch, daemon=True).start()
            from vinom.server.certs import CERT_FILE

            load = harness.spawn(
                "load", "benchmarks.lobby_worker",
                ["matches", json.dumps({
                    "host": "127.0.0.1",
                    "port": lobby_port,
                    "trust": os.path.join(data_dir, CERT_FILE),
                    "game": options["game"],
                    "matches": options["matches"],
                    "at_once": options["matches"],
                    "think": options["think"],
                    "announce_running": True,
                    "match_timeout": options["drain-timeout"] + 60,
                })],
                load_cpus[0],
            )  # fmt: skip
            harness.wait_for(load, "measuring")
            running = harness.wait_for(load, "running")
            if not server.running():
                raise BenchError(f"twistd exited before SIGTERM:\n{_tail(log_path)}")
            state["sigterm_at"] = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            harness.wait_for(load, "window_end")
            result = harness.wait_for(load, "result")
            limit = min(harness.deadline, time.monotonic() + options["drain-timeout"] + 30)
            while "at" not in exited:
                if time.monotonic() > limit:
                    raise Deadline(f"twistd did not exit after SIGTERM:\n{_tail(log_path)}")
                time.sleep(0.05)
            exit_code = server.popen.returncode
    except BenchError as e:
        progress.finish()
        return report_failure("drain", e, options)
    finally:
        log = _tail(log_path, 100_000)
        shutil.rmtree(data_dir, ignore_errors=True)
    progress.finish()
    unplaced = options["matches"] - int(result["matches"])
    summary: dict[str, Any] = {
        "scenario": "drain",
        "game": options["game"],
        "think_s": options["think"],
        "host_workers": options["host-workers"],
        "drain_timeout_s": options["drain-timeout"],
        "matches": int(result["matches"]),
        "running": int(running["running"]),
        "finished": int(result["finished"]),
        "aborted": int(result["aborted"]),
        # Matches a player of which never saw a final phase, and matches never formed.
        "lost": int(result["lost"]) + max(unplaced, 0),
        "exit_code": exit_code,
        "drain_s": round(exited["at"] - state["sigterm_at"], 3),
        "load_cpu_s": round(float(result["load_cpu_s"]), 3),
    }
    if result["bot_failures"]:
        summary["bot_failures"] = result["bot_failures"]
    endings = {k: v for k, v in result["endings"].items() if k != "finished"}
    if endings:
        summary["endings"] = endings
    rows: list[tuple[str, Any]] = [
        ("matches (running at SIGTERM)", f"{summary['matches']} ({summary['running']})"),
        ("finished / aborted / lost",
         f"{summary['finished']} / {summary['aborted']} / {summary['lost']}"),
        ("drain s (SIGTERM to exit)", summary["drain_s"]),
        ("server exit code", exit_code),
    ]
    report(
        f"drain: {options['matches']} {options['game']} matches, SIGTERM to twistd "
        f"({options['host-workers']} game-host worker(s))",
        rows, summary, table=options.show_table,
    )
    ok = (
        summary["finished"] == options["matches"] and summary["lost"] == 0 and exit_code == 0
    )
    if not ok:
        sys.stderr.write(f"twistd's log:\n{log[-8000:]}\n")
    return 0 if ok else 1

