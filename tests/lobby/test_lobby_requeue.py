"""Players of a match aborted for players_missing keep a place at the head of their
queue (vinom.lobby.requeue), claimed with `reconnect` (docs/lobby.md)."""

from __future__ import annotations

from typing import Any

from tests.lobby import reconnect
from tests.lobby.test_lobby import Client, LobbyHarness
from vinom.lobby import errors
from vinom.match import MatchEnded


class RequeueTests(LobbyHarness):
    ports = (7400, 7401, 7402)

    def player(self, name: str) -> tuple[Client, dict[str, Any]]:
        client = self.connect(f"198.51.100.{ord(name[0]) % 50}")
        self.clients.append(client)
        welcome = client.hello(name)
        return client, welcome

    def setUp(self) -> None:
        super().setUp()
        self.clients: list[Client] = []

    def queue(self, client: Client) -> list[dict[str, Any]]:
        client.send({"type": "queue", "game": "tictactoe"})
        return client.frames()

    def abort_for_players_missing(self, joined: tuple[str, ...]) -> None:
        match = self.matches[-1]
        self.hang_up()
        outcome = MatchEnded(match.match_id, "aborted", None, "players_missing", joined)
        self.assertTrue(self.hosts.end_match(match.match_id, outcome))

    def hang_up(self) -> None:
        # After match_found the server closed every matched connection; the TCP
        # connections end.
        for client in self.clients:
            if client.closed:
                client.drop()

    def reconnect(self, welcome: dict[str, Any]) -> Client:
        client = self.connect("203.0.113.7")
        client.send(reconnect(welcome["player_id"], welcome["secret"]))
        return client

    def test_the_player_who_came_goes_back_to_the_head_of_the_queue(self) -> None:
        on_time, on_time_welcome = self.player("A")
        missing, missing_welcome = self.player("B")
        self.queue(on_time)
        self.queue(missing)
        self.assertEqual(len(self.matches), 1)
        self.abort_for_players_missing((on_time_welcome["player_id"],))
        # Someone queues meanwhile: they wait, not matched with a place nobody claimed.
        early, _ = self.player("C")
        self.assertEqual(self.queue(early)[0]["position"], 1)
        self.assertEqual(len(self.matches), 1)
        # The player comes back: queued at the head, told so; matched with the one waiting.
        back = self.reconnect(on_time_welcome)
        frames = back.frames()
        self.assertEqual(
            frames[0],
            {"type": "queued", "game": "tictactoe", "queue": "normal", "position": 1,
             "status": "searching",
             "requeued": True, "reason": "players_missing"},
        )  # fmt: skip
        self.assertEqual(len(self.matches), 2)
        self.assertEqual(
            self.matches[-1].player_ids, (on_time_welcome["player_id"], early.player_id)
        )
        self.assertEqual(frames[-1]["type"], "match_found")
        # The player who never connected has nothing to come back to.
        reply = self.reconnect(missing_welcome).frames()
        self.assertEqual(reply[0]["code"], errors.BAD_SECRET)

    def test_a_place_not_claimed_in_time_lapses(self) -> None:
        on_time, welcome = self.player("A")
        other, _ = self.player("B")
        self.queue(on_time)
        self.queue(other)
        self.abort_for_players_missing((welcome["player_id"],))
        self.assertEqual(self.factory.pending_from("198.51.100.15"), 1)
        self.clock.advance(30)
        self.assertEqual(self.factory.pending_from("198.51.100.15"), 0)
        reply = self.reconnect(welcome).frames()
        self.assertEqual(reply[0]["code"], errors.BAD_SECRET)

    def test_other_endings_keep_no_place(self) -> None:
        first, welcome = self.player("A")
        second, _ = self.player("B")
        self.queue(first)
        self.queue(second)
        match = self.matches[-1]
        self.hang_up()
        self.hosts.end_match(
            match.match_id,
            MatchEnded(match.match_id, "aborted", None, "player_left", match.player_ids),
        )
        reply = self.reconnect(welcome).frames()
        self.assertEqual(reply[0]["code"], errors.BAD_SECRET)
