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

The last is how the pure-Python run of `scripts/test` (tox's `tests-pure`)
leaves out the modules that run once, on the compiled build (tox.ini says
which and why).
"""

from __future__ import annotations

import os
import re
import sys
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


# Set by `--run` for itself and the trial workers it starts; tests/__init__.py
# calls forbid_child_processes when it is "fast".
LANE_VARIABLE = "VINOM_TEST_LANE"


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
    elif argv[:1] == ["--without"]:
        from twisted.scripts.trial import run

        names = [a for a in argv[1:] if not a.startswith("-")]
        options = [a for a in argv[1:] if a.startswith("-")]
        sys.argv = ["trial", *options, *without(names)]
        run()
    elif argv:
        raise SystemExit("usage: python -m tests.support.lanes [--why | --run [trial options]"
                         " | --without MODULE... [trial options]]")
    else:
        print("\n".join(fast()))


if __name__ == "__main__":
    main(sys.argv[1:])
