"""Interest management: which entities are near a point, without comparing every pair.

A real-time game cuts each player's view to what is near them. Filtering every
entity for every player costs N² distance checks a tick (64 players: 4,096);
`Grid` buckets the entities into square cells once per tick (N steps) and
answers "which entities are within r of (x, y)" from the cells the circle
touches only, so the views of N players cost about N·k, k being the entities
in a few cells around each player (docs/games.md, "Only what a player can see").

A `Grid` is immutable and built from the positions of one state, as a game's
state is: build it from the state in `view` (or once per state and keep it
beside it) and query it as often as you like. Entities are named by their index
in the coordinate sequences it was built from.

With `wrap`, the world is a torus of that period on both axes (an entity
leaving at the right comes back at the left): positions are taken modulo the
period and distances are measured the shorter way round, `d = abs(a - b)`
then `min(d, wrap - d)` on each axis.

`near` runs once per player per tick, so this module is compiled with mypyc
with the packet path (setup.py): `Grid` is a plain typed class for that reason
(a compiled class cannot hold attrs' fields), a value all the same: equal and
hashed by what it was built from, its fields read-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Grid"]

# How far past the radius the cell range reaches, relative to the coordinates'
# size: the distance test rounds, so an entity just beyond r (by an ulp) can pass
# it, and a cell range computed with rounded bounds must still hold that entity.
_SLACK = 1e-9


class Grid:
    """Entities bucketed by cell: build with `Grid.build`, ask with `near`."""

    def __init__(
        self,
        xs: tuple[float, ...],
        ys: tuple[float, ...],
        cell: float,
        wrap: float,
        count: int,
        cells: dict[tuple[int, int], list[int]],
    ) -> None:
        self._xs = xs
        self._ys = ys
        self._cell = cell
        self._wrap = wrap
        self._count = count
        self._cells = cells

    @property
    def xs(self) -> tuple[float, ...]:
        return self._xs

    @property
    def ys(self) -> tuple[float, ...]:
        return self._ys

    @property
    def cell(self) -> float:
        """The side of a cell (with `wrap`, stretched so that whole cells fill the period)."""
        return self._cell

    @property
    def wrap(self) -> float:
        """The torus' period, or 0.0 for an unbounded plane."""
        return self._wrap

    @property
    def count(self) -> int:
        """Cells per side on a torus (0 on a plane)."""
        return self._count

    @property
    def cells(self) -> dict[tuple[int, int], list[int]]:
        """(column, row) -> the indices of the entities in that cell, ascending."""
        return self._cells

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and _built_from(self) == _built_from(other)

    def __hash__(self) -> int:
        return hash(_built_from(self))

    def __repr__(self) -> str:
        return (
            f"Grid(xs={self._xs!r}, ys={self._ys!r}, cell={self._cell!r}, "
            f"wrap={self._wrap!r}, count={self._count!r})"
        )

    @staticmethod
    def build(xs: Sequence[float], ys: Sequence[float], cell: float, wrap: float = 0.0) -> Grid:
        """Bucket the entities at (xs[i], ys[i]) into cells of side `cell`.

        Pick `cell` near the radius you will query with: a query then visits
        about nine cells. `wrap` > 0 makes the world a torus of that period.
        Costs one dict insertion per entity.
        """
        if not cell > 0 or not math.isfinite(cell):
            raise ValueError(f"cell must be a positive finite size, not {cell!r}")
        if not wrap >= 0 or not math.isfinite(wrap):
            raise ValueError(f"wrap must be 0 (no wrap) or a positive period, not {wrap!r}")
        xs, ys = tuple(xs), tuple(ys)
        if len(xs) != len(ys):
            raise ValueError(f"{len(xs)} x coordinates but {len(ys)} y coordinates")
        count = 0
        if wrap:
            # Whole cells tile the period, so a cell never straddles the seam.
            count = max(1, int(wrap // cell))
            cell = wrap / count
            # Positions on a torus are taken modulo its period (exact for those in
            # [0, wrap), which stay as they are).
            xs = tuple(x % wrap for x in xs)
            ys = tuple(y % wrap for y in ys)
        cells: dict[tuple[int, int], list[int]] = {}
        for i in range(len(xs)):
            if count:
                # min(): x % wrap / cell can round up to `count` for x just below wrap.
                key = (min(int(xs[i] / cell), count - 1), min(int(ys[i] / cell), count - 1))
            else:
                key = (math.floor(xs[i] / cell), math.floor(ys[i] / cell))
            bucket = cells.get(key)
            if bucket is None:
                cells[key] = [i]
            else:
                bucket.append(i)
        return Grid(xs, ys, cell, wrap, count, cells)

    def near(self, x: float, y: float, radius: float) -> list[int]:
        """The indices of the entities within `radius` of (x, y) (distance <= radius),
        in ascending order: exactly those a loop over every entity would keep with
        `dx * dx + dy * dy <= radius * radius`."""
        if not radius >= 0:
            raise ValueError(f"radius must be 0 or more, not {radius!r}")
        xs, ys, wrap = self._xs, self._ys, self._wrap
        limit = radius * radius
        kept: list[int] = []
        if wrap:
            x %= wrap
            y %= wrap
            for bucket in self._buckets(x, y, radius):
                for i in bucket:
                    dx = abs(xs[i] - x)
                    dy = abs(ys[i] - y)
                    # The shorter way round (as min(d, wrap - d), without the calls).
                    if wrap - dx < dx:
                        dx = wrap - dx
                    if wrap - dy < dy:
                        dy = wrap - dy
                    if dx * dx + dy * dy <= limit:
                        kept.append(i)
        else:
            for bucket in self._buckets(x, y, radius):
                for i in bucket:
                    dx = xs[i] - x
                    dy = ys[i] - y
                    if dx * dx + dy * dy <= limit:
                        kept.append(i)
        # Buckets come in cell order; callers want entity order (a view's order).
        kept.sort()
        return kept

    def _buckets(self, x: float, y: float, radius: float) -> list[list[int]]:
        """The buckets of every cell the circle may touch, each once."""
        cell, count, cells = self._cell, self._count, self._cells
        reach = radius + (abs(x) + abs(y) + radius + cell) * _SLACK
        # (`math.floor` and `cells.get` called as such: compiled, each is a C call,
        # where a local alias of either is a Python object called generically.)
        low_x, high_x = math.floor((x - reach) / cell), math.floor((x + reach) / cell)
        low_y, high_y = math.floor((y - reach) / cell), math.floor((y + reach) / cell)
        columns: range | list[int] = range(low_x, high_x + 1)
        rows: range | list[int] = range(low_y, high_y + 1)
        if count:
            # On a torus a range of `count` cells or more is every cell; otherwise
            # its cells are taken round the seam, each once.
            columns = range(count) if len(columns) >= count else [c % count for c in columns]
            rows = range(count) if len(rows) >= count else [r % count for r in rows]
        if len(columns) * len(rows) >= len(cells):
            # A radius wide against the cells: walking the occupied cells is cheaper
            # than probing mostly empty ones (this bounds a query by N).
            wanted_columns, wanted_rows = set(columns), set(rows)
            return [
                bucket
                for (column, row), bucket in cells.items()
                if column in wanted_columns and row in wanted_rows
            ]
        return [
            bucket
            for column in columns
            for row in rows
            if (bucket := cells.get((column, row))) is not None
        ]


def _built_from(grid: Grid) -> tuple[tuple[float, ...], tuple[float, ...], float, float, int]:
    """What a grid is built from, which makes it the value it is (its cells follow)."""
    return (grid.xs, grid.ys, grid.cell, grid.wrap, grid.count)
