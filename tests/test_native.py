"""The native client core (clients/cpp): configured and built with CMake, with
AddressSanitizer and UndefinedBehaviorSanitizer on, into a temporary directory
once per test run; then its GoogleTest suite and its C ABI test run, and the
suite is shown to read vectors/protocol.json: a copy with one byte of one
vector changed fails it. CMake, g++ and the libraries are Debian's packages
(scripts/test installs them); a missing one fails with the command that
installs it, never skips."""

# slow: builds the native client with CMake

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from tests.support.vectors import VECTORS, load

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "clients" / "cpp"
PATH = "/usr/bin:/bin"

#: Debian's packages the build needs (as scripts/test installs them).
PACKAGES = "cmake g++ libssl-dev libmsgpack-cxx-dev nlohmann-json3-dev libgtest-dev"

_built: dict[str, Path | str] = {}


async def _run(program: str, args: list[str], env: dict[str, str] | None = None) -> tuple[str, int]:
    out, err, code = await utils.getProcessOutputAndValue(
        program, args, path=str(ROOT), env={"PATH": PATH, **(env or {})}
    )
    return (out + err).decode(errors="replace"), code


async def build() -> Path:
    """The build directory, built on the first call of the run (a failure is kept
    and repeated, so one broken build fails every test with its own output)."""
    if "dir" in _built:
        return Path(_built["dir"])
    if "error" in _built:
        raise AssertionError(_built["error"])
    cmake = shutil.which("cmake", path=PATH)
    if cmake is None or shutil.which("g++", path=PATH) is None:
        _built["error"] = (f"this test needs cmake and g++: run scripts/test, or "
                           f"`apt-get install -y {PACKAGES}`")  # fmt: skip
        raise AssertionError(_built["error"])
    where = Path(tempfile.mkdtemp(prefix="vinom-native-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    for args in (["-S", str(SOURCE), "-B", str(where), "-DVINOM_SANITIZE=ON",
                  f"-DVINOM_VECTORS={VECTORS}"],
                 ["--build", str(where), "-j", "2"]):  # fmt: skip
        report, code = await _run(cmake, args)
        if code != 0:
            _built["error"] = (f"cmake {' '.join(args)} failed (the packages: "
                               f"{PACKAGES}):\n{report}")  # fmt: skip
            raise AssertionError(_built["error"])
    _built["dir"] = where
    return where


class NativeClientTests(TestCase):
    # The first test builds: a minute of CPU, more on a busy machine.
    timeout = 900

    async def suite(self, vectors: Path | None = None) -> tuple[str, int]:
        where = await build()
        env = {} if vectors is None else {"VINOM_VECTORS": str(vectors)}
        return await _run(str(where / "vinom_tests"), [], env)

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
            "Malformed.EveryFlippedBitIsRefused",
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
        cases = [
            ("session", "welcome", "hex", "Session.WelcomeBothWays"),
            ("session", "payload_client", "hex", "Session.SealedPacketsBothWays"),
            ("reliability", "first_body", "bodies", "Reliability.BodiesBothWays"),
            ("messages", "input", "hex", "Messages.EveryVectorBothWays"),
            ("route_tokens", "route_token_ipv6", "hex", "RouteTokens.EveryVectorBothWays"),
        ]
        for group, name, key, failing in cases:
            data = load()
            vector = next(v for v in data[group]["vectors"] if v["name"] == name)
            text = vector[key] if key == "hex" else vector[key][0]
            middle = len(text) // 2 & ~1
            flipped = (
                text[:middle] + f"{int(text[middle : middle + 2], 16) ^ 1:02x}" + text[middle + 2 :]
            )
            if key == "hex":
                vector[key] = flipped
            else:
                vector[key][0] = flipped
            copy = Path(self.mktemp())
            copy.write_text(json.dumps(data), encoding="utf-8")
            report, code = await self.suite(copy)
            self.assertNotEqual(code, 0, f"{group}.{name}:\n{report}")
            self.assertIn(f"[  FAILED  ] {failing}", report, report)
