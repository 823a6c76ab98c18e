"""The rules the test suite keeps, read from its sources (nothing is run).

- Every property test (`@given`) says its `@settings` and has no deadline: a
  deadline is a wall-clock assertion (hypothesis's default fails an example
  slower than 200 ms), which a busy machine breaks; the number of examples is
  the test's own choice, in sight.
- A test module that names what starts Redis, a browser or a child process
  carries the `# slow: <why>` line that keeps it out of the fast lane
  (tests/support/lanes.py; the lane's guard fails what this reading misses).
- A test waits for something on real sockets, processes or Redis with
  tests/support/waiting.py's `until`, not with a polling helper of its own
  nor a loop that only sleeps and asserts (`while ...: await deferLater(...)`).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support.lanes import test_modules

TESTS = Path(__file__).resolve().parent
THIS = "tests/test_suite_rules.py"  # names what starts something, to find it
# Private polling helpers this suite had, one per module, before `until`.
POLLING_HELPER = re.compile(
    r"^\s*(?:async )?def (until|wait_until|wait_until_async|_until|_wait|_wait_for)\(", re.MULTILINE
)
# A pass of a polling loop of its own checking the reactor's clock against its deadline.
DEADLINE = re.compile(r"assert\w*\(?\s*reactor\.seconds\(\)\s*[,<]|if reactor\.seconds\(\) >")
# `until` itself; Browser.wait_until, Selenium's own wait (WebDriverWait, in the
# driver's thread); and the screenshot scripts' page waits (no reactor there).
WAITS = {"tests/support/waiting.py", "tests/support/browser.py", "tests/support/web_screenshot.py"}
# What starts Redis, PostgreSQL, a browser or a child process, by the names a test module uses.
STARTS_SOMETHING = re.compile(
    r"\b(spawnProcess|subprocess|multiprocessing|pty|getProcessOutput\w*|getProcessValue"
    r"|sys\.executable|start_redis|RedisServer|start_sentinel_cluster|selenium|open_browser"
    r"|postgres_database|PostgresServer"
    r"|start_twistd|ClusterTestCase|fresh_venv|run_bench)\b"
)


@cache
def sources() -> list[tuple[str, str]]:
    """Every module of tests/ (its path in the checkout) and its text."""
    return [
        (str(path.relative_to(TESTS.parent)), path.read_text(encoding="utf-8"))
        for path in sorted(TESTS.rglob("*.py"))
    ]


def parsed(needle: str) -> list[tuple[str, ast.Module]]:
    """The modules whose text has `needle`, parsed."""
    return [(name, ast.parse(text, name)) for name, text in sources() if needle in text]


def _called(decorator: ast.expr, name: str) -> ast.Call | None:
    """The decorator `@name(...)` (or `@hypothesis.name(...)`), if this is one."""
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return decorator if called == name else None


def _without_deadline(call: ast.Call, module: ast.Module) -> bool:
    """Whether `settings(...)` says deadline=None, itself or through the settings it extends."""
    for keyword in call.keywords:
        if keyword.arg == "deadline":
            return isinstance(keyword.value, ast.Constant) and keyword.value.value is None
    if call.args and isinstance(call.args[0], ast.Name):
        parent = call.args[0].id
        for statement in module.body:
            if (
                isinstance(statement, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == parent for t in statement.targets)
                and isinstance(statement.value, ast.Call)
            ):
                return _without_deadline(statement.value, module)
    return False


class SuiteRules(SynchronousTestCase):
    def test_every_property_test_has_settings_without_a_deadline(self) -> None:
        wrong = []
        checked = 0
        for name, module in parsed("@given"):
            for node in ast.walk(module):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if not any(_called(d, "given") for d in node.decorator_list):
                    continue
                checked += 1
                settings = [c for d in node.decorator_list if (c := _called(d, "settings"))]
                if not settings or not _without_deadline(settings[0], module):
                    wrong.append(f"{name}:{node.lineno} {node.name}")
        self.assertGreater(checked, 40)  # the reading finds the suite's property tests
        self.assertEqual(wrong, [], "@given without @settings(..., deadline=None)")

    def test_no_loop_against_a_deadline_of_its_own(self) -> None:
        # A loop that does a step and checks `reactor.seconds()` against a deadline
        # on each pass is `until` written out again: the step goes in its condition.
        found = [
            f"{name}:{text.count(chr(10), 0, match.start()) + 1}"
            for name, text in sources()
            if name not in WAITS and name != THIS
            for match in DEADLINE.finditer(text)
        ]
        self.assertEqual(found, [], "poll with tests.support.waiting.until(step, ...)")

    def test_no_private_polling_helper(self) -> None:
        found = [
            f"{name} {match[1]}"
            for name, text in sources()
            if name not in WAITS
            for match in POLLING_HELPER.finditer(text)
        ]
        self.assertEqual(found, [], "wait with tests.support.waiting.until")

    def test_a_module_that_starts_something_is_marked_slow(self) -> None:
        unmarked = []
        texts = dict(sources())
        for module, why in test_modules().items():
            path = module.replace(".", "/") + ".py"
            if why is None and path != THIS and (found := STARTS_SOMETHING.search(texts[path])):
                unmarked.append(f"{module} names {found[0]}")
        self.assertEqual(unmarked, [], "put `# slow: <why>` under the docstring")

    def test_no_module_binds_suppress(self) -> None:
        # trial reads a module's (a class's, a method's) `suppress` as its list of
        # warnings to silence: contextlib.suppress imported by that name errors
        # every test of the module ("'ABCMeta' object is not iterable").
        binding = re.compile(r"^from contextlib import .*\bsuppress\b", re.MULTILINE)
        found = [name for name, text in sources() if binding.search(text)]
        self.assertEqual(found, [], "import contextlib; contextlib.suppress(...)")

    def test_no_hand_written_polling_loop(self) -> None:
        # `while not x: await deferLater(...)`, with or without an assertion on a
        # deadline, or `for _ in range(100): if x: break; await deferLater(...)` (a
        # bound counted in passes, as short as 1 s): what `until` does, with a
        # timeout and a message saying what.
        sleeps = {"deferLater", "sleep", "_sleep"}

        def sleeping(statement: ast.stmt) -> bool:
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Await)
                    and isinstance(statement.value.value, ast.Call)):  # fmt: skip
                return False
            func = statement.value.value.func
            return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")) in sleeps

        def asserting(statement: ast.stmt) -> bool:
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
                return False
            return str(getattr(statement.value.func, "attr", "")).startswith("assert")

        def leaving(statement: ast.stmt) -> bool:
            # `if x: break` (or return): the loop's condition, written in its body.
            return isinstance(statement, ast.If) and not statement.orelse and all(
                isinstance(s, ast.Break | ast.Return | ast.Continue) for s in statement.body
            )

        def counted(node: ast.AST) -> bool:
            return isinstance(node, ast.For) and isinstance(node.iter, ast.Call) \
                and getattr(node.iter.func, "id", None) == "range"

        found = [
            f"{name}:{node.lineno}"
            for name, module in parsed("await ")
            if name not in WAITS
            for node in ast.walk(module)
            if (isinstance(node, ast.While) or counted(node))
            and any(sleeping(s) for s in getattr(node, "body", ()))
            and all(sleeping(s) or asserting(s) or leaving(s) for s in getattr(node, "body", ()))
        ]
        self.assertEqual(found, [], "wait with tests.support.waiting.until")
