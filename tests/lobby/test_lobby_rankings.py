"""The lobby's `leaderboard` and `history` frames (docs/lobby.md, "Leaderboards,
history and ratings") where they are refused, driven through StringTransport and Clock:
a server without an account database, a guest, a bad `limit`, before `hello`. (Their
answers from a real store are tests/test_integration_accounts.py's.)"""

from __future__ import annotations

from tests.lobby import hello
from tests.lobby.test_lobby_auth import SignInHarness
from tests.support.accounts import MemoryAccounts


class RankingRefusalTests(SignInHarness):
    def code_of(self, frame: dict[str, object], name: str = "Ann") -> object:
        client = self.connect()
        welcome = client.request(hello(name))
        self.assertEqual(welcome["type"], "welcome", welcome)
        return client.request(frame).get("code")

    def test_without_accounts_both_are_no_accounts(self) -> None:
        self.use(None, None)
        self.assertEqual(self.code_of({"type": "leaderboard", "game": "tictactoe"}),
                         "no_accounts")  # fmt: skip
        self.assertEqual(self.code_of({"type": "history"}), "no_accounts")

    def test_a_guest_has_no_history_and_no_place(self) -> None:
        self.use(None, MemoryAccounts())
        self.assertEqual(self.code_of({"type": "history"}), "not_signed_in")
        around = {"type": "leaderboard", "game": "tictactoe", "around": True}
        self.assertEqual(self.code_of(around), "not_signed_in")

    def test_bad_requests(self) -> None:
        self.use(None, MemoryAccounts())
        for limit in (0, 101, 1.5, "10", True):
            frame = {"type": "leaderboard", "game": "tictactoe", "limit": limit}
            self.assertEqual(self.code_of(frame), "bad_request", limit)
        self.assertEqual(self.code_of({"type": "history", "limit": 51}), "bad_request")
        self.assertEqual(self.code_of({"type": "leaderboard", "game": "chess"}), "unknown_game")
        self.assertEqual(self.code_of({"type": "leaderboard", "game": "tictactoe",
                                       "queue": "casual"}), "unknown_queue")  # fmt: skip
        client = self.connect()
        refused = client.request({"type": "history", "id": 4})
        self.assertEqual((refused["code"], refused["id"]), ("hello_required", 4))
