"""The fast lane of the test suite: every test module but those that say `# slow: <why>`.

A test module that starts Redis, a child process or a browser says so in one
comment line right under its docstring:

    \"\"\"The lobby's store on a real Redis.\"\"\"

    # slow: starts Redis (tests/support/redis_server.py)

`tox -e fast` (`python -m tests.support.lanes --run`) runs every other module:
the edit loop, under a minute. `scripts/test` and CI run every module.

Two checks keep the mark honest. tests/test_suite_rules.py fails (in every run,
CI's included) for a module without it that names what starts Redis, a
browser or a process (`start_redis`, `open_browser`, `spawnProcess`,
`subprocess`, ...); and in the fast lane a test that starts a child process
anyway (deep inside vinom, through a helper) fails with
ChildProcessInFastLane, which says to add the line (`--run` and
tests/__init__.py call `forbid_child_processes` in every process of the run).

    python -m tests.support.lanes            # the fast modules, one a line
    python -m tests.support.lanes --why      # each slow module, and why
    python -m tests.support.lanes --run -j2  # trial on the fast modules, with these options
    python -m tests.support.lanes --without tests.cluster  # trial on every other module
    python -m tests.support.lanes --core -j2  # the core lane: no fleet, no Redis, no kubectl
    python -m tests.support.lanes --core tests.server -j2  # the core modules under tests.server
    python -m tests.support.lanes --compiled -j2  # trial on every module but LATE
    python -m tests.support.lanes --late -j1      # trial on LATE's modules

`--without` is how the pure-Python run of `scripts/test` (tox's `tests-pure`)
leaves out the modules that run once, on the compiled build (tox.ini says
which and why).

The core lane (`tox -e core`) is every test module that needs neither the
fleet (vinom.cluster, vinom.gateway, vinom.fleet: docs/architecture.md,
"Layers") nor Redis nor kubectl: `core()` reads each module's imports, and
those of the tests' helpers it imports, and leaves out those that reach the
fleet, start Redis (tests/support/redis_server.py, sentinel.py), run pods
(kubelet.py) or name `kubectl` or a `--redis` option. It runs them as on a
machine with the core alone (`block_fleet`, in every trial worker):
`$VINOM_FLEET` is `none` (the server finds no fleet), importing the fleet's
packages or the Redis helpers fails, and `redis-server`, `redis-sentinel` and
`kubectl` on the PATH are stubs that fail. A core module that reaches any of
them fails there rather than passing only where they are installed.
"""

from __future__ import annotations

import ast
import importlib.abc
import os
import re
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
SLOW_MARK = re.compile(r"^# slow: (?P<why>\S.*)$", re.MULTILINE)


def test_modules(tests: Path = TESTS) -> dict[str, str | None]:
    """Every test module of tests/ (`tests.rooms.test_rooms`), with why it is slow (None: fast)."""
    modules: dict[str, str | None] = {}
    for path in sorted(tests.rglob("test_*.py")):
        name = ".".join(path.relative_to(tests.parent).with_suffix("").parts)
        mark = SLOW_MARK.search(path.read_text(encoding="utf-8"))
        modules[name] = mark["why"] if mark else None
    return modules


def fast(tests: Path = TESTS) -> list[str]:
    return [name for name, why in test_modules(tests).items() if why is None]


def without(names: list[str], tests: Path = TESTS) -> list[str]:
    """Every test module but those in (or under) `names`."""
    return [
        module
        for module in test_modules(tests)
        if not any(module == name or module.startswith(name + ".") for name in names)
    ]


# The compiled run's long modules that measure or deploy the installed build rather
# than test its code paths (the benchmarks' smoke tests, the rendered manifests'
# pods), and the native client's release-build modules (its C# binding, its install:
# clients/cpp holds no Python). scripts/test runs them on the same compiled wheel in
# its side lane (tox's `tests-late`, after the pure run), and the compiled run
# (`tests`) on every other module, so that the two lanes end together
# (docs/contributing.md, "How long the suite takes": at 3e05f454 the compiled run
# took 1,625 s and the side 1,350).
LATE = ("tests.test_bench", "tests.test_bench_compare", "tests.test_deploy_run",
        "tests.test_native_csharp", "tests.test_native_install")  # fmt: skip


