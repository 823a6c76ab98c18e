"""`python -m benchmarks <scenario> [options]`: run one benchmark scenario.

`python -m benchmarks compare --baseline VENV <scenario> [options]` runs one
alternately on two builds and compares their figures (benchmarks/compare.py).

Every scenario starts its server and its load generator as separate
processes on 127.0.0.1 (pinned to separate cores when there are two),
shows a progress bar on a terminal, and prints a human table followed by
one JSON line with the figures, including the CPU seconds the server and
the load used. benchmarks/README.md defines each scenario exactly.

`python -m benchmarks --save-results DIR <command> [options]` also writes
that JSON line to a dated result file in DIR (benchmarks/results.py).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from twisted.python import usage

from benchmarks import ports, results

# Scenario name -> module holding its `Options` and `run(options) -> exit code`.
SCENARIOS = {
    "udp-echo": "benchmarks.udp_echo",
    "handshake": "benchmarks.handshake",
    "play": "benchmarks.play",
    "colyseus-play": "benchmarks.colyseus_play",
    "sessions": "benchmarks.sessions",
    "match": "benchmarks.match",
    "soak": "benchmarks.soak",
    "lobby-idle": "benchmarks.lobby_idle",
    "spawn": "benchmarks.spawn",
    "drain": "benchmarks.drain",
    "matchmaker": "benchmarks.matchmaker",
    "chaos": "benchmarks.chaos",
}

# Commands that run the scenarios above rather than being one (same interface).
TOOLS = {"compare": "benchmarks.compare", "shape": "benchmarks.shape"}
COMMANDS = {**SCENARIOS, **TOOLS}


def _scenario(name: str) -> tuple[type[usage.Options], str]:
    module = importlib.import_module(COMMANDS[name])
    doc = (module.__doc__ or "").strip().splitlines()[0]
    return module.Options, doc


def results_directory(path: str) -> str:
    """usage.Options coerce of --save-results."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--save-results: {path} is not a directory")
    return path


results_directory.coerceDoc = "A directory, made if missing."  # type: ignore[attr-defined]


def port_range(text: str) -> str:
    """usage.Options coerce of --ports."""
    ports.parse_range(text)
    return text


port_range.coerceDoc = "LOW-HIGH, within 1024-65535."  # type: ignore[attr-defined]


class Options(usage.Options):
    synopsis = "[--save-results DIR] <scenario> [options]"
    longdesc = __doc__

    optParameters = [
        ["save-results", None, None,
         "Also write the run's JSON line to a dated result file in this directory.",
         results_directory],
        ["ports", None, None,
         "LOW-HIGH: every server of the run (vinom's, Redis, the peers) listens in this "
         "range, so that two runs can share a machine (benchmarks/ports.py).",
         port_range],
    ]  # fmt: skip

    subCommands = [
        [name, None, *_scenario(name)]
        for name in COMMANDS
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(
                "name a scenario: " + ", ".join(SCENARIOS) + " (see --help)"
            )


def command_args(argv: Sequence[str], command: str) -> list[str]:
    """The options given to `command` in `argv` (what follows its name)."""
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in ("--save-results", "--ports"):
            skip = True
        elif arg == command:
            return list(argv[index + 1:])
    return []


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nerror: {e}\n")
        return 2
    assert options.subCommand is not None
    if options["ports"] is not None:
        # Every process the run starts inherits it (benchmarks/ports.py).
        os.environ[ports.RANGE_VARIABLE] = options["ports"]
    module = importlib.import_module(COMMANDS[options.subCommand])
    directory = options["save-results"]
    if directory is None:
        return run(module, options.subOptions)
    load_at_start = results.load_average()
    out = sys.stdout
    kept = results.JsonLines(out)
    sys.stdout = kept
    try:
        status = run(module, options.subOptions)
    finally:
        sys.stdout = out
    result = kept.result()
    path = None
    if result is not None:
        path = results.save(
            directory, options.subCommand, command_args(argv, options.subCommand),
            status, result, load_at_start,
            scenario=getattr(options.subOptions, "scenario", None),
        )  # fmt: skip
    results.report_saved(path)
    return status


def run(module: object, options: usage.Options) -> int:
    try:
        return int(module.run(options))  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
