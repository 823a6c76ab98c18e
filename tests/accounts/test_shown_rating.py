"""The rating players are shown (docs/accounts.md, "Ratings"): 1000 for a new player,
never negative, and the one number of the leaderboard, the history and the `rating`
push. The docs' examples of those frames are what a real store and the lobby's
frame makers send for the story they tell: Ada's 12 ranked tictactoe matches, each
against a new player, all won but the 6th."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.doc_examples import DOCS
from vinom.accounts.interfaces import Identity
from vinom.accounts.ratings import MU, SIGMA, new_rating, rate
from vinom.accounts.records import RankedResult, Rating, RatingChange
from vinom.accounts.sql import store_from_url
from vinom.lobby.match_ratings import rating_frame
from vinom.lobby.rankings import history_row, leaderboard_row

RATED = ("rating", "mu", "sigma", "matches", "change", "result")


def first_match(winner_first: bool) -> float:
    """The shown rating of a new player after one match against another new player."""
    result = RankedResult("m-1", "tictactoe", "ranked", (("a",), ("b",)),
                          (1, 2) if winner_first else (2, 1))  # fmt: skip
    return rate(result, {})["a"].shown


class ShownRatingTests(SynchronousTestCase):
    def test_a_new_player_starts_at_1000(self) -> None:
        self.assertEqual(new_rating().shown, 1000.0)
        self.assertEqual(Rating(MU, SIGMA).conservative, 0.0)

    def test_a_first_loss_is_below_1000_and_positive_a_first_win_above(self) -> None:
        self.assertEqual(round(first_match(False), 2), 890.01)
        self.assertEqual(round(first_match(True), 2), 1206.26)

    def test_it_is_never_negative_and_keeps_the_board_order_above_0(self) -> None:
        self.assertEqual(Rating(-2000.0, 400.0).shown, 0.0)
        ratings = [Rating(mu, sigma) for mu, sigma in ((900, 300), (1500, 100), (2300, 90))]
        shown = [r.shown for r in ratings]
        self.assertEqual(shown, sorted(shown))
        self.assertEqual([r.conservative for r in ratings],
                         [s - 1000.0 for s in shown])  # fmt: skip

    def test_a_change_is_how_far_the_shown_rating_moved(self) -> None:
        change = RatingChange("a", Rating(1500.0, 500.0), Rating(1341.88, 483.95))
        self.assertAlmostEqual(change.change, change.after.shown - 1000.0)
        # Down at 0, a loss changes nothing a player sees.
        floor = RatingChange("a", Rating(-3000.0, 90.0), Rating(-3100.0, 89.0))
        self.assertEqual(floor.change, 0.0)


def doc_frames(document: str) -> list[dict[str, Any]]:
    """Every one-line JSON object of docs/`document`'s code blocks."""
    text = (DOCS / document).read_text(encoding="utf-8")
    found = []
    for line in re.findall(r"^(\{.*\})$", text, flags=re.M):
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def rated(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k in RATED}


class DocExampleTests(TestCase):
    async def test_the_docs_show_what_the_server_sends(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        store = store_from_url(None, directory)
        self.addCleanup(store.close)
        await store.start()
        ada = (await store.account_for(Identity("jwt", "ada"), "Ada", 1.0)).account_id
        changes: dict[str, RatingChange] = {}
        for n in range(12):
            other = (await store.account_for(Identity("jwt", f"o{n}"), f"O{n}", 1.0)).account_id
            result = RankedResult(f"m-{n}", "tictactoe", "ranked", ((ada,), (other,)),
                                  (2, 1) if n == 5 else (1, 2))  # fmt: skip
            changes = await store.record_match(result, 10.0 + n)
        (top, *_) = await store.top("tictactoe", "ranked", 10, 30.0)
        (last, *_) = await store.history(ada, 1)
        sent = {
            "leaderboard": rated(leaderboard_row(top)),
            "history": rated(history_row(last)),
            "rating": rated(rating_frame("m-11", "tictactoe", "ranked", changes[ada])),
        }
        ada_now = {"rating": 2187.75, "mu": 2334.37, "sigma": 382.21, "matches": 12}
        self.assertEqual(sent["leaderboard"], ada_now)
        shown: dict[str, list[dict[str, Any]]] = {}
        for document in ("lobby.md", "web.md"):
            for frame in doc_frames(document):
                if frame.get("type") == "rating":
                    shown.setdefault("rating", []).append(rated(frame))
                for entry in frame.get("entries", ()):
                    shown.setdefault("leaderboard", []).append(rated(entry))
                if "matches" in frame and isinstance(frame["matches"], list):
                    shown.setdefault("history", []).extend(rated(m) for m in frame["matches"])
        # lobby.md and web.md each show the leaderboard and the history; lobby.md the push.
        self.assertEqual({kind: len(frames) for kind, frames in shown.items()},
                         {"leaderboard": 2, "history": 2, "rating": 1})  # fmt: skip
        for kind, frames in shown.items():
            for frame in frames:
                self.assertEqual(frame, sent[kind], kind)
        # And the page's line (docs/web.md), whole points of the push's numbers.
        page = f"Rating {round(sent['rating']['rating'])} (+{round(sent['rating']['change'])})"
        self.assertIn(f'"{page}"', (DOCS / "web.md").read_text(encoding="utf-8"))
