"""The room and party frames of the lobby over WebSocket, against a whole server.

docs/lobby.md, "Rooms" and "Parties": every request (`get_room_list`,
`create_room` public and private, `join_room` by id and by code,
`leave_room`, `add_bot`, `party_create`, `party_join`, `party_leave`) and
every push (`room_update`, `party_update`) goes over real TLS WebSockets
(autobahn, tests/support/websocket_client.py), each frame one text message, and
ends as the TCP lobby's would: in `match_found`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from tests.lobby import hello
from tests.lobby.test_websocket_lobby import ORIGINS, WEB, error_code, is_type
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from tests.support.websocket_client import WebSocketPlayer, connect_websocket
from vinom.lobby import errors

Frame = dict[str, Any]


class WebSocketFrameTests(TestCase):
    timeout = 60

    async def start(self, *args: str, ports: int = 4) -> RunningServer:
        self.server = await start_server(self, *WEB, *ORIGINS, *args, ports=ports)
        return self.server

    async def welcomed(self, name: str) -> tuple[WebSocketPlayer, Frame]:
        port, trust = self.server.websocket_port, self.server.lobby.trust
        assert port is not None and trust is not None
        player = await connect_websocket(self, port, trust)
        welcome = await player.request(hello(name, id="h"))
        self.assertEqual(welcome["type"], "welcome", welcome)
        return player, welcome

    async def pushed(self, player: WebSocketPlayer, kind: str, count: int) -> Frame:
        """The `count`-th push of type `kind` the player got (1-based), once it has come."""
        await until(lambda: len(player.of_type(kind)) >= count,
                    lambda: f"push {count} of {kind} in {player.frames}", 30)  # fmt: skip
        return player.of_type(kind)[count - 1]


class RoomFrameTests(WebSocketFrameTests):
    async def test_a_public_room_listed_joined_by_id_left_and_filled_with_a_bot(self) -> None:
        await self.start()
        ann, _ = await self.welcomed("Ann")
        bob, _ = await self.welcomed("Bob")
        created = await ann.request(
            {"type": "create_room", "game": "dice", "size": 3, "id": 1}
        )
        self.assertEqual(created["type"], "room", created)
        room = created["room"]
        self.assertEqual(
            (room["game"], room["seats"], room["taken"], room["owner"], room["private"]),
            ("dice", 3, 1, "Ann", False),
        )
        self.assertEqual(room["players"], [{"name": "Ann", "bot": False, "owner": True}])
        listed = await bob.request({"type": "get_room_list", "game": "dice", "id": 2})
        self.assertEqual(listed["type"], "room_list", listed)
        self.assertEqual(
            [(r["room_id"], r["taken"], r["owner"]) for r in listed["rooms"]],
            [(room["room_id"], 1, "Ann")],
        )
        everything = await bob.request({"type": "get_room_list", "id": 3})
        self.assertEqual([r["room_id"] for r in everything["rooms"]], [room["room_id"]])
        none = await bob.request({"type": "get_room_list", "game": "maze", "id": 4})
        self.assertEqual(none["rooms"], [])

        joined = await bob.request({"type": "join_room", "room_id": room["room_id"], "id": 5})
        self.assertEqual((joined["type"], joined["room"]["taken"]), ("room", 2), joined)
        update = await self.pushed(ann, "room_update", 1)
        self.assertNotIn("id", update)
        self.assertEqual(
            [p["name"] for p in update["room"]["players"]], ["Ann", "Bob"]
        )
        # Only the owner adds bots.
        refused = await bob.request({"type": "add_bot", "id": 6})
        self.assertEqual(error_code(refused), errors.NOT_ROOM_OWNER)
        left = await bob.request({"type": "leave_room", "id": 7})
        self.assertEqual(left["type"], "room_left", left)
        update = await self.pushed(ann, "room_update", 2)
        self.assertEqual(update["room"]["taken"], 1)
        not_in = await bob.request({"type": "leave_room", "id": 8})
        self.assertEqual(error_code(not_in), errors.NOT_IN_ROOM)

        botted = await ann.request({"type": "add_bot", "id": 9})
        self.assertEqual(botted["type"], "room", botted)
        self.assertEqual(
            [(p["name"] != "", p["bot"]) for p in botted["room"]["players"]],
            [(True, False), (True, True)],
        )
        # Bob comes back for the last seat: the room becomes a match.
        last = await bob.request({"type": "join_room", "room_id": room["room_id"], "id": 10})
        self.assertEqual((last["type"], last["room"]["taken"]), ("room", 3), last)
        found = await gatherResults([p.when(is_type("match_found")) for p in (ann, bob)])
        self.assertEqual(found[0]["game_id"], found[1]["game_id"])
        self.assertEqual(found[0]["game"], "dice")
        self.assertEqual(len({f["seat"] for f in found}), 2)
        for player in (ann, bob):
            self.assertEqual((await player.closed).code, 1000)

    async def test_a_private_room_is_unlisted_and_joined_by_its_code(self) -> None:
        await self.start()
        ann, _ = await self.welcomed("Ann")
        bob, _ = await self.welcomed("Bob")
        created = await ann.request(
            {"type": "create_room", "game": "tictactoe", "private": True, "id": 1}
        )
        room = created["room"]
        self.assertEqual((room["private"], room["seats"], len(room["code"])), (True, 2, 6))
        listed = await bob.request({"type": "get_room_list", "id": 2})
        self.assertEqual(listed["rooms"], [])
        unknown = await bob.request({"type": "join_room", "code": "ZZZZZZ", "id": 3})
        self.assertEqual(error_code(unknown), errors.UNKNOWN_ROOM)
        joined = await bob.request({"type": "join_room", "code": room["code"].lower(), "id": 4})
        self.assertEqual((joined["type"], joined["room"]["room_id"]), ("room", room["room_id"]))
        found = await gatherResults([p.when(is_type("match_found")) for p in (ann, bob)])
        self.assertEqual(found[0]["game_id"], found[1]["game_id"])
        self.assertEqual(sorted(f["seat"] for f in found), [0, 1])


class PartyFrameTests(WebSocketFrameTests):
    async def test_a_party_formed_left_and_rejoined_queues_as_one(self) -> None:
        await self.start()
        ann, ann_welcome = await self.welcomed("Ann")
        bob, bob_welcome = await self.welcomed("Bob")
        not_in = await bob.request({"type": "party_leave", "id": 1})
        self.assertEqual(error_code(not_in), errors.NOT_IN_PARTY)
        unknown = await bob.request({"type": "party_join", "code": "ZZZZZZ", "id": 2})
        self.assertEqual(error_code(unknown), errors.UNKNOWN_PARTY)

        created = await ann.request({"type": "party_create", "id": 1})
        self.assertEqual(created["type"], "party", created)
        party = created["party"]
        self.assertEqual(party["leader"], ann_welcome["player_id"])
        self.assertEqual(
            party["members"], [{"player_id": ann_welcome["player_id"], "name": "Ann"}]
        )
        self.assertIsNone(party["queued_for"])
        joined = await bob.request({"type": "party_join", "code": party["code"].lower(),
                                    "id": 3})  # fmt: skip
        self.assertEqual(joined["type"], "party", joined)
        self.assertEqual([m["name"] for m in joined["party"]["members"]], ["Ann", "Bob"])
        update = await self.pushed(ann, "party_update", 1)
        self.assertEqual(
            (update["event"], update["player_id"]), ("joined", bob_welcome["player_id"])
        )
        self.assertNotIn("id", update)

        left = await bob.request({"type": "party_leave", "id": 4})
        self.assertEqual((left["type"], left["party_id"]), ("party_left", party["party_id"]))
        update = await self.pushed(ann, "party_update", 2)
        self.assertEqual((update["event"], update["player_id"]), ("left", bob_welcome["player_id"]))
        self.assertEqual(len(update["party"]["members"]), 1)

        await bob.request({"type": "party_join", "code": party["code"], "id": 5})
        await self.pushed(ann, "party_update", 3)
        # A member does not queue for the party; the leader queues both.
        member_queue = await bob.request({"type": "queue", "game": "tictactoe", "id": 6})
        self.assertEqual(error_code(member_queue), errors.NOT_PARTY_LEADER)
        ann.send({"type": "queue", "game": "tictactoe", "id": 7})
        found = await gatherResults([p.when(is_type("match_found")) for p in (ann, bob)])
        self.assertEqual(found[0]["game_id"], found[1]["game_id"])
        # The leader first, then the members in the order they joined.
        self.assertEqual([f["seat"] for f in found], [0, 1])
