"""Test helper: a fresh virtualenv to install into, and `twistd -n vinom` run in it.

The new-user and scaffold tests install packages the way a user does
(`pip install DIR`) into a virtualenv of their own, without the network:

* `python -m venv --without-pip`, and a `.pth` file in its site-packages
  naming the test environment's own site-packages (and, for a test that does
  not install vinom itself, the directory vinom is imported from). That is
  `--system-site-packages` on top of the *test's* environment: the test
  environment is usually a virtualenv itself, whose packages
  `--system-site-packages` would not see. A `.pth` line is appended after the
  new site-packages, so whatever the test installs there comes first.
* `pip` is the test environment's (`python -m pip` finds it through that
  line); `--no-deps --no-build-isolation` installs a package from a
  directory with the dependencies and the build backend already at hand, and
  `PIP_NO_INDEX` keeps pip off the network.

Processes started here get the environment of the test minus `PYTHONPATH`,
so that only what the virtualenv holds is importable.

`make_index_venv` is the other kind, for the one test of what `pip install .`
itself brings (tests/test_new_user.py): a virtualenv with its own pip that
sees nothing of the test environment, installed into from the package index
as a user's is (pip's own configuration and cache, so cached wheels serve a
second run), with build isolation. `$VINOM_FLEET` is not passed on: a user's
machine has none.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path

from attrs import frozen
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from tests.server.test_twistd import RUN_TWISTD, Collect
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.waiting import until

# A checkout's files that `pip install .` has no use for, or that an earlier
# build left behind (a stale build/ or compiled module must not be installed).
NOT_INSTALLED = shutil.ignore_patterns(
    ".git", ".tox", "build", "dist", "*.egg-info", "__pycache__", "_trial_temp*",
    ".mypy_cache", ".ruff_cache", ".hypothesis", "venv", ".venv", "*.so", "dropin.cache",
)  # fmt: skip
# Each subprocess step (a pip install, a test run) gets at most this long.
STEP_TIMEOUT = 120.0
# An install from the package index: the dependencies' wheels, downloaded once.
INDEX_INSTALL_TIMEOUT = 600.0


def test_site_packages() -> list[str]:
    """The site-packages directories of the environment running the tests."""
    found = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    return [path for path in dict.fromkeys(found) if os.path.isdir(path)]


@frozen
class FreshVenv:
    """A virtualenv made for one test; `python` is its interpreter."""

    root: Path
    python: Path
    env: dict[str, str]

    def script(self, name: str) -> Path:
        """A console script the virtualenv has installed (`vinom`)."""
        return self.root / "bin" / name

    def run(
        self, argv: Sequence[str | os.PathLike[str]], cwd: Path, check: bool = True,
        timeout: float = STEP_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run `argv` in `cwd` with this virtualenv's environment (blocking)."""
        done = subprocess.run(
            [str(part) for part in argv], cwd=cwd, env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def pip_install(self, directory: Path) -> None:
        """`pip install DIR` as a user does, minus the network and the build isolation."""
        self.run(
            [self.python, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
             "--quiet", directory],
            cwd=directory.parent,
        )  # fmt: skip

    def pip_install_from_index(self, directory: Path) -> None:
        """`pip install DIR` exactly as a user types it (a virtualenv of make_index_venv):
        the dependencies from the package index, the build in isolation."""
        self.run([self.python, "-m", "pip", "install", "--quiet", directory],
                 cwd=directory.parent, timeout=INDEX_INSTALL_TIMEOUT)  # fmt: skip

    def installed(self) -> set[str]:
        """The distributions installed in the virtualenv (`pip list`), by normalized name."""
        done = self.run([self.python, "-m", "pip", "list", "--format", "json"], cwd=self.root)
        return {canonical(entry["name"]) for entry in json.loads(done.stdout)}

    def import_path(self, module: str) -> str:
        """Where this virtualenv's Python imports `module` from."""
        done = self.run(
            [self.python, "-c", f"import {module}; print({module}.__file__)"], cwd=self.root
        )
        return done.stdout.strip()


def make_venv(case: TestCase, extra_paths: Iterable[str] = ()) -> FreshVenv:
    """A new virtualenv under the test's temporary directory, seeing the test's packages."""
    root = Path(case.mktemp()).resolve()
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
        timeout=STEP_TIMEOUT,
    )  # fmt: skip
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=STEP_TIMEOUT,
    ).stdout.strip()  # fmt: skip
    lines = [*dict.fromkeys([*extra_paths, *test_site_packages()])]
    Path(purelib, "_test_environment.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {
        name: value for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }  # fmt: skip
    env.update(
        VIRTUAL_ENV=str(root),
        PATH=os.pathsep.join([str(root / "bin"), env.get("PATH", "")]),
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # A pure-Python build: compiling the packet path takes minutes.
        VINOM_NO_EXTENSIONS="1",
    )
    return FreshVenv(root, python, env)


