"""The native client core (clients/cpp): configured and built with CMake, with
AddressSanitizer and UndefinedBehaviorSanitizer on; then its GoogleTest suite
and its C ABI test run, and the suite is shown to read vectors/protocol.json:
a copy with one byte of one vector changed fails it. The example client
(examples/vinom_udp_probe.cpp) then plays a seat of tictactoe against a real
`twistd vinom` child process over UDP, and a tampered token gets its refusal
line; the C example of the frame loop a Godot GDExtension runs
(examples/frame_loop.c) reads the room's first messages, or reports the
refusal; and the probe gets its seat from the lobby over TLS with the core's own
lobby client (a wrong certificate refused). The same build, with clang, makes the
libFuzzer target (clients/cpp/fuzz), which runs its kept corpus and a bounded
number of mutations with no finding. The release build (tests.test_native_install,
tests.test_native_csharp) is g++'s. CMake, g++, clang and the libraries are Debian's
packages (scripts/test installs them); a missing one fails with the command
that installs it, never skips.

Each configuration is built once, into a directory named by a hash of its
configure options, of where its sources are and of their content (every file
of clients/cpp and the vectors file) under the temporary directory's `vinom-native-builds/`, shared
by trial's worker processes (`-j2` hands test cases to both) and by
tests.test_native_csharp: the first process to take the build's file lock
(fcntl.flock) builds while the others wait, then each uses it under a shared
lock. The builds are kept by that hash rather than removed at exit: a
worker cannot know when the other is done with a build, and the next run of
unchanged sources reuses it (a run that changes no C++ builds nothing). The
source directory is part of the hash because a CMake build directory names
it: `cmake --install` and a target's rebuild check read the sources from
there, so a build of a deleted checkout with the same content is no use. A run that builds
removes the kept builds nobody has used for KEEP_SECONDS and nobody holds.
A failed build is not kept: its report fails every test of the run that
needs it, and the next run builds again."""

# slow: builds the native client with CMake (clang), starts twistd vinom

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor, utils
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support.fuzz_corpus import CORPUS, seeds
from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import start_twistd
from tests.support.vectors import VECTORS, load
from tests.support.waiting import until
from vinom.client.lobby import connect_lobby
from vinom.server.certs import make_self_signed

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "clients" / "cpp"
PATH = "/usr/bin:/bin"

#: Debian's packages the build needs (as scripts/test installs them).
PACKAGES = (
    "cmake g++ libssl-dev libmsgpack-cxx-dev nlohmann-json3-dev libgtest-dev clang libclang-rt-dev"
)

#: Mutations the fuzz test runs after the corpus: a few seconds on an idle machine.
FUZZ_RUNS = 10000

#: The suite's build: clang, AddressSanitizer and UndefinedBehaviorSanitizer on, the
#: libFuzzer target beside the tests and examples (no libvinom.so: the C# tests load a
#: release one). One build for both: g++'s sanitized build and a second, clang's, for
#: the fuzz target alone took 138 s and 40 s on two cores, this one 77 s.
SANITIZED = ("-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++", "-DVINOM_SANITIZE=ON",
             "-DVINOM_FUZZ=ON", "-DVINOM_SHARED=OFF")  # fmt: skip

#: The library as a game ships it: optimized, no sanitizer, the shared and the static
#: library and nothing else. One build serves the C# tests (its libvinom.so) and the
#: install test (`cmake --install`): a second release build for the shared library
#: alone cost 50 s of the suite.
RELEASE = ("-DCMAKE_BUILD_TYPE=Release", "-DVINOM_TESTS=OFF", "-DVINOM_EXAMPLES=OFF")

#: Where the builds live, by content: shared by trial's worker processes and by
#: later runs of the same sources (see the module docstring).
BUILDS = Path(tempfile.gettempdir()) / "vinom-native-builds"

#: A kept build nobody has used for this long is removed by the next run that builds.
KEEP_SECONDS = 6 * 3600

#: When this process started: a build failure recorded before it is not reused.
_STARTED = time.time()

_built: dict[tuple[str, ...], Path | str] = {}
_held: list[int] = []  # the shared locks this process holds on the builds it uses


async def _run(program: str, args: list[str], env: dict[str, str] | None = None) -> tuple[str, int]:
    # The vectors file is always named (`env` may name another): a build is kept by
    # content and may be another checkout's, whose compiled-in path may be gone.
    base = {"PATH": PATH, "VINOM_VECTORS": str(VECTORS)}
    out, err, code = await utils.getProcessOutputAndValue(
        program, args, path=str(ROOT), env={**base, **(env or {})}
    )
    return (out + err).decode(errors="replace"), code


async def json_lines(program: Path, args: list[str]) -> tuple[list[dict[str, Any]], str, int]:
    """`program` run to its end with `args`: its JSON lines, its stderr and its exit code."""
    out, err, code = await utils.getProcessOutputAndValue(
        str(program), args, path=str(ROOT), env={"PATH": PATH}
    )
    lines = [json.loads(line) for line in out.decode().splitlines() if line]
    return lines, err.decode(errors="replace"), code


