"""The C# binding of the native core (clients/csharp/Vinom.cs, by P/Invoke over
libvinom.so) under Mono, the Unity path: libvinom.so is built with CMake without
sanitizers (the library a game loads) and shown to export the C ABI of vinom.h
and nothing else; the bot (clients/csharp/TictactoeBot.cs) is compiled with
Debian's `mcs`, then, a real `mono` process on a real UDP socket, plays its seat
of tictactoe against a real `twistd vinom` child process to a result, and gets
a clear refusal line and exit 1 for a tampered token; with `--lobby` it gets its
seat itself through the binding's `Lobby` (TLS verified against the server's
certificate), no Python lobby client involved; ArenaBot plays the arena through
10% loss with the binding's real-time calls. Mono is Debian's
`mono-mcs` and `mono-runtime` (scripts/test installs them); missing, the tests
fail with the command that installs them, never skip."""

# slow: builds libvinom.so with CMake and the C# bot with mcs, starts twistd vinom

from __future__ import annotations

import atexit
import base64
import json
import re
import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor, utils
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.ports import free_tcp_port
from tests.support.servers import start_twistd
from tests.support.vectors import load
from tests.test_native import (
    PATH,
    RELEASE,
    ROOT,
    SOURCE,
    _run,
    build,
    check_a_result,
    check_arena_play,
    json_lines,
    refuse_a_tampered_token,
    start_arena_server,
    tictactoe_seat,
)
from tests.test_native_install import project_version
from vinom.client.failover import LobbyPlayer
from vinom.server.certs import make_self_signed

CSHARP = ROOT / "clients" / "csharp"
MONO_PACKAGES = "mono-mcs mono-runtime"

_bot: dict[str, Path | str] = {}


async def library() -> Path:
    """The directory of the release build's libvinom.so."""
    return await build(RELEASE)


