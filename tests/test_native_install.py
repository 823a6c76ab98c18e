"""The native client core as a game's build finds it: clients/cpp built (a
release build, shared and static) and `cmake --install`ed into a temporary
prefix, which then holds vinom.h with the generated vinom_version.h,
libvinom.so.MAJOR (its SONAME) and libvinom.a, the CMake package
(lib/cmake/vinom: vinomConfig.cmake and its version file) and
lib/pkgconfig/vinom.pc. A consumer project outside the tree
(clients/cpp/examples/tictactoe.c, vinom.h alone) is built from that prefix
twice, once by CMake's `find_package(vinom CONFIG REQUIRED)` and once by a
plain compiler line from `pkg-config --cflags --libs vinom`; the two programs
sign in to a real `twistd vinom` over TLS as guests, queue, are matched with
each other and play the match to its result. The version is the one of
CMakeLists.txt's project(VERSION) in the SONAME, the package's version file,
vinom.pc, the header's VINOM_VERSION_STRING and vinom_version_string(). The
portable parts (the codecs, the session, the client's sans-I/O core and the
Winsock path of the socket layer) compile with the MinGW-w64 cross compiler,
and a C consumer of vinom.h there imports the DLL's functions (dllimport).
Missing tools fail with the command that installs them, never skip."""

# slow: builds clients/cpp with cmake and installs it, builds two consumers, starts twistd vinom

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.servers import start_twistd
from tests.test_native import (
    PATH,
    RELEASE,
    SOURCE,
    _run,
    build,
    check_a_result,
    json_lines,
)

#: MinGW-w64 with POSIX threads: the log's std::mutex (and the lobby's std::thread) are
#: not in Debian's other variant, `-win32`.
MINGW = "x86_64-w64-mingw32-g++-posix"
MINGW_PACKAGES = "g++-mingw-w64-x86-64 pkgconf"

#: The sources that need neither sockets nor OpenSSL's headers (codec.cpp, lobby.cpp,
#: vinom_c.cpp and lobby_c.cpp do), and the socket layer, whose Winsock path this compiles.
PORTABLE = ("body.cpp", "token_json.cpp", "session.cpp", "messages.cpp", "delta.cpp",
            "schema.cpp", "endpoint.cpp", "client.cpp", "realtime.cpp", "netcode.cpp",
            "log.cpp", "realtime_c.cpp", "netcode_c.cpp", "socket.cpp")  # fmt: skip


def project_version() -> str:
    """The version clients/cpp/CMakeLists.txt sets (project(... VERSION x.y.z))."""
    text = (SOURCE / "CMakeLists.txt").read_text("utf-8")
    found = re.search(r"^project\(\S+ VERSION (\d+\.\d+\.\d+)\b", text, re.MULTILINE)
    assert found, "no project(VERSION) in clients/cpp/CMakeLists.txt"
    return found.group(1)


def temporary(case: TestCase, prefix: str) -> Path:
    where = Path(tempfile.mkdtemp(prefix=prefix))
    case.addCleanup(shutil.rmtree, where, ignore_errors=True)
    return where


async def tool(case: TestCase, program: str, args: list[str], **env: str) -> str:
    """`program` run with `args`: its output (it must exit 0)."""
    path = shutil.which(program, path=PATH)
    case.assertIsNotNone(path, f"this test needs {program}: `apt-get install -y "
                               f"{MINGW_PACKAGES} cmake g++`")  # fmt: skip
    report, code = await _run(str(path), args, env)
    case.assertEqual(code, 0, f"{program} {' '.join(args)}:\n{report}")
    return report


async def installed(case: TestCase) -> Path:
    """The release build installed into a fresh prefix."""
    where = await build(RELEASE)
    prefix = temporary(case, "vinom-prefix-")
    await tool(case, "cmake", ["--install", str(where), "--prefix", str(prefix)])
    return prefix