# Set by `--run` for itself and the trial workers it starts; tests/__init__.py
# calls forbid_child_processes when it is "fast", and block_fleet when it is "core".
LANE_VARIABLE = "VINOM_TEST_LANE"

# What the core lane runs without: the fleet's packages, the helpers that start
# Redis or run pods, and the programs they use.
FLEET_PACKAGES = ("vinom.cluster", "vinom.gateway", "vinom.fleet")
FLEET_HELPERS = ("tests.support.redis_server", "tests.support.sentinel", "tests.support.kubelet",
                 "tests.cluster", "tests.gateway", "tests.fleet")  # fmt: skip
FLEET_PROGRAMS = ("redis-server", "redis-sentinel", "kubectl")
# A module that says these needs the fleet or kubectl even where it imports neither:
# it passes `--redis` to a server, or runs kubectl.
_FLEET_WORDS = re.compile(r"""["']--redis\b|\bkubectl\b|["']redis(?:\+sentinel|s)?://""")


def _on_import(tree: ast.AST) -> list[ast.AST]:
    """The nodes Python runs when it imports the module: all but function bodies."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(path: Path, name: str) -> set[str]:
    """The dotted names a module imports as it is imported (absolute, relative resolved);
    a function's own imports wait for a call, which the core lane's guard sees."""
    found: set[str] = set()
    here = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    for node in _on_import(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - (node.level - 1)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, packages: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def fleet_needs(tests: Path = TESTS) -> dict[str, str]:
    """Each module of tests/ that needs the fleet, Redis or kubectl, with why: what it
    imports as it is imported, what a test module says (a `--redis` option, kubectl),
    or the module of the tests it imports that needs them."""
    paths = {".".join(p.relative_to(tests.parent).with_suffix("").parts).removesuffix(
        ".__init__"): p for p in tests.rglob("*.py")}  # fmt: skip
    direct: dict[str, str] = {}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        imported = _imports(path, name)
        graph[name] = {n for n in imported if n in paths}
        reached = sorted(n for n in imported if _within(n, (*FLEET_PACKAGES, *FLEET_HELPERS)))
        if _within(name, FLEET_HELPERS):
            direct[name] = "a test of the fleet"
        elif reached:
            direct[name] = f"imports {reached[0]}"
        elif path.name.startswith("test_"):
            said = _FLEET_WORDS.search(path.read_text(encoding="utf-8"))
            if said:
                direct[name] = f"says {said.group(0).strip(chr(34) + chr(39))}"
    needs = dict(direct)
    changed = True
    while changed:
        changed = False
        for name, imported in graph.items():
            if name in needs:
                continue
            helper = next((n for n in sorted(imported) if n in needs), None)
            if helper is not None:
                needs[name] = f"imports {helper}, which needs it"
                changed = True
    return needs


def core(tests: Path = TESTS, under: Sequence[str] = ()) -> list[str]:
    """The core lane: every test module that needs neither the fleet, Redis nor kubectl
    (those in or under `under`, when given)."""
    needs = fleet_needs(tests)
    return [module for module in test_modules(tests) if module not in needs
            and (not under or _within(module, under))]  # fmt: skip


class FleetBlocked(ImportError):
    """The core lane imported a module of the fleet, or a helper that starts Redis."""


class _BlockFleet(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if _within(name, (*FLEET_PACKAGES, "tests.support.redis_server",
                          "tests.support.sentinel", "tests.support.kubelet")):
            raise FleetBlocked(f"the core lane (tests/support/lanes.py) has no {name}: a core "
                               "test needs neither the fleet nor Redis nor kubectl")
        return None


def block_fleet() -> None:
    """This process as on a machine with the core alone (module docstring): no fleet
    found or importable, no Redis helper, and failing `redis-server`, `redis-sentinel`
    and `kubectl` first on the PATH (for the children it starts, too)."""
    os.environ["VINOM_FLEET"] = "none"
    if not any(isinstance(f, _BlockFleet) for f in sys.meta_path):
        sys.meta_path.insert(0, _BlockFleet())
    stubs = os.environ.get("VINOM_CORE_LANE_STUBS")
    if not stubs or not os.path.isdir(stubs):
        stubs = tempfile.mkdtemp(prefix="vinom-core-lane-")
        for program in FLEET_PROGRAMS:
            stub = Path(stubs) / program
            stub.write_text(f"#!/bin/sh\necho '{program}: not on this machine (the core "
                            "lane)' >&2\nexit 127\n")  # fmt: skip
            stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.environ["VINOM_CORE_LANE_STUBS"] = stubs
    if not os.environ.get("PATH", "").startswith(stubs + os.pathsep):
        os.environ["PATH"] = stubs + os.pathsep + os.environ.get("PATH", "")


# Who may start a child all the same: trial -jN starting its workers (the
# tests run under twisted.trial._dist.worker), and ctypes looking for a shared
# library with `ldconfig -p` (vinom.hosting.mmsg finds libc so on import).
ALLOWED_STARTERS = frozenset({"twisted.trial._dist.disttrial", "ctypes.util"})


class ChildProcessInFastLane(AssertionError):
    """A test of the fast lane started a child process."""


def forbid_child_processes() -> None:
    """Fail whatever starts a child process in this process, trial's own workers aside.

    A module without `# slow:` may still start a child where its source does not
    show it (a server started without `--matches here`); this turns that into
    the failure of the test that started it, so the fast lane stays fast.
    """
    import subprocess

    from twisted.internet.posixbase import PosixReactorBase

    def refuse(what: object) -> None:
        frame: FrameType | None = sys._getframe(2)
        while frame is not None:
            if frame.f_globals.get("__name__") in ALLOWED_STARTERS:
                return
            frame = frame.f_back
        raise ChildProcessInFastLane(
            f"the fast lane (tox -e fast) started a child process, {what!r}: put"
            " `# slow: <why>` under the test module's docstring (tests/support/lanes.py)"
        )

    spawn = PosixReactorBase.spawnProcess
    execute = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def guarded_spawn(self: PosixReactorBase, *args: Any, **kwargs: Any) -> Any:
        refuse(args[2] if len(args) > 2 else kwargs.get("args", args[1:]))
        return spawn(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    def guarded_execute(self: subprocess.Popen[Any], args: Any, *rest: Any) -> Any:
        refuse(args)
        return execute(self, args, *rest)

    PosixReactorBase.spawnProcess = guarded_spawn  # type: ignore[method-assign]
    subprocess.Popen._execute_child = guarded_execute  # type: ignore[attr-defined]


def _names_and_options(args: list[str]) -> tuple[list[str], list[str]]:
    """The module names and the trial options (those that start with `-`) of `args`."""
    return [a for a in args if not a.startswith("-")], [a for a in args if a.startswith("-")]


def main(argv: list[str]) -> None:
    if argv[:1] == ["--why"]:
        for module, why in test_modules().items():
            if why is not None:
                print(f"{module}: {why}")
    elif argv[:1] == ["--run"]:
        from twisted.scripts.trial import run

        sys.argv = ["trial", *argv[1:], *fast()]
        os.environ[LANE_VARIABLE] = "fast"  # the trial workers' tests/__init__.py
        forbid_child_processes()
        run()
    elif argv[:1] == ["--core"]:
        from twisted.plugin import IPlugin, getPlugins
        from twisted.scripts.trial import run

        import twisted.plugins

        names, options = _names_and_options(argv[1:])
        sys.argv = ["trial", *options, *core(under=names)]
        # The plugin cache is brought up to date first, while the fleet's plugin imports:
        # in the lane, Twisted reads the fleet's entry from it and never loads it.
        list(getPlugins(IPlugin, twisted.plugins))
        os.environ[LANE_VARIABLE] = "core"  # the trial workers' tests/__init__.py
        block_fleet()
        run()
    elif argv[:1] == ["--without"]:
        from twisted.scripts.trial import run

        names, options = _names_and_options(argv[1:])
        sys.argv = ["trial", *options, *without(names)]
        run()
    elif argv[:1] in (["--compiled"], ["--late"]):
        from twisted.scripts.trial import run

        # Modules named: those alone (`tox -e tests -- tests.rooms`).
        names, options = _names_and_options(argv[1:])
        if not names:
            names = list(LATE) if argv[0] == "--late" else without(list(LATE))
        sys.argv = ["trial", *options, *names]
        run()
    elif argv:
        raise SystemExit("usage: python -m tests.support.lanes [--why | --run [trial options]"
                         " | --without MODULE... [trial options]"
                         " | --core [MODULE...] [trial options]"
                         " | --compiled | --late [MODULE...] [trial options]]")
    else:
        print("\n".join(fast()))


if __name__ == "__main__":
    main(sys.argv[1:])
