"""The package's layers point one way: imports read from the sources with `ast`.

Every vinom module belongs to a unit (a subpackage of vinom, or a single module
at its top). Every unit has a rank (`RANKS`, docs/architecture.md) and a list of
the units it may import (`MAY_IMPORT`, the same table as docs/architecture.md's
"Layers"): a module imports modules of its own unit or of a unit on its list,
and no unit on a list has a higher rank nor leads back to it. Every import counts:
`import` and `from` forms, relative or absolute, at module level or inside a
function (a deferred import is still a dependency), and a string constant
naming a vinom module as `importlib` (or a "module:attribute" setting) would
load it. A new top-level module has no rank until it is listed here, and fails
the test until then.

The fleet (`FLEET`: the Redis wing, the gateway and the relay, and `fleet/`, the
wiring that offers them to the server as a plugin, with Agones) stands beside the
core: no module of the core imports one of its modules, at all; the server finds
it as a Twisted plugin (vinom.server.fleet).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import vinom
from tests.support.doc_examples import DOCS

PACKAGE = Path(vinom.__file__).parent

RANKS: Mapping[str, int] = {
    # 0: records every layer shares, and small helpers that import nothing of vinom.
    "vinom": 0,  # the package's face: its version
    "match": 0,  # Ticket, Match, MatchEnded, match ids, their JSON
    "codes": 0,  # join codes of open rooms and parties
    "identity": 0,  # player ids, reconnection secrets
    "errors": 0,  # BackendUnavailable, UnknownGame, LobbyError: errors of more than one layer
    "net": 0,  # rate limits, wake-ups, client addresses, web origins
    "protocol": 1,
    "games": 2,
    "rooms": 3,
    "matchmaking": 4,
    "parties": 4,
    "store": 4,
    "accounts": 4,  # who a player is (authenticators) and what persists of them
    "hosting": 5,
    "lobby": 6,
    # 7: the gateway in front of lobbies (it knows the lobby's first frame, not its code).
    "gateway": 7,
    # 8: the Redis wing: every shared backend that lives in Redis.
    "cluster": 8,
    # 9: server wiring: the twistd plugin's service and what only it starts.
    "server": 9,
    # 10: programs a player or developer runs.
    "client": 10,
    "cli": 10,
    "scaffold": 10,
    # 10: the fleet's plugin: the Redis wing, the gateway, the relay and Agones offered to
    # the server through vinom.server.fleet.IFleet.
    "fleet": 10,
}

# The fleet's units: what spreads the server over processes. The core (every other unit)
# never imports them; the server finds the fleet as a plugin.
FLEET = frozenset({"gateway", "cluster", "fleet"})

# Floor 0: every unit above it may import these (they import nothing of vinom).
FLOOR_0 = frozenset({"vinom", "match", "codes", "identity", "errors", "net"})
_STACK = FLOOR_0 | {"protocol", "games", "rooms"}

# Which unit may import which (besides itself): docs/architecture.md's table "may import",
# kept equal to it by a test. Ranks alone are ceilings; this is the documented graph.
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    **{unit: frozenset() for unit in FLOOR_0},
    "protocol": FLOOR_0,
    "games": FLOOR_0 | {"protocol"},
    "rooms": FLOOR_0 | {"protocol", "games"},
    # Floor 4 side by side: none of its units imports another.
    "matchmaking": _STACK,
    "parties": _STACK,
    "store": _STACK,
    "accounts": frozenset({"match", "identity", "errors", "net"}),
    # A host runs the matches it is handed: it never learns how they were formed or who
    # the players' accounts are.
    "hosting": _STACK | {"store"},
    "lobby": _STACK | {"matchmaking", "parties", "store", "accounts", "hosting"},
    # The gateway reads a lobby's first frame and the relay's route tokens, nothing of
    # the lobby's own code.
    "gateway": FLOOR_0 | {"protocol"},
    # The Redis wing implements the interfaces of floors 4 and 5 and stores the gateway's
    # rules; the lobby uses it only through those interfaces.
    "cluster": _STACK | {"matchmaking", "parties", "store", "accounts", "hosting", "gateway"},
    # The server wiring builds everything of the core; a fleet it finds as a plugin.
    "server": _STACK | {"matchmaking", "parties", "store", "accounts", "hosting", "lobby"},
    # The fleet's plugin: the server's seam (vinom.server.fleet) filled with the Redis
    # wing, the gateway, the relay and Agones.
    "fleet": _STACK
    | {"matchmaking", "parties", "store", "accounts", "hosting", "lobby", "gateway", "cluster",
       "server"},
    # A player's program speaks the wire (protocol/, the lobby's frames it writes itself)
    # and replays records (rooms/): it shares no code with the lobby or a host.
    "client": _STACK | {"accounts"},
    "scaffold": FLOOR_0,
    # The `vinom` command: the client's programs, the scaffold, the server's fleet seam
    # (`vinom replay --redis` through it) and the account store's records (`vinom accounts`).
    "cli": _STACK | {"accounts", "client", "scaffold", "server"},
}

# A string that names a vinom module the way importlib or a "module:attribute" setting does.
_MODULE_NAME = re.compile(r"vinom(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_][\w.]*)?")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every dotted vinom name the module `name` (with this `source`) imports or names
    as a module in a string; `from vinom.x import y` gives vinom.x and vinom.x.y (the
    caller keeps those that are modules)."""
    found: set[str] = set()
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_NAME.fullmatch(node.value)
        ):
            found.add(node.value.partition(":")[0])
    return {n for n in found if n == "vinom" or n.startswith("vinom.")}


