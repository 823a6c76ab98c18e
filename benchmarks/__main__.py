"""`python -m benchmarks <scenario> [options]`: run one benchmark scenario.

`python -m benchmarks compare --baseline VENV <scenario> [options]` runs one
alternately on two builds and compares their figures (benchmarks/compare.py).

Every scenario starts its server and its load generator as separate
processes on 127.0.0.1 (pinned to separate cores when there are two),
shows a progress bar on a terminal, and prints a human table followed by
one JSON line with the figures, including the CPU seconds the server and
the load used. docs/performance.md defines each scenario exactly.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from twisted.python import usage

# Scenario name -> module holding its `Options` and `run(options) -> exit code`.
SCENARIOS = {
    "udp-echo": "benchmarks.udp_echo",
    "handshake": "benchmarks.handshake",
    "play": "benchmarks.play",
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
TOOLS = {"compare": "benchmarks.compare"}
COMMANDS = {**SCENARIOS, **TOOLS}


def _scenario(name: str) -> tuple[type[usage.Options], str]:
    module = importlib.import_module(COMMANDS[name])
    doc = (module.__doc__ or "").strip().splitlines()[0]
    return module.Options, doc


class Options(usage.Options):
    synopsis = "<scenario> [options]"
    longdesc = __doc__

    subCommands = [
        [name, None, *_scenario(name)]
        for name in COMMANDS
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(
                "name a scenario: " + ", ".join(SCENARIOS) + " (see --help)"
            )


def main(argv: Sequence[str] | None = None) -> int:
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nerror: {e}\n")
        return 2
    assert options.subCommand is not None
    module = importlib.import_module(COMMANDS[options.subCommand])
    try:
        return int(module.run(options.subOptions))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
