"""Open rooms in the lobby (docs/lobby.md, "Rooms"): list, create, join by id or code,
leave, add a bot; a full room becomes a match placed like any other."""

from __future__ import annotations

from typing import Any

from tests.lobby.test_lobby import Client, LobbyHarness
from vinom.codes import CODE_ALPHABET, CODE_LENGTH
from vinom.games.rules import GameCatalogue, GameRules
from vinom.lobby import errors
from vinom.lobby.server import LobbyFactory


class RoomTests(LobbyHarness):
    ports = (7400, 7401)

    def make_factory(self, **overrides: Any) -> LobbyFactory:
        # A maze room seats 1 to 4 players; the matchmaker's maze match is 3.
        games = GameCatalogue([GameRules("tictactoe", 2), GameRules("maze", 3, 1, 4)])
        overrides.setdefault("games", games)
        return super().make_factory(**overrides)

    def player(self, name: str, host: str = "192.0.2.1") -> Client:
        client = self.connect(host)
        client.hello(name)
        return client

    def test_a_public_room_is_listed_joined_and_starts_when_full(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        room = ann.request({"type": "create_room", "game": "tictactoe", "id": 1})
        self.assertEqual(room["type"], "room")
        self.assertEqual(room["id"], 1)
        described = room["room"]
        self.assertEqual(
            (described["game"], described["seats"], described["taken"], described["private"]),
            ("tictactoe", 2, 1, False),
        )
        self.assertEqual(described["players"], [{"name": "Ann", "bot": False, "owner": True}])
        listed = cat.request({"type": "get_room_list", "game": "tictactoe"})
        self.assertEqual(
            listed["rooms"],
            [{"room_id": described["room_id"], "game": "tictactoe", "seats": 2, "taken": 1,
              "owner": "Ann"}],
        )  # fmt: skip
        # Bob takes the last seat: the room is a match, both get match_found.
        bob.send({"type": "join_room", "room_id": described["room_id"]})
        frames = bob.frames()
        self.assertEqual(frames[0]["type"], "room")
        self.assertEqual(frames[0]["room"]["taken"], 2)
        self.assertEqual(frames[1]["type"], "match_found")
        ann_frames = ann.frames()
        self.assertEqual([f["type"] for f in ann_frames], ["room_update", "match_found"])
        self.assertEqual(ann_frames[1]["game_id"], frames[1]["game_id"])
        self.assertTrue(ann.closed and bob.closed)
        # No longer listed.
        self.assertEqual(cat.request({"type": "get_room_list"})["rooms"], [])

    def test_a_private_room_is_found_by_its_code_only(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        room = ann.request({"type": "create_room", "game": "tictactoe", "private": True})
        code = room["room"]["code"]
        self.assertEqual(len(code), CODE_LENGTH)
        self.assertTrue(set(code) <= set(CODE_ALPHABET))
        self.assertEqual(bob.request({"type": "get_room_list"})["rooms"], [])
        self.assert_error(
            bob.request({"type": "join_room", "room_id": room["room"]["room_id"]}),
            errors.UNKNOWN_ROOM,
        )
        bob.send({"type": "join_room", "code": code.lower()})
        self.assertEqual([f["type"] for f in bob.frames()], ["room", "match_found"])

    def test_the_owner_adds_a_bot_and_the_match_starts_with_a_bot_seat(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        room = ann.request({"type": "create_room", "game": "maze", "size": 3})
        self.assertEqual(room["room"]["seats"], 3)
        bob.send({"type": "join_room", "room_id": room["room"]["room_id"]})
        bob.frames()
        ann.frames()
        # Only the owner may.
        self.assert_error(bob.request({"type": "add_bot"}), errors.NOT_ROOM_OWNER)
        ann.send({"type": "add_bot"})
        frames = ann.frames()
        self.assertEqual([f["type"] for f in frames], ["room", "match_found"])
        self.assertEqual(
            [p["bot"] for p in frames[0]["room"]["players"]], [False, False, True]
        )
        bob_frames = bob.frames()
        self.assertEqual([f["type"] for f in bob_frames], ["room_update", "match_found"])
        host = self.hosts.host_running(frames[1]["game_id"])
        assert host is not None
        match = host.matches[frames[1]["game_id"]]
        self.assertEqual([t.bot for t in match.players], [False, False, True])
        self.assertEqual(match.game, "maze")

    def test_leaving_passes_ownership_and_the_last_person_closes_the_room(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        room = ann.request({"type": "create_room", "game": "maze", "size": 4})
        room_id = room["room"]["room_id"]
        bob.send({"type": "join_room", "room_id": room_id})
        bob.frames()
        ann.frames()
        self.assertEqual(ann.request({"type": "leave_room"}), {"type": "room_left",
                                                               "room_id": room_id})
        update = bob.frames()[0]
        self.assertEqual(update["type"], "room_update")
        self.assertEqual(update["room"]["players"], [{"name": "Bob", "bot": False, "owner": True}])
        self.assertEqual(bob.request({"type": "add_bot"})["type"], "room")
        # Ann may queue again now; Bob leaves: only a bot is left, so the room closes.
        self.assertEqual(ann.request({"type": "queue", "game": "maze"})["type"], "queued")
        bob.request({"type": "leave_room"})
        self.assertEqual(cat.request({"type": "get_room_list"})["rooms"], [])

    def test_a_member_who_disconnects_gives_up_the_seat(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        room = ann.request({"type": "create_room", "game": "maze", "size": 3})
        bob.send({"type": "join_room", "room_id": room["room"]["room_id"]})
        bob.frames()
        ann.frames()
        bob.drop()
        update = ann.frames()[0]
        self.assertEqual(update["room"]["taken"], 1)

    def test_room_requests_in_the_wrong_state(self) -> None:
        new = self.connect()
        self.assert_error(new.request({"type": "create_room", "game": "maze"}),
                          errors.HELLO_REQUIRED)
        ann = self.player("Ann")
        self.assert_error(ann.request({"type": "leave_room"}), errors.NOT_IN_ROOM)
        self.assert_error(ann.request({"type": "add_bot"}), errors.NOT_IN_ROOM)
        self.assert_error(ann.request({"type": "create_room", "game": "chess"}),
                          errors.UNKNOWN_GAME)
        self.assert_error(ann.request({"type": "create_room", "game": "maze", "size": 9}),
                          errors.INVALID_FIELD)
        self.assert_error(ann.request({"type": "join_room", "code": "ZZZZZZ"}),
                          errors.UNKNOWN_ROOM)
        self.assert_error(ann.request({"type": "join_room"}), errors.MISSING_FIELD)
        self.assert_error(ann.request({"type": "create_room", "game": "maze", "private": 1}),
                          errors.INVALID_FIELD)
        ann.request({"type": "create_room", "game": "maze", "size": 3})
        self.assert_error(ann.request({"type": "create_room", "game": "maze"}),
                          errors.ALREADY_IN_ROOM)
        self.assert_error(ann.request({"type": "queue", "game": "maze"}), errors.ALREADY_IN_ROOM)
        queued = self.queued_player("Bob")
        self.assert_error(queued.request({"type": "create_room", "game": "maze"}),
                          errors.ALREADY_QUEUED)

    def test_a_draining_lobby_closes_open_rooms_and_refuses_new_ones(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        ann.request({"type": "create_room", "game": "maze", "size": 3})
        self.factory.drain()
        (told,) = ann.frames()
        self.assert_error(told, errors.SERVER_DRAINING)
        self.assertTrue(ann.closed)
        self.assert_error(bob.request({"type": "create_room", "game": "maze"}),
                          errors.SERVER_DRAINING)