def _key(configure: tuple[str, ...], target: str | None) -> str:
    """The hash naming a build: its configure options and target, the source
    directory, every file of clients/cpp and the vectors file."""
    digest = hashlib.sha256(repr((configure, target, str(SOURCE))).encode())
    files = (p for p in SOURCE.rglob("*") if p.is_file())
    # An in-source build directory (clients/cpp/build*) is no input.
    for path in sorted(p for p in files if not p.relative_to(SOURCE).parts[0].startswith("build")):
        digest.update(str(path.relative_to(SOURCE)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(hashlib.sha256(VECTORS.read_bytes()).digest())
    return digest.hexdigest()[:24]


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _prune() -> None:
    """Remove the kept builds unused for KEEP_SECONDS that no process is using
    (each user holds a shared lock on its build's lock file)."""
    for lock in BUILDS.glob("*.lock"):
        where = lock.with_suffix("")
        fd = os.open(lock, os.O_RDWR)
        try:
            if _try_lock(fd, fcntl.LOCK_EX) and time.time() - lock.stat().st_mtime > KEEP_SECONDS:
                shutil.rmtree(where, ignore_errors=True)
                lock.unlink()
        finally:
            os.close(fd)


async def _cmake(configure: tuple[str, ...], target: str | None, needs: str) -> Path:
    """The build directory of clients/cpp configured with `configure` (and only
    `target` built, when given). Trial's workers share it: the first to take the
    build's lock builds it while the others wait, then all use it under a shared
    lock. A failure is kept and repeated, so one broken build fails every test
    with its own output (in every worker of this run; a later run builds again).
    `needs`: the compiler whose absence is reported."""
    key = (*configure, target or "")
    cached = _built.get(key)
    if isinstance(cached, Path):
        return cached
    if cached is not None:
        raise AssertionError(cached)
    cmake = shutil.which("cmake", path=PATH)
    if cmake is None or shutil.which(needs, path=PATH) is None:
        _built[key] = (f"this test needs cmake and {needs}: run scripts/test, or "
                       f"`apt-get install -y {PACKAGES}`")  # fmt: skip
        raise AssertionError(_built[key])
    BUILDS.mkdir(exist_ok=True)
    where = BUILDS / _key(configure, target)
    done, failed = where / "vinom-build-done", where.with_suffix(".failed")
    fd = os.open(where.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)

    def known() -> bool:
        """Whether the build is done, or failed in this run (another worker's)."""
        if done.exists():
            _built[key] = where
        elif failed.exists() and failed.stat().st_mtime >= _STARTED:
            _built[key] = failed.read_text("utf-8")
        return key in _built

    # A shared lock waits out a build under way; the users of a done build hold one.
    await until(lambda: _try_lock(fd, fcntl.LOCK_SH), f"the lock of the build {where}",
                timeout=1800, every=0.2)  # fmt: skip
    if not known():
        # None is built yet: the first to take the exclusive lock builds; the others
        # wait until the build is known (its builder keeps a shared lock after it, so
        # their exclusive lock would never come).
        fcntl.flock(fd, fcntl.LOCK_UN)
        exclusive = False

        def mine_or_known() -> bool:
            nonlocal exclusive
            if known():
                return True
            exclusive = _try_lock(fd, fcntl.LOCK_EX)
            return exclusive

        await until(mine_or_known, f"the build {where} or its lock", timeout=1800, every=0.2)
        try:
            if exclusive and not known():
                _prune()
                shutil.rmtree(where, ignore_errors=True)  # what an interrupted build left
                _built[key] = await _build(cmake, where, configure, target)
                if isinstance(_built[key], str):
                    failed.write_text(str(_built[key]), "utf-8")
                else:
                    done.touch()
                    failed.unlink(missing_ok=True)
        finally:
            # Keep a shared lock while this process may use the build: no prune removes it.
            fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)
    os.utime(where.with_suffix(".lock"))  # last used: now
    if isinstance(_built[key], str):
        raise AssertionError(_built[key])
    return where


async def _build(cmake: str, where: Path, configure: tuple[str, ...],
                 target: str | None) -> Path | str:  # fmt: skip
    """Configure and build into `where`: the directory, or the failure's report."""
    only = ["--target", target] if target else []
    steps = [["-S", str(SOURCE), "-B", str(where), *configure, f"-DVINOM_VECTORS={VECTORS}"],
             ["--build", str(where), "-j", "2", *only]]  # fmt: skip
    for args in steps:
        report, code = await _run(cmake, args)
        if code != 0:
            return f"cmake {' '.join(args)} failed (the packages: {PACKAGES}):\n{report}"
    return where


async def build(options: tuple[str, ...] = SANITIZED, target: str | None = None) -> Path:
    """A build configured with `options` (by default the suite's: the library, its
    tests, the examples and the fuzz target, sanitized), only `target` built when given."""
    return await _cmake(options, target, "clang++" if "-DCMAKE_CXX_COMPILER=clang++" in options
                        else "g++")  # fmt: skip


async def googletest(args: list[str], vectors: Path = VECTORS) -> tuple[str, int]:
    """The suite's vinom_tests run with `args` on the `vectors` file: its output and
    exit code."""
    where = await build()
    return await _run(str(where / "vinom_tests"), args, {"VINOM_VECTORS": str(vectors)})


async def tictactoe_seat(case: TestCase) -> tuple[dict[str, object], list[str]]:
    """A `match_found` token for a seat of tictactoe on a fresh `twistd vinom` (the
    test is the lobby client: a room with the game's bot in the other seat), and
    the host's UDP address as the clients' HOST PORT arguments."""
    server = await start_twistd(case, {})
    lobby = await connect_lobby(reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust)
    case.addCleanup(lobby.close)
    await lobby.hello("Native")
    await lobby.create_room("tictactoe")
    await lobby.add_bot()
    found = await lobby.room_match()
    token = dict(found.token)
    host = token["hosts"][0]
    return token, [host["host"], str(host["port"])]


#: A native program started on a connect token and the host's address, with options:
#: its JSON lines, its stderr and its exit code.
NativeRun = Callable[..., Awaitable[tuple[list[dict[str, Any]], str, int]]]


async def refuse_a_tampered_token(
    case: TestCase, run: NativeRun, token: dict[str, object], address: list[str], program: str
) -> list[dict[str, Any]]:
    """`program` (started by `run`) given the seat's token with one bit of its sealed
    part flipped: no welcome, a failure in one line, exit 1. Its lines are returned."""
    sealed = bytearray(base64.b64decode(str(token["token"])))
    sealed[100] ^= 1
    tampered = {**token, "token": base64.b64encode(bytes(sealed)).decode()}
    lines, err, code = await run(tampered, address, "--attempt-timeout", "1")
    case.assertEqual(code, 1, f"{lines}\n{err}")
    case.assertEqual(lines[-1], {"event": "failed", "reason": "timeout"})
    case.assertIn(f"{program}: session failed: timeout: no welcome from "
                  f"{address[0]}:{address[1]} within 1 s", err)  # fmt: skip
    return lines


def check_a_result(
    case: TestCase, messages: list[dict[str, Any]], token: dict[str, object], said: str
) -> None:
    """The room's messages to a seat that played on: the match reached a result (the
    last phase), with the seat's mark on the final state's board."""
    phases = [m for m in messages if m["t"] == "phase"]
    case.assertEqual(phases[-1]["p"], "finished", said)
    case.assertIn("result", phases[-1], said)
    final = [m for m in messages if m["t"] == "state"][-1]
    mark = next(p["mark"] for p in final["s"]["players"] if p["id"] == token["player_id"])
    case.assertIn(mark, final["s"]["board"], said)
    case.assertEqual(final["p"], "finished", said)


class ProbeProcess(ProcessProtocol):
    """vinom_udp_probe as a child with its stdin open: the tokens it is given one per
    line (--reconnect), the JSON lines it printed so far, and its exit code."""

    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []
        self.err = b""
        self._partial = b""
        self.ended: Deferred[int] = Deferred()

    def give(self, token: dict[str, object]) -> None:
        assert self.transport is not None
        self.transport.write(json.dumps(token).encode() + b"\n")

    def outReceived(self, data: bytes) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend(json.loads(line) for line in complete if line)

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        code = 0 if reason.check(ProcessDone) else getattr(reason.value, "exitCode", None)
        self.ended.callback(-1 if code is None else code)

    def said(self) -> str:
        return f"{self.lines}\n{self.err.decode(errors='replace')}"


def spawn_fed(case: TestCase, program: Path, *args: str) -> ProbeProcess:
    """`program` started with `args` (its tokens given on stdin: `ProbeProcess.give`),
    killed at the test's cleanup if it has not ended by then."""
    child = ProbeProcess()
    process = reactor.spawnProcess(child, str(program), [str(program), *args],
                                   env={"PATH": PATH}, path=str(ROOT))  # fmt: skip

    def stop() -> Deferred[int]:
        if not child.ended.called:
            process.signalProcess("KILL")
        return child.ended

    case.addCleanup(stop)
    return child


class NativeClientTests(TestCase):
    # The first test builds: a minute of CPU, more on a busy machine.
    timeout = 900

    async def suite(self, vectors: Path = VECTORS) -> tuple[str, int]:
        return await googletest([], vectors)

    async def test_the_googletest_suite_passes_every_vector(self) -> None:
        report, code = await self.suite()
        self.assertEqual(code, 0, report)
        self.assertIn("[  PASSED  ]", report, report)
        self.assertNotIn("FAILED", report, report)
        # Each group the core implements was checked.
        for name in (
            "Session.SealedPacketsBothWays",
            "Session.ClientThroughCAbi",
            "Reliability.BodiesBothWays",
            "Messages.EveryVectorBothWays",
            "RouteTokens.EveryVectorBothWays",
            "Delta.EveryVectorBothWays",
            "Delta.SnapMessagesCarryTheirView",
            "Schema.EveryVector",
            "Schema.MalformedFramesAreRefused",
            "Schema.ReceiverAppliesSchemaSnapshotsAndCountsDrops",
            "SchemaCAbi.ASchemaFromTheWelcomeIsRead",
            "Malformed.EveryFlippedBitIsRefused",
            "ClientTest.HandshakeResendsAt10HzThenWelcome",
            "ClientTest.MessagesBothWaysWithAcks",
            "ClientTest.NoWelcomeWithinTheAttemptTimeoutFails",
            "ClientTest.TheMatchsEndIsOneEventAndLaterSendsAreNoOps",
            "ClientTest.SilenceAfterTheMatchsEndIsNoFailure",
            "ClientTest.AClosedHostPortIsOneEventAndNothingMoreIsSent",
            "MessageJson.BothWaysAndRefusals",
            "LobbyNeverBlocks.AHangingResolverAt60HzForTwoSeconds",
            "LobbyNeverBlocks.EveryAddressIsTriedInTurnUntilOneConnects",
            "Hooks.TheLogReceivesARefusedConnectionAndADroppedDatagram",
            "Hooks.TheAllocatorHookHoldsEveryHandle",
        ):
            self.assertIn(f"[       OK ] {name}", report, report)

    async def test_the_c_abi_test_compiles_as_c_and_passes(self) -> None:
        where = await build()
        report, code = await _run(str(where / "vinom_c_test"), [])
        self.assertEqual(code, 0, report)
        self.assertIn("c_abi: ok", report)

    async def test_a_vector_changed_in_the_file_fails_the_suite(self) -> None:
        """One byte of one vector flipped in a copy of the file: the test of that
        vector fails, so the suite reads the file rather than its own copy."""
        # A schema snapshot decoded against its baseline (named as the file names it).
        schema_delta = next(v["name"] for v in load()["schema"]["vectors"] if v["baseline"])
        cases = [
            ("session", "welcome", "hex", "Session.WelcomeBothWays"),
            ("session", "payload_client", "hex", "Session.SealedPacketsBothWays"),
            ("reliability", "first_body", "bodies", "Reliability.BodiesBothWays"),
            ("messages", "input", "hex", "Messages.EveryVectorBothWays"),
            ("route_tokens", "route_token_ipv6", "hex", "RouteTokens.EveryVectorBothWays"),
            ("delta", "delta_quantised", "hex", "Delta.EveryVectorBothWays"),
            ("delta", "full", "body", "Delta.EveryVectorBothWays"),
            ("schema", schema_delta, "hex", "Schema.EveryVector"),
        ]
        for group, name, key, failing in cases:
            data = load()
            vector = next(v for v in data[group]["vectors"] if v["name"] == name)
            text = vector[key] if isinstance(vector[key], str) else vector[key][0]
            middle = len(text) // 2 & ~1
            flipped = (
                text[:middle] + f"{int(text[middle : middle + 2], 16) ^ 1:02x}" + text[middle + 2 :]
            )
            if isinstance(vector[key], str):
                vector[key] = flipped
            else:
                vector[key][0] = flipped
            copy = Path(self.mktemp())
            copy.write_text(json.dumps(data), encoding="utf-8")
            report, code = await self.suite(copy)
            self.assertNotEqual(code, 0, f"{group}.{name}:\n{report}")
            self.assertIn(f"[  FAILED  ] {failing}", report, report)


class NativeClientFuzzing(TestCase):
    """The libFuzzer target (clients/cpp/fuzz/fuzz_client.cpp), in the suite's build
    (clang, ASan and UBSan), over everything the client reads from the network: it runs
    its kept corpus (the vectors' seeds, clients/cpp/fuzz/corpus) and a bounded
    number of mutations of it with no finding."""

    timeout = 900

    def test_the_kept_corpus_is_seeded_from_the_vectors(self) -> None:
        wanted = seeds()
        self.assertEqual(sorted(p.name for p in CORPUS.iterdir()), sorted(wanted))
        for name, content in wanted.items():
            self.assertEqual((CORPUS / name).read_bytes(), content, name)

    async def test_the_fuzz_target_runs_the_corpus_and_mutations_with_no_finding(self) -> None:
        where = await build()
        found = Path(self.mktemp()).resolve()  # new inputs go here: the kept corpus stays as it is
        found.mkdir()
        report, code = await _run(
            str(where / "vinom_fuzz"),
            [f"-runs={FUZZ_RUNS}", "-max_total_time=300", "-max_len=4096", "-seed=1",
             "-timeout=10", "-rss_limit_mb=1024", f"-artifact_prefix={found}/",
             str(found), str(CORPUS)],
        )  # fmt: skip
        self.assertEqual(code, 0, report)
        self.assertIn(f"INFO: seed corpus: files: {len(list(CORPUS.iterdir()))} ", report, report)
        self.assertIn(f"Done {FUZZ_RUNS} runs", report, report)
        self.assertNotIn("ERROR:", report, report)
        self.assertEqual(list(found.glob("crash-*")) + list(found.glob("leak-*")), [], report)


class NativeClientAgainstTwistd(TestCase):
    """The example client of the native core against a real `twistd vinom`: the test
    is the lobby client (a room of tictactoe with the game's bot in the other seat)
    and hands the seat's connect token to vinom_udp_probe, a separate process on a
    real UDP socket."""

    timeout = 900

    async def seat(self) -> tuple[dict[str, object], list[str]]:
        """A `match_found` token for a seat of tictactoe on a fresh twistd, and the
        host address the probe is given. The build comes first: a token expires."""
        await build()
        return await tictactoe_seat(self)

    async def probe(
        self, token: dict[str, object], address: list[str], *options: str
    ) -> tuple[list[dict[str, object]], str, int]:
        where = await build()
        path = Path(self.mktemp()).resolve()
        path.write_text(json.dumps(token), encoding="utf-8")
        return await json_lines(where / "vinom_udp_probe", [str(path), *address, *options])

    async def test_the_probe_plays_a_seat_of_tictactoe_to_a_result(self) -> None:
        token, address = await self.seat()
        lines, err, code = await self.probe(token, address, "--play-tictactoe", "--seconds", "60")
        said = f"{lines}\n{err}"
        self.assertEqual(code, 0, said)
        self.assertEqual(lines[0]["event"], "welcome", said)
        self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"}, said)
        messages = [line["message"] for line in lines if line["event"] == "message"]
        # The room's first message is its welcome on the reliable channel, for this seat.
        first = next(line for line in lines if line["event"] == "message")
        self.assertEqual(first["channel"], 1, said)
        welcome = messages[0]
        self.assertEqual((welcome["t"], welcome["game"]), ("welcome", "tictactoe"), said)
        self.assertEqual([p["name"] for p in welcome["players"]], ["Native", "Bot"], said)
        # Then the room's phase (the room is full: playing) and its first state.
        self.assertEqual([m["t"] for m in messages[1:3]], ["phase", "state"], said)
        self.assertEqual(messages[2]["p"], "playing", said)
        # It played over the reliable channel and the match reached a result.
        sent = [line for line in lines if line["event"] == "sent"]
        self.assertTrue(sent, said)
        self.assertIn({"cell": 0}, [line["message"]["a"] for line in sent], said)
        check_a_result(self, messages, token, said)

    async def test_a_tampered_token_is_refused_and_the_host_keeps_serving(self) -> None:
        token, address = await self.seat()
        lines = await refuse_a_tampered_token(self, self.probe, token, address, "vinom_udp_probe")
        self.assertEqual(lines, [{"event": "failed", "reason": "timeout"}])
        # The host still serves the seat: the real token is welcomed.
        lines, err, code = await self.probe(token, address, "--seconds", "0.5")
        self.assertEqual(code, 0, f"{lines}\n{err}")
        self.assertEqual(lines[0]["event"], "welcome", err)
        self.assertEqual(lines[1]["message"]["t"], "welcome", err)
        self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"})

    async def test_the_frame_loop_example_in_c_reads_the_rooms_first_messages(self) -> None:
        """examples/frame_loop.c, the call pattern of a Godot GDExtension's node in
        C (create; receive, update, send and poll each frame; destroy), against the
        real host: welcomed, then the room's welcome, phase and state as JSON."""
        token, address = await self.seat()
        where = await build()
        path = Path(self.mktemp()).resolve()
        path.write_text(json.dumps(token), encoding="utf-8")
        out, err, code = await utils.getProcessOutputAndValue(
            str(where / "vinom_frame_loop"), [str(path), *address, "3"], env={"PATH": PATH}
        )
        lines = out.decode().splitlines()
        said = f"{lines}\n{err.decode(errors='replace')}"
        self.assertEqual(code, 0, said)
        self.assertEqual(len(lines), 4, said)
        self.assertRegex(lines[0], r"^welcome [0-9]+$", said)
        fields = [line.split(" ", 2) for line in lines[1:]]
        self.assertEqual([f[0] for f in fields], ["message"] * 3, said)
        self.assertEqual(fields[0][1], "1", said)  # the room's welcome: reliable
        messages = [json.loads(f[2]) for f in fields]
        self.assertEqual([m["t"] for m in messages], ["welcome", "phase", "state"], said)
        self.assertEqual(messages[0]["game"], "tictactoe", said)
        self.assertEqual(messages[1]["p"], "playing", said)

    async def test_the_frame_loop_example_reports_a_refused_token(self) -> None:
        """The host does not answer a tampered token: after the attempt timeout (the
        token's 5 s + 1) the client's failed event, and exit 1."""
        token, address = await self.seat()
        where = await build()
        sealed = bytearray(base64.b64decode(str(token["token"])))
        sealed[100] ^= 1
        path = Path(self.mktemp()).resolve()
        tampered = {**token, "token": base64.b64encode(bytes(sealed)).decode()}
        path.write_text(json.dumps(tampered), encoding="utf-8")
        out, err, code = await utils.getProcessOutputAndValue(
            str(where / "vinom_frame_loop"), [str(path), *address], env={"PATH": PATH}
        )
        self.assertEqual((out.decode(), code), ("failed timeout\n", 1), err)

    async def test_the_probe_reconnects_after_a_dropped_session_and_finishes(self) -> None:
        """As the Python client does (tests/test_e2e.py's Reconnection): the network
        goes mid-match, the session times out on both sides, the lobby's `reconnect`
        gives the seat a fresh token (the test is the lobby client here), and a new
        session resumes the match to its result."""
        where = await build()
        server = await start_twistd(self, {}, "--session-timeout", "1")
        lobby = await connect_lobby(
            reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust
        )
        self.addCleanup(lobby.close)
        welcome = await lobby.hello("Native")
        await lobby.create_room("tictactoe")
        await lobby.add_bot()
        found = await lobby.room_match()
        host = found.token["hosts"][0]

        probe = spawn_fed(self, where / "vinom_udp_probe", "-", host["host"], str(host["port"]),
                          "--play-tictactoe", "--seconds", "60", "--reconnect",
                          "--drop-after-moves", "1")  # fmt: skip
        probe.give(dict(found.token))
        await until(lambda: {"event": "lost", "reason": "timeout"} in probe.lines,
                    probe.said, timeout=60)  # fmt: skip

        again = await connect_lobby(
            reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust
        )
        self.addCleanup(again.close)
        refound = await again.reconnect(welcome.player_id, welcome.secret)
        self.assertEqual(refound.game_id, found.game_id)
        self.assertNotEqual(refound.token["token"], found.token["token"])
        probe.give(dict(refound.token))
        code = await probe.ended
        said = probe.said()
        self.assertEqual(code, 0, said)
        events = [line["event"] for line in probe.lines]
        # One move, the drop, the loss, then a second session to the end.
        self.assertEqual(events.count("welcome"), 2, said)
        first, second = (line for line in probe.lines if line["event"] == "welcome")
        self.assertNotEqual(first["session_id"], second["session_id"], said)
        self.assertLess(events.index("sent"), events.index("dropped"), said)
        self.assertLess(events.index("dropped"), events.index("lost"), said)
        self.assertLess(events.index("lost"), events.index("welcome", events.index("lost")), said)
        self.assertEqual(probe.lines[-1], {"event": "disconnected", "reason": "closed"}, said)
        after = probe.lines[events.index("lost") :]
        messages = [line["message"] for line in after if line["event"] == "message"]
        rooms = [m for m in messages if m.get("t") == "welcome"]
        self.assertEqual([m["reconnected"] for m in rooms], [True], said)
        # It played on in the new session, and the match reached a result.
        self.assertIn("sent", [line["event"] for line in after], said)
        phases = [m for m in messages if m["t"] == "phase"]
        self.assertEqual(phases[-1]["p"], "finished", said)
        self.assertIn("result", phases[-1], said)


class NativeLobbyFrames(TestCase):
    """The lobby client's GoogleTest cases in the sanitized build: frames split
    anywhere, malformed, oversized and deeply nested frames as error events, the
    frames it sends, and its failures against local sockets (not TLS, hanging up,
    refused, silent)."""

    timeout = 900

    async def test_the_lobby_cases_pass_under_the_sanitizers(self) -> None:
        report, code = await googletest(["--gtest_filter=Lobby*"])
        self.assertEqual(code, 0, report)
        for name in (
            "LobbyFrames.SplitAnywhereBlankLinesAndCrlf",
            "LobbyFrames.MalformedFramesAreErrorEventsAndTheNextIsRead",
            "LobbyFrames.AnOversizedFrameIsOneErrorAndItsBytesAreNotKept",
            "LobbyFrames.DeepNestingIsAnEventNotACrash",
            "LobbyFrames.EachFramesEvent",
            "LobbyFrames.TheFramesTheClientSends",
            "LobbyConnection.AnUnreadableTrustFileFailsBeforeAnyConnect",
            "LobbyConnection.APeerThatIsNotTlsOrHangsUpFailsTheHandshake",
            "LobbyConnection.ARefusedPortAndATimeoutThroughTheCAbi",
        ):
            self.assertIn(f"[       OK ] {name}", report, report)


#: The built-in arena of two players with a view larger than one datagram: 600
#: numbers that change each tick (about 1.8 KB a snap), so every snapshot travels
#: in fragments (§13.4). Its view is not the arena's schema: it declares none, and
#: its snaps stay §16.1's.
WIDE_ARENA_PLUGIN = """from vinom.games.arena import ArenaGame


class WideArena(ArenaGame):
    name = "widearena"

    def __init__(self, players):
        super().__init__(players)
        self.view_schema = None

    def view(self, state, player_id):
        view = dict(super().view(state, player_id))
        view["wide"] = [(state.ticks * 7919 + i * 104729) % 65521 for i in range(600)]
        return view


arena = WideArena(2)
"""


class NativeArenaUnderLoss(TestCase):
    """Two vinom_udp_probe --play-arena players queue for the arena on a real `twistd
    vinom` with snapshot checksums on and play it for 6 s through a network losing
    10% of the datagrams each way: every snapshot is the host's (0 checksum
    mismatches, none corrupt), schema snapshots (§16.8) once the players asked for
    them, and no input is lost: the host applied every input given but those still
    unacknowledged when the player closed, and dropped none as too late or too
    early."""

    timeout = 900

    async def test_two_native_players_lose_no_input_and_no_snapshot_at_10_percent_loss(
        self,
    ) -> None:
        await self.play()

    async def test_snapshots_larger_than_a_datagram_are_reassembled_from_their_fragments(
        self,
    ) -> None:
        # Every snap is cut in two fragments: without reassembly none is applied. The
        # inputs are the other test's: a host building these views works harder each
        # tick, and on a loaded machine (CI run 28) 1 input of about 230 came too late.
        await self.play(WIDE_ARENA_PLUGIN, inputs=False, schema=False)

    async def play(
        self, plugin: str | None = None, inputs: bool = True, schema: bool = True
    ) -> None:
        where = await build()
        server, ops = await start_arena_server(self, plugin)
        game = "arena" if plugin is None else "widearena"
        runs = await gatherResults([
            ensureDeferred(json_lines(where / "vinom_udp_probe", [
                "--lobby", "127.0.0.1", str(server.lobby.port), "--trust", server.lobby.trust,
                "--name", name, "--queue", game, "--play-arena", "--loss", "0.1",
                "--seed", str(seed), "--seconds", "6"]))
            for seed, name in enumerate(["Ann", "Bob"])
        ])  # fmt: skip
        reports = []
        for lines, err, code in runs:
            said = f"{lines[-3:]}\n{err}"
            self.assertEqual(code, 0, said)
            self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"}, said)
            reports.append(lines[-2])
            # Slim payloads (docs/protocol.md §5.10, short ones with a slim body)
            # both ways once the host had an offer: long ones only before (an
            # offer a second, each lost at 10%), never short ones.
            packets = lines[-3]
            self.assertEqual(packets["event"], "packets", said)
            self.assertIn(packets["offers"], range(1, 5), packets)
            for side in ("sent", "received"):
                short, every = packets[f"short_{side}"], packets[f"payloads_{side}"]
                self.assertEqual(packets[f"slim_{side}"], short, packets)
                self.assertGreater(short, 40, packets)
                self.assertLess(every - short, 90, packets)
        await check_arena_play(self, reports, ops if inputs else None, schema)


async def start_arena_server(case: TestCase, plugin: str | None = None) -> tuple[Any, int]:
    """A real `twistd vinom` serving the built-in arena of two (or the `widearena` of
    `plugin`, a plugin file's text) with snapshot checksums on, and its operations port."""
    ops = free_tcp_port()
    files = {} if plugin is None else {"twisted/plugins/arena_games.py": plugin}
    server = await start_twistd(
        case, files, "--games", "arena" if plugin is None else "widearena",
        "--snapshot-checksums", "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
    )  # fmt: skip
    return server, ops


async def check_arena_play(
    case: TestCase, reports: list[dict[str, Any]], ops: int | None, schema: bool = True
) -> None:
    """The `arena` lines of players who played the arena for 6 s through 10% loss
    each way, and the host's count of inputs (its operations port `ops`; None: not
    checked): every snapshot was the host's and they kept coming, schema snapshots
    (§16.8) from the first the players' inputs asked for when the game declares a
    view schema (`schema`), none otherwise; no input was lost."""
    for report in reports:
        case.assertEqual(report["event"], "arena", report)
        # The network lost datagrams both ways...
        case.assertGreater(report["dropped_out"], 3, report)
        case.assertGreater(report["dropped_in"], 3, report)
        # ...yet every snapshot applied was the host's view (its checksum), and they
        # kept coming: 20 a second for 6 s, less what was lost.
        case.assertEqual((report["drops"]["checksum"], report["drops"]["corrupt"]), (0, 0),
                         report)  # fmt: skip
        case.assertGreater(report["snapshots"], 60, report)
        case.assertEqual(report["overflowed"], 0, report)
        # Asked for from the first input on (a tick after the first snapshot), they are
        # all but the first few: half is a margin for the inputs lost on the way.
        if schema:
            case.assertGreater(report["schema"], report["snapshots"] // 2, report)
        else:
            case.assertEqual(report["schema"], 0, report)
    if ops is None:
        return
    # The host's count of inputs by outcome, as a Prometheus scraper reads it (once
    # the last ticks have run).
    given = sum(r["inputs"] for r in reports)
    in_flight = sum(r["unacknowledged"] for r in reports)

    async def counted() -> dict[str, float] | None:
        inputs = samples(await fetch_metrics(ops), "vinom_inputs_total", "outcome")
        return inputs if inputs.get("applied", 0) >= given - in_flight else None

    inputs: Any = await until(counted, "the host to apply the inputs given", every=0.2)
    # Every input the players gave was applied once, but those the players still
    # repeated when they closed (in flight, or lost with their last datagrams).
    case.assertGreater(given, 120, reports)
    case.assertLessEqual(given - in_flight, inputs.get("applied", 0), (inputs, reports))
    case.assertLessEqual(inputs.get("applied", 0), given, (inputs, reports))
    for dropped in ("too_late", "early", "rejected"):
        case.assertEqual(inputs.get(dropped, 0), 0, inputs)


class NativeLobbyAgainstTwistd(TestCase):
    """The native core's lobby client (clients/cpp/src/lobby.cpp) against a real
    `twistd vinom`: vinom_udp_probe --lobby says hello over TLS, verified against
    the server's certificate, makes a room of tictactoe, adds the game's bot, and
    plays the seat of the room's match_found to a result, no Python lobby client
    involved; with --reconnect a dropped session gets its fresh token from the
    lobby's `reconnect`. A certificate the lobby does not have is refused with one
    clear line, and the server goes on serving."""

    timeout = 900

    async def from_lobby(
        self, port: int, trust: str, *options: str
    ) -> tuple[list[dict[str, object]], str, int]:
        where = await build()
        return await json_lines(
            where / "vinom_udp_probe", ["--lobby", "127.0.0.1", str(port), "--trust", trust,
                                        *options]
        )  # fmt: skip

    async def play_with_a_bot(
        self, *options: str
    ) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
        """The probe makes a tictactoe room with a bot on a real `twistd vinom` and plays
        its seat (`options` besides) until the match ends: its lines, what to say if a
        check fails, and the room's messages."""
        await build()
        server = await start_twistd(self, {})
        lines, err, code = await self.from_lobby(
            server.lobby.port, server.lobby.trust, "--create-room", "tictactoe", "--add-bot",
            "--play-tictactoe", "--seconds", "60", *options,
        )  # fmt: skip
        said = f"{lines}\n{err}"
        self.assertEqual(code, 0, said)
        return lines, said, [line["message"] for line in lines if line["event"] == "message"]

    async def test_the_probe_plays_from_the_lobby_to_a_result(self) -> None:
        lines, said, messages = await self.play_with_a_bot("--name", "Native")
        events = [line["event"] for line in lines]
        self.assertEqual(events[:4], ["lobby_welcome", "room", "room", "match_found"], said)
        player_id = lines[0]["player_id"]
        self.assertEqual([p["name"] for p in lines[2]["room"]["players"]], ["Native", "Bot"], said)
        self.assertEqual(events[4], "welcome", said)
        self.assertEqual((messages[0]["t"], messages[0]["game"]), ("welcome", "tictactoe"), said)
        self.assertEqual([p["name"] for p in messages[0]["players"]], ["Native", "Bot"], said)
        check_a_result(self, messages, {"player_id": player_id}, said)
        self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"}, said)

    async def test_actions_larger_than_a_datagram_go_in_fragments(self) -> None:
        # Each action carries 1,500 characters of padding (tictactoe reads only its
        # cell): every one is cut in two fragments, and the match still ends.
        lines, said, messages = await self.play_with_a_bot("--pad", "1500")
        sent = [line["message"] for line in lines if line["event"] == "sent"]
        self.assertGreaterEqual(len(sent), 3, said)
        self.assertTrue(all(len(m["a"]["pad"]) == 1500 for m in sent), said)
        check_a_result(self, messages, {"player_id": lines[0]["player_id"]}, said)

    async def test_a_wrong_trust_certificate_is_refused_with_one_line(self) -> None:
        await build()
        server = await start_twistd(self, {})
        other = Path(self.mktemp()).resolve()
        other.write_bytes(make_self_signed("localhost")[0])  # also localhost's, not the lobby's
        lines, err, code = await self.from_lobby(
            server.lobby.port, str(other), "--create-room", "tictactoe", "--add-bot"
        )
        self.assertEqual(code, 1, f"{lines}\n{err}")
        self.assertEqual(lines, [{"event": "failed", "reason": "lobby"}])
        self.assertEqual(
            err.splitlines(),
            ["vinom_udp_probe: lobby failed: tls: certificate verify failed: "
             "self-signed certificate"],
        )  # fmt: skip
        # The lobby goes on: with the right certificate, a welcome and a room.
        lines, err, code = await self.from_lobby(
            server.lobby.port, server.lobby.trust, "--create-room", "tictactoe", "--add-bot",
            "--seconds", "0.5",
        )  # fmt: skip
        self.assertEqual([line["event"] for line in lines[:2]], ["lobby_welcome", "room"], err)
        self.assertNotIn("lobby failed", err)

    async def test_a_lobby_silent_past_the_idle_timeout_fails_the_connection(self) -> None:
        # A room made and nobody joining: the lobby says nothing (it closes a silent
        # connection only after its own 60 s), so the client's 1 s idle timeout ends it.
        await build()
        server = await start_twistd(self, {})
        started = time.monotonic()
        lines, err, code = await self.from_lobby(
            server.lobby.port, server.lobby.trust, "--create-room", "tictactoe",
            "--idle-timeout", "1", "--seconds", "30",
        )  # fmt: skip
        said = f"{lines}\n{err}"
        self.assertEqual(code, 1, said)
        self.assertEqual([line["event"] for line in lines], ["lobby_welcome", "room", "failed"])
        self.assertIn(
            "vinom_udp_probe: lobby failed: idle: no byte from the lobby for 1 s", err.splitlines()
        )
        self.assertLess(time.monotonic() - started, 20, said)

    async def test_the_probe_reconnects_through_the_lobby_and_finishes(self) -> None:
        await build()
        server = await start_twistd(self, {}, "--session-timeout", "1")
        lines, err, code = await self.from_lobby(
            server.lobby.port, server.lobby.trust, "--create-room", "tictactoe", "--add-bot",
            "--play-tictactoe", "--seconds", "60", "--reconnect", "--drop-after-moves", "1",
        )  # fmt: skip
        said = f"{lines}\n{err}"
        self.assertEqual(code, 0, said)
        events = [line["event"] for line in lines]
        # The room's seat, one move, the drop, the loss, the lobby's reconnect.
        self.assertEqual(events.count("match_found"), 2, said)
        self.assertEqual(events.count("lobby_welcome"), 1, said)
        found = [line for line in lines if line["event"] == "match_found"]
        self.assertEqual(found[0]["game_id"], found[1]["game_id"], said)
        lost = events.index("lost")
        self.assertLess(events.index("dropped"), lost, said)
        self.assertEqual(events[lost + 1], "match_found", said)
        messages = [line["message"] for line in lines[lost:] if line["event"] == "message"]
        self.assertEqual([m["reconnected"] for m in messages if m["t"] == "welcome"], [True])
        phases = [m for m in messages if m["t"] == "phase"]
        self.assertEqual(phases[-1]["p"], "finished", said)
        self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"}, said)


class NativeLoadClient(TestCase):
    """vinom_load (examples/vinom_load.cpp), the load client of `python -m benchmarks
    match --client native`, against a real `twistd vinom`: the test is twenty lobby
    clients queued for tictactoe, and hands their tokens, as the lobby gives them out,
    to one vinom_load process on its stdin; it plays all twenty sessions (ten
    matches, each seat against another of its own) from one thread, each to the
    match's result, and reports each session and its own CPU time."""

    timeout = 900

    async def test_twenty_sessions_from_one_process_play_their_matches_to_a_result(self) -> None:
        where = await build()
        ports = free_udp_range(10)  # a port per match
        server = await start_twistd(self, {}, "--udp-ports", f"{ports}-{ports + 9}")
        load = spawn_fed(self, where / "vinom_load", "-", "--play", "tictactoe",
                         "--session-seconds", "120")  # fmt: skip

        async def player(i: int) -> str:
            lobby = await connect_lobby(
                reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust
            )
            self.addCleanup(lobby.close)
            await lobby.hello(f"Load{i}")
            found = await lobby.queue("tictactoe")
            load.give(dict(found.token))
            return str(found.token["player_id"])

        players = await gatherResults([ensureDeferred(player(i)) for i in range(20)])
        assert load.transport is not None
        load.transport.closeStdin()  # no more tokens: it ends once the sessions have
        code = await load.ended
        said = load.said()
        self.assertEqual(code, 0, said)
        sessions = [line for line in load.lines if line["event"] == "session"]
        self.assertEqual(sorted(str(s["player_id"]) for s in sessions), sorted(players), said)
        self.assertEqual({s["result"] for s in sessions}, {"ok"}, said)
        # Every match's two seats were played by this one process, and both moved.
        matches = [str(s["match_id"]) for s in sessions]
        self.assertEqual({matches.count(m) for m in matches}, {2}, said)
        self.assertTrue(all(int(str(s["moves"])) >= 2 for s in sessions), said)
        self.assertTrue(all(0 < float(str(s["welcome_ms"])) < float(str(s["ms"]))
                            for s in sessions), said)  # fmt: skip
        summary = load.lines[-1]
        self.assertEqual(summary["event"], "summary", said)
        self.assertEqual((summary["sessions"], summary["ok"], summary["failed"]), (20, 20, 0))
        self.assertGreater(float(str(summary["cpu_us_per_session"])), 0, said)
        self.assertGreaterEqual(int(str(summary["most_open"])), 2, said)