class Installed(TestCase):
    timeout = 900

    async def test_the_prefix_holds_the_headers_libraries_and_packages_at_one_version(
        self,
    ) -> None:
        version = project_version()
        major = version.split(".")[0]
        prefix = await installed(self)
        lib = prefix / "lib"
        for path in ("include/vinom.h", "include/vinom_version.h", "include/vinom/client.hpp",
                     f"lib/libvinom.so.{version}", "lib/libvinom.a",
                     "lib/cmake/vinom/vinomConfig.cmake",
                     "lib/cmake/vinom/vinomConfigVersion.cmake",
                     "lib/cmake/vinom/vinomTargets.cmake",
                     "lib/pkgconfig/vinom.pc"):  # fmt: skip
            self.assertTrue((prefix / path).is_file(), path)
        self.assertEqual((lib / f"libvinom.so.{major}").readlink().name, f"libvinom.so.{version}")
        self.assertEqual((lib / "libvinom.so").readlink().name, f"libvinom.so.{major}")
        dynamic = await tool(self, "readelf", ["-d", str(lib / "libvinom.so")])
        self.assertIn(f"Library soname: [libvinom.so.{major}]", dynamic)
        # One version: the header's macro, the package's version file, vinom.pc.
        header = (prefix / "include" / "vinom_version.h").read_text()
        self.assertIn(f'#define VINOM_VERSION_STRING "{version}"', header)
        self.assertIn(f"#define VINOM_VERSION_MAJOR {major}\n", header)
        config = (lib / "cmake" / "vinom" / "vinomConfigVersion.cmake").read_text()
        self.assertIn(f'set(PACKAGE_VERSION "{version}")', config)
        pc = str(lib / "pkgconfig")
        said = await tool(self, "pkg-config", ["--modversion", "vinom"], PKG_CONFIG_PATH=pc)
        self.assertEqual(said.strip(), version)
        # The static library: the C ABI and the C++ core, the C ABI's symbols hidden
        # in the shared one but these.
        symbols = await tool(self, "nm", ["-g", "--defined-only", str(lib / "libvinom.a")])
        self.assertIn("vinom_client_new", symbols)
        exported = await tool(self, "nm", ["-D", "--defined-only", str(lib / "libvinom.so")])
        names = {line.split()[-1] for line in exported.splitlines() if line.strip()}
        self.assertIn("vinom_version_string", names)
        self.assertEqual({n for n in names if not n.startswith("vinom_")}, set())

    async def test_two_consumers_built_by_cmake_and_by_pkg_config_play_each_other(
        self,
    ) -> None:
        version = project_version()
        prefix = await installed(self)
        project = temporary(self, "vinom-consumer-")
        shutil.copy(SOURCE / "examples" / "tictactoe.c", project / "tictactoe.c")
        (project / "CMakeLists.txt").write_text(
            "cmake_minimum_required(VERSION 3.18)\n"
            "project(consumer LANGUAGES C)\n"
            f"find_package(vinom {version} CONFIG REQUIRED)\n"
            "add_executable(vinom_tictactoe tictactoe.c)\n"
            "target_link_libraries(vinom_tictactoe PRIVATE vinom::vinom)\n"
        )
        built = project / "build"
        await tool(self, "cmake", ["-S", str(project), "-B", str(built),
                                   f"-DCMAKE_PREFIX_PATH={prefix}"])  # fmt: skip
        await tool(self, "cmake", ["--build", str(built)])
        by_cmake = built / "vinom_tictactoe"
        # pkg-config: the flags a Makefile would take, the runtime path from its libdir.
        pc = {"PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")}
        flags = (await tool(self, "pkg-config", ["--cflags", "--libs", "vinom"], **pc)).split()
        libdir = (await tool(self, "pkg-config", ["--variable=libdir", "vinom"], **pc)).strip()
        by_pkg_config = project / "vinom_tictactoe_pc"
        await tool(self, "cc", ["-std=c99", "-Wall", "-Wextra", "-Werror",
                                str(project / "tictactoe.c"), "-o", str(by_pkg_config),
                                *flags, f"-Wl,-rpath,{libdir}"])  # fmt: skip
        # Each loads the installed library (no LD_LIBRARY_PATH: the build's runtime path).
        soname = f"libvinom.so.{version.split('.')[0]}"
        for program in (by_cmake, by_pkg_config):
            ldd = await tool(self, "ldd", [str(program)])
            found = re.search(rf"^\s*{re.escape(soname)} => (\S+)", ldd, re.MULTILINE)
            self.assertIsNotNone(found, ldd)
            assert found is not None
            self.assertEqual(Path(found.group(1)).resolve(), (prefix / "lib" / soname).resolve())

        server = await start_twistd(self, {})
        port, trust = str(server.lobby.port), server.lobby.trust
        runs: list[tuple[list[dict[str, Any]], str, int]] = await gatherResults(
            [ensureDeferred(json_lines(program, ["127.0.0.1", port, trust, name]))
             for program, name in ((by_cmake, "CMake"), (by_pkg_config, "PkgConfig"))]
        )  # fmt: skip
        players = []
        for lines, err, code in runs:
            said = f"{lines}\n{err}"
            self.assertEqual(code, 0, said)
            self.assertEqual(lines[0], {"event": "library", "version": f"vinom-native {version}",
                                        "header": version}, said)  # fmt: skip
            token = next(line["token"] for line in lines if line["event"] == "match_found")
            messages = [line["message"] for line in lines if line["event"] == "message"]
            check_a_result(self, messages, token, said)
            players.append(token["player_id"])
        # They were matched with each other: the same two players in each one's match.
        for lines, _, _ in runs:
            final = [ln["message"] for ln in lines if ln["event"] == "message"
                     and ln["message"]["t"] == "state"][-1]  # fmt: skip
            self.assertEqual({p["id"] for p in final["s"]["players"]}, set(players))