def unit_of(module: str) -> str:
    """The unit a module belongs to: "vinom" for the package itself, else the first
    name under vinom (a subpackage or a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each vinom module -> the vinom modules it imports."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        names = imported_names(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        graph[name] = {n for n in names if n in paths}
    return graph


def upward_imports(
    graph: Mapping[str, Iterable[str]], ranks: Mapping[str, int] = RANKS
) -> list[str]:
    """Each import of a higher rank than its importer's, as "importer -> imported"."""
    wrong = []
    for name, imported in sorted(graph.items()):
        for other in sorted(imported):
            if ranks[unit_of(other)] > ranks[unit_of(name)]:
                wrong.append(
                    f"{name} ({ranks[unit_of(name)]}) -> {other} ({ranks[unit_of(other)]})"
                )
    return wrong


def forbidden_imports(
    graph: Mapping[str, Iterable[str]], allowed: Mapping[str, Iterable[str]] = MAY_IMPORT
) -> list[str]:
    """Each import of a unit its importer's unit may not import, as "importer -> imported"."""
    return [
        f"{name} -> {other}"
        for name, imported in sorted(graph.items())
        for other in sorted(imported)
        if unit_of(other) != unit_of(name) and unit_of(other) not in allowed[unit_of(name)]
    ]


def fleet_imports(graph: Mapping[str, Iterable[str]], fleet: Iterable[str] = FLEET) -> list[str]:
    """Each import of a fleet module by a core module, as "importer -> imported"."""
    units = frozenset(fleet)
    return [
        f"{name} -> {other}"
        for name, imported in sorted(graph.items())
        for other in sorted(imported)
        if unit_of(name) not in units and unit_of(other) in units
    ]


