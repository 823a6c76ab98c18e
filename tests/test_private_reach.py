"""No module of vinom reaches into another's private names (ours or a library's):
read from the sources with `ast`.

A reach is an import of a `_name` (`from twisted.web.client import _X`, `import
a._b`), `getattr`/`setattr`/`hasattr`/`delattr` with a `"_name"` constant, or
`x._name` where `x` is anything but `self` or `cls`. A module's own private names
are its own to use (`self._x`, `_helper()`); another class's, module's or
library's are not: their owners may change them without a word.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import vinom

PACKAGE = Path(vinom.__file__).parent
_ATTRIBUTE_CALLS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def reaches(source: str) -> Iterator[tuple[int, str]]:
    """Each reach into a private name in `source`: its line and its text."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names if _private(alias.name)]
            parts = (node.module or "").split(".")
            if names or any(_private(part) for part in parts):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Import):
            if any(_private(part) for alias in node.names for part in alias.name.split(".")):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Call):
            func, args = node.func, node.args
            if (
                isinstance(func, ast.Name) and func.id in _ATTRIBUTE_CALLS and len(args) >= 2
                and isinstance(args[1], ast.Constant) and isinstance(args[1].value, str)
                and _private(args[1].value)
                and not (isinstance(args[0], ast.Name) and args[0].id in ("self", "cls"))
            ):  # fmt: skip
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                yield node.lineno, ast.unparse(node)


def package_reaches(package: Path = PACKAGE) -> list[str]:
    return [
        f"{path.relative_to(package.parent)}:{line}: {text}"
        for path in sorted(package.rglob("*.py"))
        for line, text in reaches(path.read_text("utf-8"))
    ]


class PrivateReachTests(SynchronousTestCase):
    def test_vinom_reaches_into_no_private_name(self) -> None:
        self.assertEqual(package_reaches(), [])

    def test_each_kind_of_reach_is_found(self) -> None:
        source = "\n".join([
            "from twisted.web.client import Agent, _HTTP11ClientFactory",
            "from twisted.python._textattributes import X",
            "import twisted.python._shellcomp",
            "first = getattr(handler, '_connected', None)",
            "pool._factory = F",
            "self.router._release(entry)",
            "other._chars[0]",
        ])  # fmt: skip
        self.assertEqual([line for line, _ in reaches(source)], [1, 2, 3, 4, 5, 6, 7])

    def test_own_and_special_names_are_no_reach(self) -> None:
        source = "\n".join([
            "from __future__ import annotations",
            "self._x = 1",
            "cls._instances = {}",
            "getattr(self, '_cache', None)",
            "_helper(self.__class__, other.__dict__)",
            "name.startswith('_')",
        ])  # fmt: skip
        self.assertEqual(list(reaches(source)), [])
