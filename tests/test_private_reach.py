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


# namedtuple's own methods and fields (urllib's SplitResult is one): public API whose
# underscore only keeps them apart from the tuple's field names.
_NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})

# The private names of a library that one vinom module may reach, each for a bound that
# the library's public API cannot give, with the versions it is checked against:
# qh3 grows a stream's receive buffer and its flow-control windows as the peer asks
# (docs/web.md, "Receive budget"); vinom/hosting/quic.py checks every STREAM and
# CRYPTO frame before qh3's own handlers, writes the windows itself, and reads the
# HTTP/3 layer's unparsed frames. It refuses to load on a qh3 without these handlers,
# and tests/hosting/test_webtransport_budget.py runs the attack against the installed
# qh3 (setup.py's webtransport extra: qh3>=1.9.4,<2). qh3 keeps its `Buffer` (QUIC's varints) in
# `qh3._hazmat` alone.
ALLOWED_REACHES: dict[str, frozenset[str]] = {
    "vinom/hosting/quic.py": frozenset({"_handle_stream_frame", "_handle_crypto_frame", "_hazmat"}),
    "vinom/hosting/webtransport.py": frozenset({"_stream", "_hazmat"}),
    "vinom/hosting/webtransport_session.py": frozenset({"_hazmat"}),
}  # fmt: skip


def _private(name: str) -> bool:
    return (
        name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))
        and name not in _NAMEDTUPLE_API
    )


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


def _allowed(path: str, text: str) -> bool:
    return any(f".{name}" in text or f"'{name}'" in text
               for name in ALLOWED_REACHES.get(path, ()))  # fmt: skip


def package_reaches(package: Path = PACKAGE) -> list[str]:
    found = (
        (str(path.relative_to(package.parent)), line, text)
        for path in sorted(package.rglob("*.py"))
        for line, text in reaches(path.read_text("utf-8"))
    )
    return [f"{path}:{line}: {text}" for path, line, text in found if not _allowed(path, text)]


def allowed_but_unused(package: Path = PACKAGE) -> list[str]:
    """Each allowance of `ALLOWED_REACHES` its module no longer makes (a stale one)."""
    stale = []
    for path, names in sorted(ALLOWED_REACHES.items()):
        texts = [text for _, text in reaches((package.parent / path).read_text("utf-8"))]
        stale += [f"{path}: {name}" for name in sorted(names)
                  if not any(f".{name}" in t or f"'{name}'" in t for t in texts)]  # fmt: skip
    return stale


class PrivateReachTests(SynchronousTestCase):
    def test_vinom_reaches_into_no_private_name(self) -> None:
        self.assertEqual(package_reaches(), [])

    def test_every_allowed_reach_is_still_made(self) -> None:
        self.assertEqual(allowed_but_unused(), [])

    def test_namedtuple_methods_are_no_reach(self) -> None:
        self.assertEqual(list(reaches("parts._replace(path='/')\nrow._asdict()")), [])

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


# The one module of vinom that may import txredisapi: every workaround of its internals
# lives there, each with the txredisapi version it is for (docs/scaling.md).
TXREDISAPI_ADAPTER = "vinom/cluster/txredisapi_adapter.py"