class MinGW(TestCase):
    """The MinGW-w64 cross compiler (Windows x86-64) on the portable sources."""

    timeout = 600

    async def test_the_portable_parts_and_the_winsock_layer_compile_for_windows(self) -> None:
        where = temporary(self, "vinom-mingw-")
        # vinom_version.h as CMake writes it; nlohmann-json's and msgpack-cxx's
        # headers only (header-only libraries), not the host's whole /usr/include.
        version = project_version()
        major, minor, patch = version.split(".")
        generated = where / "generated"
        generated.mkdir()
        template = (SOURCE / "include" / "vinom_version.h.in").read_text()
        values = {"PROJECT_VERSION_MAJOR": major, "PROJECT_VERSION_MINOR": minor,
                  "PROJECT_VERSION_PATCH": patch, "PROJECT_VERSION": version}  # fmt: skip
        for key, value in values.items():
            template = template.replace(f"@{key}@", value)
        (generated / "vinom_version.h").write_text(template)
        headers = where / "headers"
        headers.mkdir()
        for name in ("nlohmann", "msgpack", "msgpack.hpp"):
            (headers / name).symlink_to(Path("/usr/include") / name)
        common = ["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                  "-DMSGPACK_NO_BOOST", "-DVINOM_BUILDING", f"-I{SOURCE / 'include'}",
                  f"-I{generated}", "-isystem", str(headers)]  # fmt: skip
        await gatherResults([
            ensureDeferred(tool(self, MINGW, [*common, "-c", str(SOURCE / "src" / name),
                                              "-o", str(where / f"{name}.o")]))
            for name in PORTABLE
        ])  # fmt: skip
        # Built into the DLL (vinom_shared_EXPORTS, as CMake sets it), the C ABI's
        # functions are dllexport: the object tells the linker to export them.
        realtime_c = str(SOURCE / "src" / "realtime_c.cpp")
        await tool(self, MINGW, [*common, "-Dvinom_shared_EXPORTS", "-c", realtime_c,
                                 "-o", str(where / "exported.o")])  # fmt: skip
        exported = await tool(self, "x86_64-w64-mingw32-objdump",
                              ["-s", "-j", ".drectve", str(where / "exported.o")])  # fmt: skip
        self.assertIn('-export:"vinom_', exported)
        # The socket layer's objects are Winsock's: WSAPoll, closesocket, ioctlsocket.
        report = await tool(self, "x86_64-w64-mingw32-objdump", ["-t", str(where / "socket.cpp.o")])
        for name in ("WSAPoll", "closesocket", "ioctlsocket", "WSAStartup"):
            self.assertIn(name, report)
        self.assertNotIn(" fcntl", report)
        # A game's C code on vinom.h imports the DLL's functions; a static build's does not.
        c_test = str(SOURCE / "tests" / "c_abi.c")
        c_flags = ["-x", "c", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                   f"-I{SOURCE / 'include'}", f"-I{generated}", "-c", c_test]  # fmt: skip
        await tool(self, MINGW, [*c_flags, "-o", str(where / "dll.o")])
        await tool(self, MINGW, [*c_flags, "-DVINOM_STATIC", "-o", str(where / "static.o")])
        dll = await tool(self, "x86_64-w64-mingw32-objdump", ["-t", str(where / "dll.o")])
        static = await tool(self, "x86_64-w64-mingw32-objdump", ["-t", str(where / "static.o")])
        self.assertIn("__imp_vinom_client_new", dll)
        self.assertNotIn("__imp_vinom", static)
        self.assertIn("vinom_client_new", static)
