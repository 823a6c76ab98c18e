"""The rules the test suite keeps, read from its sources (nothing is run).

- Every property test (`@given`) says its `@settings` and has no deadline: a
  deadline is a wall-clock assertion (hypothesis's default fails an example
  slower than 200 ms), which a busy machine breaks; the number of examples is
  the test's own choice, in sight.
- A test waits for something on real sockets, processes or Redis with
  tests/support/waiting.py's `until`, not with a polling helper of its own.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

TESTS = Path(__file__).resolve().parent
# Private polling helpers this suite had, one per module, before `until`.
POLLING_HELPERS = {"wait_until", "wait_until_async", "_until", "_wait", "_wait_for"}
# Browser.wait_until is Selenium's own wait (WebDriverWait, in the driver's thread).
SELENIUM_WAIT = "tests/support/browser.py"


@cache
def sources() -> list[tuple[str, ast.Module]]:
    """Every module of tests/, parsed once."""
    return [
        (str(path.relative_to(TESTS.parent)), ast.parse(path.read_text(), str(path)))
        for path in sorted(TESTS.rglob("*.py"))
    ]


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
        for name, module in sources():
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

    def test_no_private_polling_helper(self) -> None:
        found = [
            f"{name}:{node.lineno} {node.name}"
            for name, module in sources()
            for node in ast.walk(module)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name in POLLING_HELPERS
            and name != SELENIUM_WAIT
        ]
        self.assertEqual(found, [], "wait with tests.support.waiting.until")