def documented_table(text: str) -> dict[str, frozenset[str]]:
    """docs/architecture.md's table "unit | may import": each row's unit -> its units.

    A unit is written as in the docs (`lobby/`, `match.py`, `vinom/__init__.py`);
    "floor 0" stands for every unit of floor 0, and "nothing" for none."""
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = section.split("| unit | may import |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]

    def unit(written: str) -> str:
        written = written.strip().strip("`")
        return (
            "vinom" if written == "vinom/__init__.py" else written.removesuffix(".py").rstrip("/")
        )

    table: dict[str, frozenset[str]] = {}
    for row in rows:
        units, may = (cell.strip() for cell in row.strip().strip("|").split("|"))
        allowed: set[str] = set()
        for item in (i.strip() for i in may.split(",")):
            if item == "floor 0":
                allowed |= FLOOR_0
            elif item != "nothing":
                allowed.add(unit(item))
        for written in units.split(","):
            table[unit(written)] = frozenset(allowed)
    return table


def find_circle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One circle of the graph (first node repeated at the end), or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for other in sorted(graph.get(node, ())):
            if other == node:
                continue
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state:
                circle = visit(other, [*path, other])
                if circle:
                    return circle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            circle = visit(node, [node])
            if circle:
                return circle
    return None


def unit_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The import graph between units (packages and top-level modules)."""
    units: dict[str, set[str]] = {}
    for name, imported in graph.items():
        units.setdefault(unit_of(name), set()).update(unit_of(o) for o in imported)
    return units


def _package(files: Mapping[str, str], root: Path) -> Path:
    """A throwaway copy of a package layout: {relative path: source} under root/vinom."""
    for relative, source in files.items():
        path = root / "vinom" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root / "vinom"


class LayerTests(SynchronousTestCase):
    def test_every_unit_has_a_rank(self) -> None:
        """A new top-level module or subpackage fails until it is given its place here."""
        unranked = sorted({unit_of(name) for name in import_graph()} - RANKS.keys())
        self.assertEqual(unranked, [], "give these a rank in tests/test_layers.py")

    def test_no_import_points_up(self) -> None:
        self.assertEqual(upward_imports(import_graph()), [])

    def test_no_circle_between_packages(self) -> None:
        self.assertIsNone(find_circle(unit_graph(import_graph())))

    def test_every_import_is_a_documented_edge(self) -> None:
        """A unit imports only the units docs/architecture.md lets it import."""
        self.assertEqual(forbidden_imports(import_graph()), [])

    def test_the_documented_table_is_this_table(self) -> None:
        """docs/architecture.md's "may import" table says what `MAY_IMPORT` says."""
        text = (DOCS / "architecture.md").read_text(encoding="utf-8")
        self.assertEqual(documented_table(text), dict(MAY_IMPORT))

    def test_every_documented_edge_points_down(self) -> None:
        """Each unit's list holds units of its own rank or lower, in no circle."""
        self.assertEqual(MAY_IMPORT.keys(), RANKS.keys())
        up = [f"{u} -> {o}" for u, may in MAY_IMPORT.items() for o in may if RANKS[o] > RANKS[u]]
        self.assertEqual(up, [])
        self.assertIsNone(find_circle(MAY_IMPORT))

    def test_only_the_fleet_imports_the_redis_wing(self) -> None:
        """Below the fleet's plugin nothing knows whether its state is shared, nor what
        shares it; the server finds the fleet as a plugin."""
        importers = sorted(u for u, may in MAY_IMPORT.items() if "cluster" in may)
        self.assertEqual(importers, ["fleet"])

    def test_no_core_module_imports_the_fleet(self) -> None:
        """No module outside the fleet's units imports one of theirs (at module level,
        in a function or by name): the core runs, and its tests pass, without them."""
        self.assertEqual(fleet_imports(import_graph()), [])
        core = sorted(u for u in MAY_IMPORT if u not in FLEET and MAY_IMPORT[u] & FLEET)
        self.assertEqual(core, [])

    def test_no_import_circles(self) -> None:
        graph = {
            name: {o for o in imported if o != "vinom"} for name, imported in import_graph().items()
        }
        self.assertIsNone(find_circle(graph))


class CheckerTests(SynchronousTestCase):
    """The checks above catch what they are for, on small made-up packages."""

    def graph_of(self, files: Mapping[str, str]) -> dict[str, set[str]]:
        base = {"__init__.py": "", "games/__init__.py": "", "client/__init__.py": "",
                "client/views.py": "", "games/maze.py": "", "match.py": ""}  # fmt: skip
        return import_graph(_package({**base, **files}, Path(self.mktemp())))

    def test_every_form_of_an_upward_import_is_caught(self) -> None:
        forms = {
            "from vinom.client.views import MazeUI\n": "vinom.client.views",
            "import vinom.client.views\n": "vinom.client.views",
            "from vinom.client import views\n": "vinom.client.views",
            "from ..client import views\n": "vinom.client.views",
            "def late():\n    from vinom.client.views import MazeUI\n": "vinom.client.views",
            'terminal_view = "vinom.client.views:MazeUI"\n': "vinom.client.views",
            'import importlib\nimportlib.import_module("vinom.client.views")\n':
                "vinom.client.views",
        }  # fmt: skip
        for source, target in forms.items():
            graph = self.graph_of({"games/maze.py": source})
            self.assertIn(f"vinom.games.maze (2) -> {target} (10)", upward_imports(graph), source)

    def test_downward_and_same_rank_imports_pass(self) -> None:
        graph = self.graph_of({
            "client/views.py": "from vinom.games.maze import X\nfrom vinom.match import Match\n",
            "client/tui.py": "from vinom.client.views import MazeUI\n",
            "games/maze.py": '"""A docstring naming vinom.client.views in words."""\n',
        })  # fmt: skip
        self.assertEqual(upward_imports(graph), [])

    def test_a_circle_between_packages_is_caught(self) -> None:
        graph = self.graph_of({
            "games/maze.py": "from vinom.client.views import MazeUI\n",
            "client/views.py": "from vinom.games import maze\n",
        })  # fmt: skip
        self.assertEqual(find_circle(unit_graph(graph)), ["client", "games", "client"])

    def test_an_unranked_top_level_module_is_caught(self) -> None:
        graph = self.graph_of({"newthing.py": "from vinom.match import Match\n"})
        self.assertEqual(sorted({unit_of(n) for n in graph} - RANKS.keys()), ["newthing"])

    def test_the_client_importing_the_redis_wing_is_caught(self) -> None:
        graph = self.graph_of({
            "cluster/__init__.py": "", "cluster/client.py": "",
            "client/views.py": "from vinom.cluster.client import RedisClient\n",
            "fleet/__init__.py": "", "fleet/shared.py": "from vinom.cluster import client\n",
        })  # fmt: skip
        self.assertEqual(forbidden_imports(graph), ["vinom.client.views -> vinom.cluster.client"])

    def test_a_core_module_importing_the_fleet_is_caught(self) -> None:
        """However it is imported: at module level, inside a function, or by name."""
        graph = self.graph_of({
            "fleet/__init__.py": "", "fleet/shared.py": "", "gateway/__init__.py": "",
            "gateway/relay.py": "", "cluster/__init__.py": "", "cluster/client.py": "",
            "server/__init__.py": "",
            "server/roles.py": "def build():\n    from vinom.cluster.client import RedisClient\n",
            "server/tap.py": "from vinom.gateway import relay\n",
            "server/ops.py": 'shared = "vinom.fleet.shared:build_shared"\n',
            "fleet/plugin.py": "from vinom.cluster import client\nfrom vinom.server import tap\n",
        })  # fmt: skip
        self.assertEqual(fleet_imports(graph), [
            "vinom.server.ops -> vinom.fleet.shared",
            "vinom.server.roles -> vinom.cluster.client",
            "vinom.server.tap -> vinom.gateway",
            "vinom.server.tap -> vinom.gateway.relay",
        ])  # fmt: skip

    def test_a_downward_import_off_the_documented_graph_is_caught(self) -> None:
        """Below in rank is not enough: the client and the gateway never import the lobby,
        the floor-4 units never import each other, a host never imports the matchmaker."""
        graph = {
            "vinom.client.lobby": {"vinom.lobby.codec", "vinom.protocol.wire"},
            "vinom.gateway.sniff": {"vinom.lobby.codec", "vinom.net.limits"},
            "vinom.parties.memory": {"vinom.matchmaking.interfaces"},
            "vinom.hosting.service": {"vinom.matchmaking.interfaces", "vinom.store.interfaces"},
            "vinom.accounts.interfaces": {"vinom.protocol.wire", "vinom.identity"},
            "vinom.lobby.codec": {"vinom.protocol.wire"},
            "vinom.protocol.wire": set(),
        }
        self.assertEqual(upward_imports(graph), [])
        self.assertEqual(
            forbidden_imports(graph),
            [
                "vinom.accounts.interfaces -> vinom.protocol.wire",
                "vinom.client.lobby -> vinom.lobby.codec",
                "vinom.gateway.sniff -> vinom.lobby.codec",
                "vinom.hosting.service -> vinom.matchmaking.interfaces",
                "vinom.parties.memory -> vinom.matchmaking.interfaces",
            ],
        )

    def test_a_made_up_client_to_lobby_import_is_caught(self) -> None:
        """Read from the sources: a client module importing the lobby's codec fails."""
        graph = self.graph_of({
            "lobby/__init__.py": "", "lobby/codec.py": "",
            "client/views.py": "from ..lobby.codec import encode\n",
        })  # fmt: skip
        self.assertEqual(forbidden_imports(graph), ["vinom.client.views -> vinom.lobby.codec"])

    def test_the_documented_table_is_read_as_written(self) -> None:
        text = (
            "# A\n\n## Layers\n\n| unit | may import |\n|---|---|\n"
            "| `match.py`, `vinom/__init__.py` | nothing |\n"
            "| `protocol/` | floor 0 |\n"
            "| `client/` | floor 0, `protocol/`, `cli.py` |\n\nMore.\n\n## Processes\n"
        )
        self.assertEqual(
            documented_table(text),
            {
                "match": frozenset(),
                "vinom": frozenset(),
                "protocol": FLOOR_0,
                "client": FLOOR_0 | {"protocol", "cli"},
            },
        )
