"""`match --client native`: the lean clients' lobby half, then the native load client.

The lobby side is `benchmarks.match_load`'s (TLS, `hello`, `queue`,
`match_found`); each client's connect token then goes, as one JSON line, to
the stdin of one `vinom_load` process (clients/cpp/examples/vinom_load.cpp,
the native core's load client), which plays every UDP session from one thread
(handshake, the full room, `leave`, the disconnects) and writes a line per
session as it ends, then a summary with its own CPU time. A client's latency
runs from its lobby connection's start to its session's line read here.

`program` builds vinom_load when no path is given: CMake, Release, the target
alone, into a directory of the temporary directory named by a hash of
clients/cpp (kept, so a second run of the same sources builds nothing); the
build needs Debian's cmake, g++, libssl-dev, libmsgpack-cxx-dev and
nlohmann-json3-dev (docs/clients.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.match_load import GAME, ClientFailed, MatchClient, MatchLoad

SOURCE = Path(__file__).resolve().parent.parent / "clients" / "cpp"
PACKAGES = "cmake g++ libssl-dev libmsgpack-cxx-dev nlohmann-json3-dev"


class NativeBuildError(Exception):
    """vinom_load could not be built: the message says why and what to install."""


def program(path: str | None = None) -> str:
    """The vinom_load to run: `path`, or a Release build of clients/cpp's."""
    if path:
        return path
    cmake = shutil.which("cmake")
    if cmake is None or shutil.which("g++") is None:
        raise NativeBuildError(f"--client native builds vinom_load: apt-get install -y {PACKAGES}")
    digest = hashlib.sha256()
    for file in sorted(p for p in SOURCE.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(SOURCE)).encode() + b"\0" + file.read_bytes())
    where = Path(tempfile.gettempdir()) / f"vinom-native-load-{digest.hexdigest()[:16]}"
    built = where / "vinom_load"
    if built.exists():
        return str(built)
    steps = [
        [cmake, "-S", str(SOURCE), "-B", str(where), "-DCMAKE_BUILD_TYPE=Release",
         "-DVINOM_TESTS=OFF", "-DVINOM_SHARED=OFF"],
        [cmake, "--build", str(where), "--target", "vinom_load"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise NativeBuildError(
                f"{' '.join(step)} failed (the packages: {PACKAGES}):\n{done.stdout}{done.stderr}"
            )
    return str(built)


class NativeMatchLoad(MatchLoad):
    """MatchLoad whose clients hand their sessions to one vinom_load process."""

    def __init__(self, *args: Any, program: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process = subprocess.Popen(
            [program, "-", "--play", "full-room", "--session-seconds", str(self.timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.to_native = self.process.stdin.fileno()
        self.from_native = self.process.stdout.fileno()
        os.set_blocking(self.to_native, False)
        os.set_blocking(self.from_native, False)
        self.selector.register(self.from_native, 1, self._read)  # selectors.EVENT_READ
        self.outgoing = bytearray()
        self.writing = False
        self.partial = b""
        self.by_player: dict[str, MatchClient] = {}
        self.summary: dict[str, Any] = {}

    def _start_game(self, client: MatchClient, frame: dict[str, Any]) -> None:
        token = frame.get("token")
        if not isinstance(token, dict) or not isinstance(token.get("player_id"), str):
            raise ClientFailed("lobby_bad_match_found")
        client.match_id = str(frame.get("game_id", ""))
        client.phase = GAME
        self.by_player[token["player_id"]] = client
        self.outgoing += json.dumps(token).encode() + b"\n"
        self._push()

    def _push(self) -> None:
        """Write what the native process can take now; the rest when its pipe drains
        (never blocking: it may be blocked writing its own lines to us)."""
        if self.outgoing:
            with contextlib.suppress(BlockingIOError):
                del self.outgoing[: os.write(self.to_native, self.outgoing)]
        if bool(self.outgoing) != self.writing:
            self.writing = bool(self.outgoing)
            if self.writing:
                self.selector.register(self.to_native, 2, self._push)  # selectors.EVENT_WRITE
            else:
                self.selector.unregister(self.to_native)

    def _read(self) -> None:
        try:
            data = os.read(self.from_native, 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(self.from_native)
            for client in list(self.by_player.values()):
                self.fail(client, "game_native_exited")
            self.by_player.clear()
            return
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self._line(json.loads(line))

    def _line(self, line: dict[str, Any]) -> None:
        if line.get("event") == "summary":
            self.summary = line
            return
        client = self.by_player.pop(str(line.get("player_id")), None)
        if client is None or client.phase != GAME:
            return  # failed meanwhile (its deadline passed)
        if line.get("result") != "ok":
            self.fail(client, f"game_{line.get('reason')}")
            return
        now = time.perf_counter()
        self.latencies.record(int((now - client.started) * 1e6))
        self.completed += 1
        self.completed_by_lobby[client.lobby] += 1
        self.match_lobbies.setdefault(client.match_id, []).append(client.lobby)
        self._finish(client)

    def finish_native(self) -> dict[str, Any]:
        """Close its input, read its last lines and its summary: its CPU time."""
        self._push()
        if self.writing:
            self.selector.unregister(self.to_native)
        os.set_blocking(self.to_native, True)
        assert self.process.stdin is not None and self.process.stdout is not None
        os.write(self.to_native, bytes(self.outgoing))
        self.process.stdin.close()
        os.set_blocking(self.from_native, True)
        rest = self.partial + self.process.stdout.read()
        self.partial = b""
        for line in rest.splitlines():
            if line:
                self._line(json.loads(line))
        self.process.wait()
        return self.summary

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        super().close()