def _txredisapi_names(tree: ast.AST) -> set[str]:
    """The names a module binds to txredisapi or to what it imports from it."""
    names = {"txredisapi"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                         if alias.name.split(".")[0] == "txredisapi")  # fmt: skip
        elif isinstance(node, ast.ImportFrom) and _from_txredisapi(node):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _from_txredisapi(node: ast.ImportFrom) -> bool:
    return not node.level and (node.module or "").split(".")[0] == "txredisapi"


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _txredisapi_classes(tree: ast.AST, names: set[str]) -> Iterator[ast.ClassDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(_root(base) in names for base in node.bases):
            yield node


def txredisapi_reaches(source: str) -> Iterator[tuple[int, str]]:
    """Each use of txredisapi in `source` that only its adapter may make: its line and text.

    Any import of txredisapi (what is imported can then be used without its
    name: `from txredisapi import RedisFactory`), and with it every class built
    on a txredisapi class and every private name reached (`private_txredisapi_reaches`).
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == "txredisapi" for alias in node.names):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom) and _from_txredisapi(node):
            yield node.lineno, ast.unparse(node)
    for cls in _txredisapi_classes(tree, _txredisapi_names(tree)):
        yield cls.lineno, f"class {cls.name}({', '.join(map(ast.unparse, cls.bases))})"


def private_txredisapi_reaches(source: str) -> Iterator[tuple[int, str]]:
    """Each private name of txredisapi `source` touches: one imported from it, an
    attribute of txredisapi or of what it imported from it (`txredisapi._SlotFactory`,
    `RedisFactory._connectionReady`), or `self._name` in a class built on a
    txredisapi class (txredisapi's private state, which the general rule takes
    for the class's own)."""
    tree = ast.parse(source)
    names = _txredisapi_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _from_txredisapi(node):
            if any(_private(alias.name) for alias in node.names):
                yield node.lineno, ast.unparse(node)
        elif (
            isinstance(node, ast.Attribute) and _private(node.attr)
            and isinstance(node.value, ast.Name) and node.value.id in names
        ):  # fmt: skip
            yield node.lineno, ast.unparse(node)
    for cls in _txredisapi_classes(tree, names):
        for inner in ast.walk(cls):
            if (
                isinstance(inner, ast.Attribute) and _private(inner.attr)
                and isinstance(inner.value, ast.Name) and inner.value.id in ("self", "cls")
            ):  # fmt: skip
                yield inner.lineno, ast.unparse(inner)


class TxredisapiReachTests(SynchronousTestCase):
    def test_only_the_adapter_uses_txredisapi(self) -> None:
        found = [
            f"{path.relative_to(PACKAGE.parent)}:{line}: {text}"
            for path in sorted(PACKAGE.rglob("*.py"))
            if path.relative_to(PACKAGE.parent).as_posix() != TXREDISAPI_ADAPTER
            for line, text in txredisapi_reaches(path.read_text("utf-8"))
        ]
        self.assertEqual(found, [])

    def test_the_adapter_itself_reaches_no_private_name_of_txredisapi(self) -> None:
        # Its workarounds lean on public but undocumented parts (RedisFactory's
        # `deferred`, `startConnecting`, ...): a private one would be listed here.
        adapter = (PACKAGE.parent / TXREDISAPI_ADAPTER).read_text("utf-8")
        self.assertIn("import txredisapi", adapter)
        self.assertEqual(list(private_txredisapi_reaches(adapter)), [])
        self.assertEqual(list(reaches(adapter)), [])

    def test_each_kind_of_txredisapi_use_is_found(self) -> None:
        source = "\n".join([
            "import txredisapi",
            "from txredisapi import RedisFactory",
            "import txredisapi as redis",
            "class P(txredisapi.SubscriberProtocol):",
            "    def f(self):",
            "        return self._waiting_for_connect",
            "txredisapi._SlotFactory",
            "from txredisapi import _PoolSlot",
            "class Q(redis.RedisFactory): pass",
            "RedisFactory._connectionReady(f, c)",
        ])  # fmt: skip
        self.assertEqual(sorted(line for line, _ in txredisapi_reaches(source)),
                         [1, 2, 3, 4, 8, 9])  # fmt: skip
        self.assertEqual(sorted(line for line, _ in private_txredisapi_reaches(source)),
                         [6, 7, 8, 10])  # fmt: skip

    def test_other_redis_names_are_no_txredisapi_use(self) -> None:
        source = "\n".join([
            "from vinom.cluster import txredisapi_adapter",
            "pool = txredisapi_adapter.pool(endpoint, name='x', db=0, size=1)",
            "class S(Subscription):",
            "    def f(self):",
            "        return self._waiters",
        ])  # fmt: skip
        self.assertEqual(list(txredisapi_reaches(source)), [])
        self.assertEqual(list(private_txredisapi_reaches(source)), [])
