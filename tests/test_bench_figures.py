"""docs/performance.md keeps one table of current figures: every scenario of
`python -m benchmarks` (and benchmarks/web_loss.py) has its row there, each with
the peer's column and what limits it; and the first page of the docs leads to
it. (tests/test_docs_limits.py keeps the page's size and cells in bounds.)"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from benchmarks.__main__ import SCENARIOS

DOCS = Path(__file__).resolve().parent.parent / "docs"
COLUMNS = ["scenario", "figure", "vinom", "peer: Colyseus", "floor", "target", "limited by"]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of `text`: its rows (the header first), each a list of cells."""
    found: list[list[list[str]]] = []
    for block in re.findall(r"(?:^\|.*\|\n)+", text, re.M):
        rows = [[cell.strip() for cell in line.strip()[1:-1].split("|")]
                for line in block.splitlines() if not line.startswith("|---")]  # fmt: skip
        found.append(rows)
    return found


class PerformanceTableTests(SynchronousTestCase):
    def test_one_table_of_figures_with_a_row_for_every_scenario(self) -> None:
        text = (DOCS / "performance.md").read_text("utf-8")
        figures = [table for table in tables(text) if "figure" in table[0]]
        self.assertEqual(len(figures), 1, "one table of figures, not one per section")
        [table] = figures
        self.assertEqual(table[0], COLUMNS)
        rows = table[1:]
        for row in rows:
            self.assertEqual(len(row), len(COLUMNS), row[0])
            _scenario, _figure, vinom, *_, limited_by = row
            self.assertTrue(vinom and limited_by, row[0])
        named = {re.split(r"[ `:(]", row[0], maxsplit=1)[0] for row in rows}
        self.assertEqual((set(SCENARIOS) | {"web_loss"}) - named, set())
        # The peer column holds Colyseus's figures, measured side by side.
        peer = " ".join(row[3] for row in rows)
        for figure in ("34.1-38.4 us", "48.6-55.1 us", "1.58-1.86 ms", "462-552 /s", "22-24 /s"):
            self.assertIn(figure, peer)

    def test_the_first_page_links_it(self) -> None:
        text = (DOCS / "getting-started.md").read_text("utf-8")
        self.assertIn("[performance.md](performance.md)", text)