async def bot(program: str = "TictactoeBot") -> Path:
    """`program`.exe (clients/csharp/`program`.cs with the binding), compiled with mcs
    on the first call of the run (a failure is kept and repeated)."""
    cached = _bot.get(program)
    if isinstance(cached, Path):
        return cached
    if cached is not None:
        raise AssertionError(cached)
    mcs = shutil.which("mcs", path=PATH)
    if mcs is None or shutil.which("mono", path=PATH) is None:
        _bot[program] = ("this test needs Mono's mcs and mono: run scripts/test, or `apt-get "
                         f"install -y --no-install-recommends {MONO_PACKAGES}`")  # fmt: skip
        raise AssertionError(_bot[program])
    where = Path(tempfile.mkdtemp(prefix="vinom-csharp-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    exe = where / f"{program}.exe"
    sources = [str(CSHARP / "Vinom.cs"), str(CSHARP / f"{program}.cs")]
    report, code = await _run(mcs, ["-nologo", "-warnaserror+", f"-out:{exe}", *sources])
    if code != 0:
        _bot[program] = f"mcs failed:\n{report}"
        raise AssertionError(_bot[program])
    _bot[program] = exe
    return exe


def declared() -> set[str]:
    """The functions include/vinom.h declares."""
    header = (SOURCE / "include" / "vinom.h").read_text("utf-8")
    return set(re.findall(r"VINOM_API[^;(]*?\b(vinom_\w+)\s*\(", header))


class SharedLibrary(TestCase):
    timeout = 900

    async def test_it_exports_the_c_abi_and_nothing_else(self) -> None:
        where = await library()
        so = where / "libvinom.so"
        report, code = await _run("/usr/bin/nm", ["-D", "--defined-only", str(so)])
        self.assertEqual(code, 0, report)
        exported = {line.split()[-1] for line in report.splitlines() if line.strip()}
        self.assertIn("vinom_client_new", declared())
        self.assertEqual(exported, declared())
        # Nothing left for the loader to find elsewhere but its libraries'.
        report, code = await _run("/usr/bin/ldd", ["-r", str(so)])
        self.assertEqual(code, 0, report)
        self.assertNotIn("undefined symbol", report)


#: A C# program on the binding: the log callback's lines of a lobby refused.
LOG_PROGRAM = """using System; using System.Collections.Generic; using Vinom;
static class P {
    static int Main(string[] args) {
        var lines = new List<string>();
        Library.SetLog((level, line) => lines.Add(level + " " + line), LogLevel.Info);
        using (var lobby = new Lobby("127.0.0.1", int.Parse(args[0]), null, null, 0.0, 5.0)) {
            lobby.IdleTimeout = 30;
            for (int i = 0; i < 2000 && lobby.State != LobbyState.Failed; ++i) {
                lobby.Update(i * 0.001);
                System.Threading.Thread.Sleep(1);
            }
        }
        Library.SetLog(null, LogLevel.Off);
        foreach (var line in lines) Console.WriteLine(line);
        return 0;
    }
}
"""

#: Loads the binding compiled for iOS and prints each P/Invoke's library.
IOS_PROGRAM = """using System; using System.Reflection; using System.Runtime.InteropServices;
static class P {
    static int Main(string[] args) {
        var native = Assembly.LoadFrom(args[0]).GetType("Vinom.Native");
        foreach (var m in native.GetMethods(BindingFlags.NonPublic | BindingFlags.Static)) {
            var d = (DllImportAttribute)Attribute.GetCustomAttribute(m, typeof(DllImportAttribute));
            if (d != null) Console.WriteLine(m.Name + " " + d.Value);
        }
        return 0;
    }
}
"""

#: A game's frame loop on the binding against a UDP port that is closed: the
#: client's socket is connected to a port bound then closed, so its request is
#: answered by the kernel's "port unreachable". Prints each event, what a send
#: after it returned, and any exception (there must be none).
CLOSED_PORT_PROGRAM = """using System; using System.IO; using System.Net; using System.Net.Sockets;
using Vinom;
static class P {
    static int Main(string[] args) {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Func<double> now = () => watch.Elapsed.TotalSeconds;
        try {
            var host = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            host.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var where = (IPEndPoint)host.LocalEndPoint;
            using (var token = ConnectToken.Parse(File.ReadAllText(args[0])))
            using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram,
                                           ProtocolType.Udp))
            using (var client = new Client(token, now(), 5.0)) {
                socket.Connect(where);
                socket.Blocking = false;
                host.Close();  // the host's port closes
                for (int frame = 0; frame < 100; ++frame) {
                    client.ReceiveFrom(socket, now());
                    client.Update(now());
                    client.SendTo(socket);
                    ClientEvent e;
                    while (client.TryPoll(out e))
                        Console.WriteLine("event " + e.Kind + " " + e.Reason);
                    System.Threading.Thread.Sleep(10);
                }
                var action = Messages.FromJson("{\\"t\\": \\"action\\"}");
                Console.WriteLine("send " + client.Send(action));
                Console.WriteLine("unreliable " + client.SendUnreliable(new byte[] { 0x80 }));
                client.Close();
                client.SendTo(socket);
                Console.WriteLine("state " + client.State + " ended " + client.Ended);
            }
        } catch (Exception e) {
            Console.WriteLine("exception " + e.GetType().Name + ": " + e.Message);
            return 1;
        }
        return 0;
    }
}
"""

#: Unity's callback attribute, as a stub (Unity defines it; the binding only outside Unity).
AOT_STUB = """namespace AOT {
    [System.AttributeUsage(System.AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : System.Attribute {
        public MonoPInvokeCallbackAttribute(System.Type type) { }
    }
}
"""


class BindingForEngines(TestCase):
    """What an engine needs of Vinom.cs: the library's log lines handed to a C#
    callback (a lobby refused, driven as a game would, over the release
    libvinom.so under `mono`), and, compiled with Unity's iOS defines, every
    P/Invoke bound to "__Internal" (iOS links the library into the app)."""

    timeout = 900

    async def compile(self, out: Path, *sources: str, options: tuple[str, ...] = ()) -> None:
        mcs = shutil.which("mcs", path=PATH)
        self.assertIsNotNone(mcs, f"apt-get install -y {MONO_PACKAGES}")
        report, code = await _run(str(mcs), ["-nologo", "-warnaserror+", *options,
                                             f"-out:{out}", *sources])  # fmt: skip
        self.assertEqual(code, 0, report)

    async def test_the_log_callback_receives_a_refused_connection(self) -> None:
        where = await library()
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        (work / "Log.cs").write_text(LOG_PROGRAM, encoding="utf-8")
        exe = work / "Log.exe"
        await self.compile(exe, str(CSHARP / "Vinom.cs"), str(work / "Log.cs"))
        port = free_tcp_port()  # nobody listens
        report, code = await _run(
            "/usr/bin/mono", [str(exe), str(port)], {"LD_LIBRARY_PATH": str(where)}
        )
        self.assertEqual(code, 0, report)
        self.assertIn("Warning lobby: failed: connect: Connection refused", report.splitlines())
        self.assertIn(f"Info lobby: connect 127.0.0.1 port {port}: Connection refused",
                      report.splitlines())  # fmt: skip

    async def test_a_closed_host_port_is_one_ended_event_and_no_exception(self) -> None:
        """Issue 76, 5: a real client's socket against a real closed UDP port."""
        where = await library()
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        (work / "Closed.cs").write_text(CLOSED_PORT_PROGRAM, encoding="utf-8")
        (work / "token.json").write_text(json.dumps(load()["session"]["token"]), "utf-8")
        exe = work / "Closed.exe"
        await self.compile(exe, str(CSHARP / "Vinom.cs"), str(work / "Closed.cs"))
        report, code = await _run(
            "/usr/bin/mono", [str(exe), str(work / "token.json")], {"LD_LIBRARY_PATH": str(where)}
        )
        self.assertEqual(code, 0, report)
        lines = report.splitlines()
        self.assertEqual([line for line in lines if line.startswith("event")],
                         ["event Ended host_closed"], report)  # fmt: skip
        self.assertIn("send False", lines)
        self.assertIn("unreliable False", lines)
        self.assertIn("state Closed ended host_closed", lines)
        self.assertNotIn("exception", report)

    async def test_compiled_for_ios_every_call_binds_to_internal(self) -> None:
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        (work / "Aot.cs").write_text(AOT_STUB, encoding="utf-8")
        (work / "Ios.cs").write_text(IOS_PROGRAM, encoding="utf-8")
        dll = work / "Vinom.dll"
        ios = ("-target:library", "-define:UNITY_5_3_OR_NEWER;UNITY_IOS")
        await self.compile(dll, str(CSHARP / "Vinom.cs"), str(work / "Aot.cs"), options=ios)
        await self.compile(work / "Ios.exe", str(work / "Ios.cs"))
        report, code = await _run("/usr/bin/mono", [str(work / "Ios.exe"), str(dll)])
        self.assertEqual(code, 0, report)
        bound = dict(line.split() for line in report.splitlines())
        self.assertIn("vinom_set_log", bound)
        self.assertEqual(set(bound.values()), {"__Internal"}, report)
        # Outside iOS, the same source binds "vinom".
        await self.compile(dll, str(CSHARP / "Vinom.cs"), options=("-target:library",))
        report, code = await _run("/usr/bin/mono", [str(work / "Ios.exe"), str(dll)])
        self.assertEqual({line.split()[1] for line in report.splitlines()}, {"vinom"}, report)


#: The frame path of a game on the binding, 1,000 frames at 60 Hz: the client's
#: update, datagrams and polls, a snap received and its view read, into buffers
#: made once. Prints the bytes the thread allocated over them (after 10 frames
#: for the JIT), then over 100 frames of the allocating calls, which shows that
#: the counter counts.
ALLOCATION_PROGRAM = """using System; using System.IO; using Vinom;
static class P {
    static int Main(string[] args) {
        byte[] snap = Convert.FromBase64String(args[1]);
        var buffer = new byte[16384];
        var datagram = new byte[Client.MaxDatagram];
        using (var token = ConnectToken.Parse(File.ReadAllText(args[0])))
        using (var client = new Client(token, 0.0, 1000.0))
        using (var snapshots = new Snapshots(null)) {
            double now = 0;
            long datagrams = 0, viewed = 0;
            Action<int> frames = count => {
                for (int i = 0; i < count; ++i) {
                    now += 1.0 / 60;
                    client.Update(now);
                    while (client.TakeDatagram(datagram) > 0) ++datagrams;
                    int channel, length;
                    while (client.Poll(buffer, out channel, out length) != EventKind.None) { }
                    ClientEvent e;
                    while (client.TryPoll(out e)) { }
                    ulong tick; long ack;
                    snapshots.Receive(snap, snap.Length, out tick, out ack);
                    viewed += snapshots.View(3, buffer);
                    if (snapshots.Newest != 3) throw new Exception("no snapshot applied");
                }
            };
            frames(10);
            long before = GC.GetAllocatedBytesForCurrentThread();
            frames(1000);
            long after = GC.GetAllocatedBytesForCurrentThread();
            Console.WriteLine("frames " + (after - before) + " " + datagrams + " " + viewed);
            before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; ++i) {
                now += 1.0 / 60;
                client.Update(now);
                byte[] outgoing;
                while (client.TryTakeDatagram(out outgoing)) { }
                if (snapshots.View(3) == null) throw new Exception("no view");
            }
            after = GC.GetAllocatedBytesForCurrentThread();
            Console.WriteLine("allocating " + (after - before));
        }
        return 0;
    }
}
"""

UNITY_STUB = ROOT / "tests" / "unity_stub" / "UnityEngine.cs"


class UnityPackage(TestCase):
    """Issue 76, 4: the UPM package CMake's vinom_unity_package makes from
    clients/csharp and the built libvinom.so, its scripts compiled by mcs with
    Unity's defines against a stub of UnityEngine (Unity itself is not run), and
    the binding's frame path allocating nothing over 1,000 frames under Mono."""

    timeout = 900

    async def test_the_package_target_makes_the_upm_layout(self) -> None:
        where = await library()
        # Made again each run: the build's cache knows clients/cpp, not clients/csharp.
        report, code = await _run(
            str(shutil.which("cmake", path=PATH)),
            ["--build", str(where), "--target", "vinom_unity_package"],
        )
        self.assertEqual(code, 0, report)
        package = where / "unity" / "com.vinom.client"
        manifest = json.loads((package / "package.json").read_text("utf-8"))
        self.assertEqual(manifest["name"], "com.vinom.client")
        self.assertEqual(manifest["version"], project_version())
        for sample in manifest["samples"]:
            self.assertTrue((package / sample["path"]).is_dir(), sample)
        asmdef = json.loads((package / "Runtime" / "Vinom.Client.asmdef").read_text("utf-8"))
        self.assertEqual(asmdef["name"], "Vinom.Client")
        # The binding as it is in git, not a copy of its own.
        self.assertEqual((package / "Runtime" / "Vinom.cs").read_bytes(),
                         (CSHARP / "Vinom.cs").read_bytes())  # fmt: skip
        behaviour = package / "Samples~" / "TictactoeBot" / "TictactoeBotBehaviour.cs"
        self.assertEqual(behaviour.read_bytes(), (CSHARP / "TictactoeBotBehaviour.cs").read_bytes())
        plugin = package / "Plugins" / "Linux" / "x86_64" / "libvinom.so"
        report, code = await _run("/usr/bin/nm", ["-D", "--defined-only", str(plugin)])
        self.assertEqual(code, 0, report)
        self.assertIn("vinom_client_ended", report)
        # The package's scripts compile as Unity would take them (its defines, a
        # stub of UnityEngine and of AOT's attribute in place of Unity's).
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        mcs = shutil.which("mcs", path=PATH)
        self.assertIsNotNone(mcs, f"apt-get install -y {MONO_PACKAGES}")
        unity = "-define:UNITY_5_3_OR_NEWER;UNITY_2021_3_OR_NEWER;UNITY_STANDALONE_LINUX"
        report, code = await _run(
            str(mcs),
            ["-nologo", "-warnaserror+", "-target:library", unity,
             f"-out:{work / 'Vinom.Client.dll'}", str(package / "Runtime" / "Vinom.cs"),
             str(behaviour), str(UNITY_STUB)],
        )  # fmt: skip
        self.assertEqual(code, 0, report)

    async def test_the_frame_path_allocates_nothing_over_1000_polls(self) -> None:
        where = await library()
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        (work / "Allocation.cs").write_text(ALLOCATION_PROGRAM, encoding="utf-8")
        (work / "token.json").write_text(json.dumps(load()["session"]["token"]), "utf-8")
        snap = next(v for v in load()["messages"]["vectors"]
                    if v["name"] == "relative_snap_msgpack_full")  # fmt: skip
        mcs = shutil.which("mcs", path=PATH)
        self.assertIsNotNone(mcs, f"apt-get install -y {MONO_PACKAGES}")
        exe = work / "Allocation.exe"
        sources = [str(CSHARP / "Vinom.cs"), str(work / "Allocation.cs")]
        report, code = await _run(str(mcs), ["-nologo", "-warnaserror+", f"-out:{exe}", *sources])
        self.assertEqual(code, 0, report)
        snap_b64 = base64.b64encode(bytes.fromhex(snap["hex"])).decode()
        report, code = await _run(
            "/usr/bin/mono",
            [str(exe), str(work / "token.json"), snap_b64],
            {"LD_LIBRARY_PATH": str(where)},
        )
        self.assertEqual(code, 0, report)
        lines = dict(line.split(" ", 1) for line in report.splitlines())
        allocated, datagrams, viewed = (int(n) for n in lines["frames"].split())
        self.assertGreater(datagrams, 100)  # the requests at 10 Hz: the path ran
        self.assertGreater(viewed, 1000)
        self.assertLessEqual(allocated, 256, report)  # near zero: 0 here
        self.assertGreater(int(lines["allocating"]), 1000, report)


class CSharpArenaUnderLoss(TestCase):
    """The Unity path of a real-time game: ArenaBot (the binding's Snapshots and
    Inputs over libvinom.so, under `mono`) and a native vinom_udp_probe play the
    arena on a real `twistd vinom` with snapshot checksums on, each through a
    network losing 10% of the datagrams each way: 0 checksum mismatches, none
    corrupt, schema snapshots (§16.8) once asked for, no input lost
    (tests.test_native.check_arena_play); and it draws the
    other player each frame between snapshots by the binding's ServerClock and
    SnapshotBuffer."""

    timeout = 900

    async def test_a_csharp_player_loses_no_input_and_no_snapshot_at_10_percent_loss(
        self,
    ) -> None:
        where, probe = await library(), await build()
        exe = await bot("ArenaBot")
        server, ops = await start_arena_server(self)
        found = await gatherResults([
            LobbyPlayer(reactor, server.lobby, name).find_match("arena") for name in "AB"
        ])  # fmt: skip
        paths = []
        for match in found:
            path = Path(self.mktemp()).resolve()
            path.write_text(json.dumps(match.token), encoding="utf-8")
            paths.append(str(path))
        host = found[0].token["hosts"][0]
        address = [host["host"], str(host["port"])]
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        played = await gatherResults([
            utils.getProcessOutputAndValue(
                shutil.which("mono", path=PATH) or "mono",
                [str(exe), paths[0], *address, "--loss", "0.1", "--seed", "3", "--seconds", "6"],
                path=str(ROOT),
                env={"PATH": PATH, "HOME": str(home), "LD_LIBRARY_PATH": str(where)},
            ),
            ensureDeferred(json_lines(probe / "vinom_udp_probe", [
                paths[1], *address, "--play-arena", "--loss", "0.1", "--seed", "4",
                "--seconds", "6"])),
        ])  # fmt: skip
        out, err, code = played[0]
        self.assertEqual(code, 0, err.decode(errors="replace"))
        csharp = json.loads(out.decode().splitlines()[-1])
        lines, err_probe, code_probe = played[1]
        self.assertEqual(code_probe, 0, f"{lines[-3:]}\n{err_probe}")
        await check_arena_play(self, [csharp, lines[-2]], ops)
        # A frame every 5 ms for 6 s, nearly all between two views (a clock in the
        # wrong units would hold or start early every one), the last with both players.
        drawn = csharp["drawn"]
        self.assertGreater(drawn["frames"], 300, csharp)
        self.assertLess(drawn["held"] + drawn["early"], drawn["frames"] / 4, csharp)
        self.assertEqual(drawn["players"], 2, csharp)


class CSharpLobbyAgainstTwistd(TestCase):
    """The bot with `--lobby`: hello over TLS through the binding's `Lobby`
    (vinom_lobby_* by P/Invoke), a room of tictactoe with the game's bot, and the
    seat of its match_found played to a result; a certificate the lobby does not
    have is refused with one line."""

    timeout = 900

    async def from_lobby(self, port: int, trust: str) -> tuple[list[dict[str, object]], str, int]:
        where = await library()
        exe = await bot()
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        out, err, code = await utils.getProcessOutputAndValue(
            shutil.which("mono", path=PATH) or "mono",
            [str(exe), "--lobby", "127.0.0.1", str(port), "--trust", trust, "--seconds", "60"],
            path=str(ROOT),
            env={"PATH": PATH, "HOME": str(home), "LD_LIBRARY_PATH": str(where)},
        )
        lines = [json.loads(line) for line in out.decode().splitlines() if line]
        return lines, err.decode(errors="replace"), code

    async def test_the_bot_plays_from_the_lobby_to_a_result(self) -> None:
        await library()
        await bot()
        server = await start_twistd(self, {})
        lines, err, code = await self.from_lobby(server.lobby.port, server.lobby.trust)
        said = f"{lines}\n{err}"
        self.assertEqual(code, 0, said)
        events = [line["event"] for line in lines]
        self.assertEqual(events[:6], ["lobby_welcome", "room", "room", "match_found", "started",
                                      "welcome"], said)  # fmt: skip
        player_id = lines[0]["player_id"]
        room = lines[2]["frame"]
        self.assertEqual([p["name"] for p in room["room"]["players"]], ["Native", "Bot"], said)
        messages = [line["message"] for line in lines if line["event"] == "message"]
        self.assertEqual([p["name"] for p in messages[0]["players"]], ["Native", "Bot"], said)
        check_a_result(self, messages, {"player_id": player_id}, said)
        self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"}, said)

    async def test_a_wrong_trust_certificate_is_refused_with_one_line(self) -> None:
        await library()
        await bot()
        server = await start_twistd(self, {})
        other = Path(self.mktemp()).resolve()
        other.write_bytes(make_self_signed("localhost")[0])  # also localhost's, not the lobby's
        lines, err, code = await self.from_lobby(server.lobby.port, str(other))
        self.assertEqual((lines, code), ([{"event": "failed", "reason": "lobby"}], 1), err)
        self.assertEqual(err.splitlines(), [
            "vinom_csharp_bot: lobby failed: tls: certificate verify failed: "
            "self-signed certificate"])  # fmt: skip


class CSharpBotAgainstTwistd(TestCase):
    """The test is the lobby client (tests.test_native.tictactoe_seat) and hands the
    seat's connect token to the bot, a `mono` process."""

    timeout = 900

    async def seat(self) -> tuple[dict[str, object], list[str]]:
        # The builds come first: a token expires.
        await library()
        await bot()
        return await tictactoe_seat(self)

    async def play(
        self, token: dict[str, object] | str, address: list[str], *options: str
    ) -> tuple[list[dict[str, object]], str, int]:
        where = await library()
        exe = await bot()
        path = Path(self.mktemp()).resolve()
        path.write_text(token if isinstance(token, str) else json.dumps(token), encoding="utf-8")
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        out, err, code = await utils.getProcessOutputAndValue(
            shutil.which("mono", path=PATH) or "mono",
            [str(exe), str(path), *address, *options],
            path=str(ROOT),
            env={"PATH": PATH, "HOME": str(home), "LD_LIBRARY_PATH": str(where)},
        )
        lines = [json.loads(line) for line in out.decode().splitlines() if line]
        return lines, err.decode(errors="replace"), code

    async def test_the_bot_plays_a_seat_of_tictactoe_to_a_result(self) -> None:
        token, address = await self.seat()
        lines, err, code = await self.play(token, address)
        said = f"{lines}\n{err}"
        self.assertEqual(code, 0, said)
        # The binding loaded the library it was written for.
        self.assertEqual(lines[0]["event"], "started", said)
        # The version clients/cpp/CMakeLists.txt sets, the one of the SONAME and vinom.h.
        self.assertEqual(lines[0]["library"], f"vinom-native {project_version()}", said)
        # The version docs/clients.md gives for this release.
        self.assertIn(f"`{lines[0]['library']}`", (ROOT / "docs" / "clients.md").read_text())
        self.assertEqual(lines[1]["event"], "welcome", said)
        self.assertEqual(lines[-1], {"event": "disconnected", "reason": "closed"}, said)
        messages = [line["message"] for line in lines if line["event"] == "message"]
        welcome = messages[0]
        self.assertEqual((welcome["t"], welcome["game"]), ("welcome", "tictactoe"), said)
        self.assertEqual([p["name"] for p in welcome["players"]], ["Native", "Bot"], said)
        self.assertEqual([m["t"] for m in messages[1:3]], ["phase", "state"], said)
        # It played over the reliable channel, and the match reached a result with
        # its mark on the board.
        sent = [line["message"] for line in lines if line["event"] == "sent"]
        self.assertIn({"t": "action", "a": {"cell": 0}}, sent, said)
        check_a_result(self, messages, token, said)

    async def test_a_tampered_token_is_refused_with_a_clear_line(self) -> None:
        token, address = await self.seat()
        await refuse_a_tampered_token(self, self.play, token, address, "vinom_csharp_bot")

    async def test_a_file_that_is_not_a_token_is_a_usage_error(self) -> None:
        lines, err, code = await self.play('{"version": 3}', ["127.0.0.1", "9"])
        self.assertEqual((lines, code), ([], 2), err)
        self.assertIn("vinom_csharp_bot: not a connect token: bad_json", err)
