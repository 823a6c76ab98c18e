"""Load worker of the session scenarios: `python -m benchmarks.load_worker <kind> <json>`.

The parent passes the scenario's settings as one JSON object; the worker runs
the matching load function and sends its figures back as a `result` line.
"""

from __future__ import annotations

import importlib
import json
import sys

from benchmarks.worker import emit, run_guarded

# Kind -> "module:function" taking the settings dict and returning the result dict.
KINDS = {
    "handshake": "benchmarks.session_load:run_handshake",
    "arena": "benchmarks.arena_load:run_arena",
    "arena-websocket": "benchmarks.arena_web_load:run_arena_websocket",
    "arena-webtransport": "benchmarks.arena_web_load:run_arena_webtransport",
    "arena-spectators": "benchmarks.spectator_load:run_spectators",
    "play": "benchmarks.room_load:run_play",
    "play-websocket": "benchmarks.websocket_load:run_play_websocket",
    "play-webtransport": "benchmarks.webtransport_load:run_play_webtransport",
    "sessions": "benchmarks.room_load:run_sessions",
}


def main() -> None:
    kind, settings = sys.argv[1], json.loads(sys.argv[2])
    module_name, _, function = KINDS[kind].partition(":")
    result = getattr(importlib.import_module(module_name), function)(settings)
    emit("result", **result)


if __name__ == "__main__":
    run_guarded(main)
