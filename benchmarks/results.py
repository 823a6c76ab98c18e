"""Result files: `python -m benchmarks --save-results DIR <command> ...` keeps a run.

Every command prints one JSON line last (a scenario's figures, or `compare`'s
summary). With `--save-results DIR` that line is also written to a file of its
own in DIR, named for the day, the command and the time it was saved
(`2026-11-25-play-194522.json`; `compare` adds its scenario:
`2026-11-25-compare-play-194522.json`), never over an existing one. The file
is one JSON object: `command`, `args` (the command's options as given),
`saved` (UTC, ISO 8601), `exit` (the command's exit status), `machine`
(`cpus`, `platform`, `python`, and `load_average`: the 1-minute load average
of the machine as the run started and as it ended, since figures of a busy
machine do not compare with a quiet one's) and `result`, the JSON line itself
(`chaos`, which ends with a line per fault: the list of them).
A run that printed no JSON line (a usage error) saves nothing.
benchmarks/results/ holds the project's own: docs/performance.md links them.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any


class JsonLines:
    """A text stream that writes through to `stream` and keeps the JSON lines it ends with.

    A scenario ends with one JSON line; `chaos` ends with one per fault.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._pending = ""
        self._trailing: list[dict[str, Any]] = []

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._take(line)
        return written

    def _take(self, line: str) -> None:
        if not line.strip():
            return
        value = json_object(line)
        if value is None:
            self._trailing = []
        else:
            self._trailing.append(value)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def result(self) -> dict[str, Any] | list[dict[str, Any]] | None:
        """The closing JSON line, a list of them when there were several, or None."""
        if self._pending.strip():
            self._take(self._pending)
            self._pending = ""
        if not self._trailing:
            return None
        return self._trailing[0] if len(self._trailing) == 1 else list(self._trailing)


def json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine(load_at_start: float | None) -> dict[str, Any]:
    """What the result file says of the machine the run had."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [load_at_start, load_average()],
    }


def file_name(command: str, when: datetime.datetime, scenario: str | None = None) -> str:
    """`<day>-<command>[-<scenario>]-<time>`, without the extension."""
    parts = [when.strftime("%Y-%m-%d"), command, *([scenario] if scenario else [])]
    return "-".join([*parts, when.strftime("%H%M%S")])


def save(
    directory: str,
    command: str,
    args: Sequence[str],
    exit_status: int,
    result: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    load_at_start: float | None,
    when: datetime.datetime | None = None,
    scenario: str | None = None,
) -> str:
    """Write one result file into `directory` (made if missing); returns its path.

    `scenario` is the one a `compare` ran, which its file's name then says.
    """
    when = when or datetime.datetime.now(datetime.UTC)
    record = {
        "command": command,
        "args": list(args),
        "saved": when.isoformat(timespec="seconds"),
        "exit": exit_status,
        "machine": machine(load_at_start),
        "result": dict(result) if isinstance(result, Mapping) else [dict(r) for r in result],
    }
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, file_name(command, when, scenario))
    for n in range(1, 1000):
        path = f"{stem}.json" if n == 1 else f"{stem}-{n}.json"
        try:
            with open(path, "x", encoding="utf-8") as f:
                json.dump(record, f, indent=1, sort_keys=True)
                f.write("\n")
        except FileExistsError:
            continue
        return path
    raise OSError(f"no free result file name for {stem}.json in {directory}")


def report_saved(path: str | None, out: IO[str] | None = None) -> None:
    out = out or sys.stderr
    if path is None:
        out.write("--save-results: the run printed no JSON line; nothing saved\n")
    else:
        out.write(f"result saved: {path}\n")
