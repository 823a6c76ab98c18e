"""The package's layers point one way: imports read from the sources with `ast`.

protocol <- rooms/games <- hosting <- lobby/matchmaking <- tap, clients beside
them (docs/architecture.md). Every import counts, at module level or inside a
function, since a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import vinom

PACKAGE = Path(vinom.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every vinom module `path` imports (`from vinom.x import y` counts as vinom.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {name for name in found if name == "vinom" or name.startswith("vinom.")}


def import_graph() -> dict[str, set[str]]:
    sources = [p for p in PACKAGE.rglob("*.py") if "bench" not in p.relative_to(PACKAGE).parts]
    modules = {module_name(p): p for p in sources}
    return {name: imports_of(path) & modules.keys() for name, path in modules.items()}


class LayerTests(SynchronousTestCase):
    def test_the_protocol_imports_nothing_from_the_layers_above_it(self) -> None:
        above = ("lobby", "matchmaking", "rooms", "hosting", "games", "client", "store", "tap",
                 "cli")  # fmt: skip
        for name, imported in import_graph().items():
            if name.startswith("vinom.protocol"):
                wrong = sorted(i for i in imported if i.partition(".")[2].split(".")[0] in above)
                self.assertEqual(wrong, [], f"{name} imports {wrong}")

    def test_no_import_circles(self) -> None:
        graph = import_graph()
        # Depth-first search for a back edge; the path names the circle.
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for other in sorted(graph[name]):
                if other == name or other == "vinom":
                    continue
                if state.get(other) == 1:
                    circle = [*path[path.index(other) :], other]
                    self.fail("import circle: " + " -> ".join(circle))
                if other not in state:
                    visit(other, [*path, other])
            state[name] = 2

        for name in sorted(graph):
            if name not in state:
                visit(name, [name])
