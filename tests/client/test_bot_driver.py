"""BotDriver (vinom/client/bots.py) on a session it is attached to mid-match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase

from vinom.client.bots import BotDriver


class TakesItsTurn:
    """A bot that plays cell 0 whenever the view says it is its turn."""

    def choose_action(self, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return {"cell": 0} if view.get("turn") == "p-a" else None


class PlayingSession:
    """What BotDriver reads of a GameSession: a match under way, this player's turn."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.phase = "playing"
        self.view: dict[str, Any] | None = view
        self.connected = True
        self.sent: list[dict[str, Any]] = []
        self.on_state: Any = None
        self.on_error: Any = None
        self.on_phase: Any = None
        self.on_welcome: Any = None

    def send_action(self, action: dict[str, Any]) -> int:
        self.sent.append(action)
        return len(self.sent)


class AttachTests(SynchronousTestCase):
    def test_a_driver_attached_mid_match_acts_on_the_newest_view_at_once(self) -> None:
        view = {"board": [""] * 9, "turn": "p-a"}
        session = PlayingSession(view)
        driver = BotDriver(session, TakesItsTurn())  # type: ignore[arg-type]
        driver.attach()
        self.assertEqual(session.sent, [{"cell": 0}])
        self.assertEqual(driver.actions_sent, 1)

    def test_with_a_think_time_it_acts_that_long_after_attaching(self) -> None:
        view = {"board": [""] * 9, "turn": "p-a"}
        session = PlayingSession(view)
        clock = Clock()
        driver = BotDriver(session, TakesItsTurn(),  # type: ignore[arg-type]
                           think_time=0.5, clock=clock)  # fmt: skip
        driver.attach()
        clock.advance(0.4)
        self.assertEqual(session.sent, [])
        clock.advance(0.1)
        self.assertEqual(len(session.sent), 1)

    def test_nothing_is_sent_before_the_match_plays(self) -> None:
        session = PlayingSession({})
        session.phase, session.view = "waiting", None
        BotDriver(session, TakesItsTurn()).attach()  # type: ignore[arg-type]
        self.assertEqual(session.sent, [])