def make_index_venv(case: TestCase) -> FreshVenv:
    """A new virtualenv under the test's temporary directory with its own pip, seeing
    nothing of the test environment (module docstring)."""
    root = Path(case.mktemp()).resolve()
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=STEP_TIMEOUT)
    env = {
        name: value for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_NO_INDEX", "VINOM_FLEET")
    }  # fmt: skip
    env.update(
        VIRTUAL_ENV=str(root),
        PATH=os.pathsep.join([str(root / "bin"), env.get("PATH", "")]),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # A pure-Python build: compiling the packet path takes minutes.
        VINOM_NO_EXTENSIONS="1",
    )
    return FreshVenv(root, root / "bin" / "python", env)


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503: `tree_sitter` is `tree-sitter`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def copy_checkout(case: TestCase, checkout: Path) -> Path:
    """A copy of the checkout to `pip install` (pip builds in the source tree: not in ours)."""
    copy = Path(case.mktemp()).resolve() / checkout.name
    shutil.copytree(checkout, copy, ignore=NOT_INSTALLED, symlinks=True)
    return copy


@frozen
class Twistd:
    """`twistd -n vinom` running in a virtualenv; the ports it was told to use."""

    venv: FreshVenv
    process: Collect
    transport: object
    directory: Path
    lobby_port: int
    web_port: int | None
    ops_port: int | None

    @property
    def certificate(self) -> Path:
        """The dev certificate the server made in its data directory."""
        return self.directory / "vinom-data" / "dev-cert.pem"

    def output(self) -> str:
        return self.process.output.decode(errors="replace")


async def start_twistd(
    case: TestCase, venv: FreshVenv, *extra: str, web: bool = False, ops: bool = False,
    udp_ports: int = 4, env: dict[str, str] | None = None,
) -> Twistd:
    """`twistd -n vinom` from an empty directory, every port moved to a free one on
    loopback; the defaults otherwise; `env` adds to its environment. Stopped at the
    test's cleanup."""
    directory = Path(case.mktemp()).resolve()
    directory.mkdir()
    lobby = free_tcp_port()
    udp = free_udp_range(udp_ports)
    web_port = free_tcp_port() if web else None
    ops_port = free_tcp_port() if ops else None
    argv = [
        str(venv.python), "-c", RUN_TWISTD, "-n", "--pidfile=", "vinom",
        "--lobby", f"ssl:{lobby}:interface=127.0.0.1",
        "--udp-ports", f"{udp}-{udp + udp_ports - 1}",
        "--websocket", f"ssl:{web_port}:interface=127.0.0.1" if web_port else "none",
        "--ops-port", f"tcp:{ops_port}:interface=127.0.0.1" if ops_port else "none",
        *extra,
    ]  # fmt: skip
    process = Collect()
    transport = reactor.spawnProcess(
        process, argv[0], argv, env={**venv.env, **(env or {})}, path=str(directory)
    )
    case.addCleanup(_stop, transport, process)
    server = Twistd(venv, process, transport, directory, lobby, web_port, ops_port)
    await _listening(case, server, lobby)
    return server


async def _listening(case: TestCase, server: Twistd, port: int, limit: float = 30.0) -> None:
    """Wait until the lobby port takes a TCP connection (the server is up)."""

    async def taken() -> Protocol | None:
        case.assertFalse(server.process.ended.called, server.output())
        try:
            return await connectProtocol(
                TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1), Protocol()
            )
        except ConnectError:
            return None

    protocol = await until(taken, server.output, limit, every=0.1)
    assert isinstance(protocol, Protocol) and protocol.transport is not None
    protocol.transport.loseConnection()


async def _stop(transport: object, process: Collect) -> None:
    # SIGTERM drains (nothing is left to wait for by then) and stops the
    # workers with the server; SIGKILL if it is still there after a while.
    for signal, wait in (("TERM", 15.0), ("KILL", 15.0)):
        if process.ended.called:
            return
        transport.signalProcess(signal)  # type: ignore[attr-defined]
        with contextlib.suppress(AssertionError):  # still running: the next signal
            await until(lambda: process.ended.called, "the server to stop", timeout=wait,
                        every=0.05)  # fmt: skip
