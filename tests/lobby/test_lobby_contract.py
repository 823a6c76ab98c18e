"""docs/lobby.md is the contract: its frames and error codes, asked for by a real client.

Each test runs the whole server (`makeService`, tests/support/servers.py) and talks
to its TLS lobby on 127.0.0.1 as a client written from docs/lobby.md would
(tests/test_integration_parties.py's `Player`, one JSON frame per line),
checking the frame each documented case is answered with: `hello_required`
for every frame that needs a hello, `not_party_leader` for a member's
`queue` and `cancel` whatever the party's state, `already_in_party` for a
member's room requests, the `timeout` frame a silent queued player is sent
before it is dropped, and `party_join` guesses limited per address (across
two lobbies sharing a real Redis too) and answered alike for a code of no
party, of a full party and of a queued one.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import os
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.trial.unittest import TestCase

from tests.lobby import said
from tests.support.lobby_players import Player, connect_player, connect_raw
from tests.support.redis_server import start_redis
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from vinom.client.lobby import PROTOCOL
from vinom.lobby.request_types import GAME_PROTOCOL

Frame = dict[str, Any]

# Every frame docs/lobby.md allows only after `hello`, with its required fields.
NEEDS_HELLO: list[Frame] = [
    {"type": "queue", "game": "tictactoe"},
    {"type": "cancel"},
    {"type": "get_room_list"},
    {"type": "create_room", "game": "tictactoe"},
    {"type": "join_room", "code": "ABCDEF"},
    {"type": "leave_room"},
    {"type": "add_bot"},
    {"type": "party_create"},
    {"type": "party_join", "code": "ABCDEF"},
    {"type": "party_leave"},
    {"type": "leaderboard", "game": "tictactoe"},
    {"type": "history"},
]




def without_id(frame: Frame) -> Frame:
    return {k: v for k, v in frame.items() if k != "id"}


class LobbyContractTests(TestCase):
    timeout = 30

    async def start(self, *args: str) -> RunningServer:
        # A four-player maze: a party of two queued for it waits for two more players.
        return await start_server(
            self, "--games", "tictactoe,maze", "--match-size", "maze=4", *args, ports=2
        )

    async def test_every_frame_that_needs_hello_is_answered_hello_required(self) -> None:
        # Room of 20 errors: each hello_required counts as a protocol error.
        server = await self.start("--limit", "max-protocol-errors=20")
        player = await connect_raw(self, server.lobby)
        for frame in NEEDS_HELLO:
            reply = await player.request(frame)
            self.assertEqual((reply["type"], reply.get("code")), ("error", "hello_required"),
                             frame)  # fmt: skip
        # The connection is fine: hello is answered as ever.
        self.assertEqual(
            (await player.request({"type": "hello", "name": "Ann", "protocol": PROTOCOL}))["type"],
            "welcome",
        )
        # After hello, leave_room and add_bot outside a room are not_in_room.
        for kind in ("leave_room", "add_bot"):
            reply = await player.request({"type": kind})
            self.assertEqual(reply.get("code"), "not_in_room", kind)

    async def test_the_welcome_names_each_game_as_people_read_it(self) -> None:
        server = await start_server(self, "--games", "tictactoe,owedrahn", ports=2)
        welcome = (await connect_player(self, server.lobby, "Ann")).frames[0]
        self.assertEqual(welcome["games"], {"tictactoe": 2, "owedrahn": 2})
        self.assertEqual(welcome["titles"], {"tictactoe": "Tic-tac-toe", "owedrahn": "Owe Drahn"})

    async def test_a_party_member_queue_and_cancel_are_not_party_leader(self) -> None:
        server = await self.start()
        ann = await connect_player(self, server.lobby, "Ann")
        bob = await connect_player(self, server.lobby, "Bob")
        code = (await ann.request({"type": "party_create"}))["party"]["code"]
        self.assertEqual((await bob.request({"type": "party_join", "code": code}))["type"],
                         "party")  # fmt: skip
        # Not queued, and queued: a member's queue and cancel get not_party_leader.
        for _ in ("idle", "queued"):
            for frame in ({"type": "cancel"}, {"type": "queue", "game": "maze"}):
                reply = await bob.request(frame)
                self.assertEqual(reply.get("code"), "not_party_leader", (frame, reply))
            if _ == "idle":
                queued = await ann.request({"type": "queue", "game": "maze"})
                self.assertEqual(queued["type"], "queued")
                await bob.of_type("queued")
        # The leader's cancel withdraws the party's ticket.
        self.assertEqual((await ann.request({"type": "cancel"}))["type"], "cancelled")
        self.assertEqual((await ann.request({"type": "cancel"})).get("code"), "not_queued")

    async def test_party_members_take_no_seat_in_a_room(self) -> None:
        server = await self.start()
        ann = await connect_player(self, server.lobby, "Ann")
        bob = await connect_player(self, server.lobby, "Bob")
        cat = await connect_player(self, server.lobby, "Cat")
        code = (await ann.request({"type": "party_create"}))["party"]["code"]
        await bob.request({"type": "party_join", "code": code})
        room = (await cat.request({"type": "create_room", "game": "maze"}))["room"]
        for player in (ann, bob):
            for frame in ({"type": "create_room", "game": "maze"},
                          {"type": "join_room", "room_id": room["room_id"]}):  # fmt: skip
                reply = await player.request(frame)
                self.assertEqual(reply.get("code"), "already_in_party", (frame, reply))
        # Out of the party, a seat is there to take.
        await bob.request({"type": "party_leave"})
        joined = await bob.request({"type": "join_room", "room_id": room["room_id"]})
        self.assertEqual(joined["type"], "room")

    async def test_a_client_of_another_game_protocol_is_refused_every_token_clearly(
        self,
    ) -> None:
        server = await self.start()
        # A server a protocol ahead of this checkout's clients (as every server is of a
        # client from before the "protocol" key, which speaks 1: docs/lobby.md).
        newer = GAME_PROTOCOL + 1
        server.service("lobby").requests.protocol = newer
        cat = await connect_raw(self, server.lobby)
        cat_welcome = await cat.request({"type": "hello", "name": "Cat", "protocol": newer})
        code = (await cat.request({"type": "create_room", "game": "maze"}))["room"]["code"]
        old = await connect_raw(self, server.lobby)
        welcome = await old.request({"type": "hello", "name": "Old"})
        self.assertEqual((welcome["type"], welcome["protocol"]), ("welcome", newer))
        asks_to_play: list[Frame] = [
            {"type": "queue", "game": "tictactoe"},
            {"type": "queue", "game": "chess"},  # whatever else is wrong, it is told this
            {"type": "create_room", "game": "tictactoe"},
            {"type": "join_room", "code": code},
            {"type": "party_create"},
            {"type": "party_join", "code": "ABCDEF"},
        ] * 2  # uncounted: asked again and again, the connection stays, telling the same
        for frame in asks_to_play:
            reply = await old.request(frame)
            self.assertEqual((reply["type"], reply["code"]), ("error", "protocol_outdated"), frame)
            self.assertIn(f"this server speaks game protocol {newer}", reply["message"])
            self.assertIn("update the client", reply["message"])
        # Looking around is not playing: the room list and pings are answered.
        self.assertEqual((await old.request({"type": "get_room_list"}))["type"], "room_list")
        self.assertEqual((await old.request({"type": "ping"}))["type"], "pong")
        # A reconnect says its own protocol: without it, it speaks 1 too.
        again = {"type": "reconnect", "player_id": cat_welcome["player_id"],
                 "secret": cat_welcome["secret"]}  # fmt: skip
        stale = await (await connect_raw(self, server.lobby)).request(again)
        self.assertEqual(stale["code"], "protocol_outdated")
        unknown = await (await connect_raw(self, server.lobby)).request(
            {**again, "protocol": newer + 1}
        )
        self.assertEqual(unknown["code"], "protocol_outdated")
        self.assertIn(f"a client for protocol {newer}", unknown["message"])
        # Clients that speak the server's protocol are matched.
        players = [await connect_raw(self, server.lobby) for _ in "ab"]
        for n, player in enumerate(players):
            hello = await player.request({"type": "hello", "name": f"new{n}", "protocol": newer})
            self.assertEqual(hello["type"], "welcome")
            self.assertEqual((await player.request({"type": "queue", "game": "tictactoe"}))["type"],
                             "queued")  # fmt: skip
        found = [await player.of_type("match_found") for player in players]
        self.assertEqual(found[0]["game_id"], found[1]["game_id"])

    async def test_hello_and_reconnect_answer_as_documented(self) -> None:
        server = await self.start()
        ann = await connect_player(self, server.lobby, "Ann")
        secret = ann.frames[0]["secret"]
        again = said({"type": "reconnect", "player_id": ann.player_id, "secret": secret})
        # After hello, a second hello and a reconnect are already_hello.
        for frame in ({"type": "hello", "name": "Ann"}, again):
            self.assertEqual((await ann.request(frame)).get("code"), "already_hello", frame)
        # An unknown id and a wrong secret: one answer; a known player without a
        # match: no_active_match.
        other = await connect_raw(self, server.lobby)
        unknown = await other.request({**again, "player_id": "p-0000000000000000"})
        wrong = await other.request({**again, "secret": "x" * len(secret)})
        self.assertEqual(unknown["code"], "bad_secret")
        self.assertEqual(without_id(unknown), without_id(wrong))
        self.assertEqual((await other.request(again)).get("code"), "no_active_match")

    async def test_join_room_with_both_an_id_and_a_code_is_invalid_field(self) -> None:
        server = await self.start()
        ann = await connect_player(self, server.lobby, "Ann")
        both = await ann.request({"type": "join_room", "room_id": "r-1", "code": "ABCDEF"})
        self.assertEqual(both.get("code"), "invalid_field")
        neither = await ann.request({"type": "join_room"})
        self.assertEqual(neither.get("code"), "missing_field")

    async def test_a_silent_queued_player_is_told_timeout_and_its_ticket_withdrawn(
        self,
    ) -> None:
        server = await self.start("--limit", "lobby-ping-interval=0.3",
                                  "--limit", "lobby-ping-timeout=0.3")  # fmt: skip
        silent = await connect_player(self, server.lobby, "Sil")
        self.assertEqual((await silent.request({"type": "queue", "game": "tictactoe"}))["type"],
                         "queued")  # fmt: skip
        # Pinged; it does not answer: the documented `timeout`, then the close.
        self.assertEqual(await silent.of_type("ping"), {"type": "ping"})
        timeout = await silent.of_type("error")
        self.assertEqual((timeout["code"], timeout["id"]), ("timeout", None))
        self.assertIn("ping", timeout["message"])
        self.assertIsInstance(await silent.closed, ConnectionDone)
        # Its ticket was withdrawn: the next player is first in the queue, unmatched.
        ann = await connect_player(self, server.lobby, "Ann")
        queued = await ann.request({"type": "queue", "game": "tictactoe"})
        self.assertEqual((queued["type"], queued["position"]), ("queued", 1))

    async def test_a_frame_begun_at_the_hello_timeout_is_answered_timeout(self) -> None:
        server = await self.start("--limit", "lobby-hello-timeout=0.3")
        begun = await connect_raw(self, server.lobby)
        assert begun.transport is not None
        begun.transport.write(b'{"type": "hel')
        quiet = await connect_raw(self, server.lobby)
        self.assertIsInstance(await begun.closed, ConnectionDone)
        self.assertEqual([(f["type"], f["code"]) for f in begun.frames], [("error", "timeout")])
        # Nothing sent at all: dropped without a frame.
        await quiet.closed
        self.assertEqual(quiet.frames, [])

    async def test_a_wrong_code_a_full_party_and_a_queued_party_are_answered_alike(
        self,
    ) -> None:
        server = await self.start()
        players = [await connect_player(self, server.lobby, f"P{i}") for i in range(7)]
        games = players[0].frames[0]["games"]
        self.assertEqual(games, {"tictactoe": 2, "maze": 4})
        # A full party (as many members as the largest match) and a queued one.
        full = (await players[0].request({"type": "party_create"}))["party"]["code"]
        for member in players[1:max(games.values())]:
            self.assertEqual((await member.request({"type": "party_join", "code": full}))
                             ["type"], "party")  # fmt: skip
        queued = (await players[4].request({"type": "party_create"}))["party"]["code"]
        await players[5].request({"type": "party_join", "code": queued})
        self.assertEqual((await players[4].request({"type": "queue", "game": "maze"}))["type"],
                         "queued")  # fmt: skip
        guesser = players[6]
        wrong = "Z" * len(full) if full != "Z" * len(full) else "Y" * len(full)
        answers = [without_id(await guesser.request({"type": "party_join", "code": code}))
                   for code in (wrong, full, queued)]  # fmt: skip
        self.assertEqual(answers[0]["code"], "unknown_party")
        self.assertEqual(answers[1:], [answers[0]] * 2)

    async def test_party_join_guesses_from_one_address_are_rate_limited(self) -> None:
        # One token per 1,000 s: none comes back while the test runs, however slow the
        # machine (the refill is tested on a clock: tests.lobby.test_lobby_limits.QueueRateTests).
        server = await self.start("--limit", "queue-burst=5", "--limit", "queue-rate=0.001")
        ann = await connect_player(self, server.lobby, "Ann")
        code = (await ann.request({"type": "party_create"}))["party"]["code"]
        guesser = await connect_player(self, server.lobby, "Eve")
        answers = [(await guesser.request({"type": "party_join", "code": "GUESS" + "ABCDE"[i]}))
                   .get("code") for i in range(5)]  # fmt: skip
        self.assertEqual(answers, ["unknown_party"] * 5)
        # Past the burst, every attempt is refused, the right code too, from any
        # connection of the address; refusals are not protocol errors.
        other = await connect_player(self, server.lobby, "Mal")
        for player, guess in ((guesser, "GUESSZ"), (other, code), (guesser, code)):
            reply = await player.request({"type": "party_join", "code": guess})
            self.assertEqual(reply.get("code"), "rate_limited", reply)
        for _ in range(12):
            reply = await guesser.request({"type": "party_join", "code": "GUESSZ"})
            self.assertEqual(reply.get("code"), "rate_limited")
        self.assertEqual((await guesser.request({"type": "ping"}))["type"], "pong")


class SharedPartyJoinLimitTests(TestCase):
    timeout = 60

    async def test_two_lobbies_on_one_redis_share_the_party_join_limit(self) -> None:
        redis = await start_redis(self)
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        shared = ("--redis", redis.url, "--token-key-file", key_file, "--games", "maze")
        limits = ("--limit", "queue-burst=4", "--limit", "queue-rate=0.2")
        first, second = [await start_server(self, *shared, *limits, ports=1) for _ in range(2)]
        ann = await connect_player(self, first.lobby, "Ann")
        code = (await ann.request({"type": "party_create"}))["party"]["code"]
        on_first = await connect_player(self, first.lobby, "Eve")
        on_second = await connect_player(self, second.lobby, "Mal")
        # Four guesses in all, spread over both lobbies: the burst of the address.
        for i in range(4):
            player = (on_first, on_second)[i % 2]
            reply = await player.request({"type": "party_join", "code": "GUESS" + "ABCD"[i]})
            self.assertEqual(reply.get("code"), "unknown_party")
        for player in (on_first, on_second):
            reply = await player.request({"type": "party_join", "code": code})
            self.assertEqual(reply.get("code"), "rate_limited", reply)
        # The count lives in Redis, with a TTL: one key per address.
        keys = await redis_command(redis.port, "KEYS", "vinom:party-join:*")
        self.assertEqual(keys, ["vinom:party-join:127.0.0.1"])
        ttl = await redis_command(redis.port, "PTTL", keys[0])
        self.assertTrue(0 < int(ttl) <= 20_000, ttl)
        await leave_before_the_end(redis.port, ann, on_first, on_second)


async def leave_before_the_end(port: int, *players: Player) -> None:
    """Close the players and wait until their lobbies have forgotten them in Redis (the
    lobbies and Redis stop at the test's end: a removal under way would fail)."""
    for player in players:
        assert player.transport is not None
        player.transport.loseConnection()
        await player.closed
    keys = [f"vinom:player:{p.player_id}" for p in players if p.player_id]
    async def forgotten() -> bool:
        return not keys or not await redis_command(port, "EXISTS", *keys)

    await until(forgotten, "the lobbies forgetting their players")


async def redis_command(port: int, *args: str) -> Any:
    """One command on a fresh connection to the test's Redis; its decoded reply."""
    import txredisapi

    connection = await txredisapi.Connection("127.0.0.1", port, reconnect=False)
    try:
        return await connection.execute_command(*args)
    finally:
        await connection.disconnect()

