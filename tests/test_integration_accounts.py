"""Accounts at the lobby, as players and operators meet them on real sockets: device
sign-in on a real `twistd -n vinom` (an account made on first use, the same account
next time, a wrong secret refused and guessing limited per address, a ban given with
`vinom accounts ban` as a child process on the same SQLite file); ranked play on a
whole server whose ratings the server computes (the claim ignored, each player told
their new rating, the store's ratings and history changed once), its leaderboard and
history as lobby frames over TLS and WebSocket and as JSON over HTTPS; a private room's
match watched and rejoined by its own accounts only; and a player's own private match
replayed to them alone."""

# slow: starts `twistd -n vinom` and `vinom accounts` as child processes

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import sys
from typing import Any

import msgpack
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.ssl import Certificate
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, readBody
from twisted.web.http_headers import Headers

from tests.support.lobby_players import Player, connect_raw
from tests.support.ports import free_tcp_port
from tests.support.servers import ROOT, RunningServer, start_server, start_twistd
from tests.support.waiting import until
from tests.support.websocket_client import connect_websocket
from vinom.client.bots import BotDriver
from vinom.client.failover import LobbyPlayer
from vinom.client.game import connect_game
from vinom.client.lobby import PROTOCOL
from vinom.games.registry import GameRegistry
from vinom.server.rankings_web import BURST

Frame = dict[str, Any]
RUN_CLI = "import sys; from vinom.cli import main; sys.exit(main())"


def device(device_id: str | None = None, secret: str | None = None) -> Frame:
    """A device's credentials, made as a client makes them once and keeps them."""
    return {
        "kind": "device",
        "device_id": device_id or "dev-" + secrets.token_hex(8),
        "secret": secret or secrets.token_urlsafe(32),
    }


async def https_get(
    url: str, trust: str, headers: Headers | None = None
) -> tuple[int, bytes]:
    """GET over HTTPS from the server whose certificate is the file `trust`."""
    with open(trust, "rb") as f:
        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(f.read()))
    response = await Agent(reactor, contextFactory=policy).request(b"GET", url.encode(), headers)
    return response.code, await readBody(response)


async def hello(player: Player, auth: Frame, name: str = "ann") -> Frame:
    return await player.request({"type": "hello", "name": name, "protocol": PROTOCOL,
                                 "auth": auth})  # fmt: skip


class DeviceSignInTests(TestCase):
    timeout = 90

    async def vinom_accounts(self, data_dir: str, *args: str) -> tuple[str, str, int]:
        """`vinom accounts ARGS --data-dir DATA_DIR`, as the operator runs it."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_CLI, "accounts", *args, "--data-dir", data_dir],
            env=env, path=data_dir,
        )  # fmt: skip
        return out.decode(), err.decode(), code

    async def test_a_device_signs_in_as_one_account_guessing_is_limited_and_bans_hold(
        self,
    ) -> None:
        server = await start_twistd(self, {}, "--auth", "device", "--limit", "auth-failure-burst=3",
                                    "--limit", "auth-failure-rate=0.01")  # fmt: skip
        await until(lambda: b"players sign in with a device id and secret" in server.output,
                    lambda: server.output)  # fmt: skip
        lobby = server.lobby
        phone = device()
        first = await hello(await connect_raw(self, lobby), phone, "Ann")
        self.assertEqual((first["type"], first["auth"], first["name"]),
                         ("welcome", "device", "Ann"), first)  # fmt: skip
        self.assertTrue(first["player_id"].startswith("a-"), first)
        # The same device and secret: the same account, whatever the name said now.
        again = await hello(await connect_raw(self, lobby), phone, "Someone")
        self.assertEqual((again["player_id"], again["name"]), (first["player_id"], "Ann"))
        # Another device: another account.
        other = await hello(await connect_raw(self, lobby), device(), "Bob")
        self.assertNotEqual(other["player_id"], first["player_id"])

        # The operator bans the account on the server's own database file.
        out, err, code = await self.vinom_accounts(server.data_dir, "ban", first["player_id"],
                                                   "--reason", "cheating")  # fmt: skip
        self.assertEqual((code, err), (0, ""), out)
        answer = await hello(await connect_raw(self, lobby), phone)
        self.assertEqual((answer["type"], answer["code"], answer["reason"], answer["until"]),
                         ("error", "banned", "cheating", None), answer)  # fmt: skip

        # Guessing the secret of a known device: refused, then limited per address.
        guesser = await connect_raw(self, lobby)
        for _ in range(3):
            refused = await hello(guesser, device(phone["device_id"]))
            self.assertEqual((refused["code"], refused["reason"]),
                             ("auth_failed", "bad_secret"), refused)  # fmt: skip
        limited = await hello(guesser, phone)
        self.assertEqual((limited["code"], limited["reason"]), ("auth_failed", "rate_limited"))


    async def test_a_ban_ends_a_playing_players_game_seat_on_a_worker_and_their_lobby(
        self,
    ) -> None:
        """One server whose matches run in worker processes (the default): the ban
        reaches the worker (`RemovePlayer`) and the player's lobby connection."""
        server = await start_twistd(self, {}, "--auth", "device")
        ann_auth = device()
        ann = LobbyPlayer(reactor, server.lobby, "Ann", auth=ann_auth)
        bob = LobbyPlayer(reactor, server.lobby, "Bob", auth=device())
        found = await gatherResults([ann.find_match("tictactoe"), bob.find_match("tictactoe")])
        ann_game, bob_game = [await connect_game(reactor, f) for f in found]
        for session in (ann_game, bob_game):
            self.addCleanup(session.disconnect)
        await until(lambda: ann_game.phase == bob_game.phase == "playing", "both playing")
        assert ann.welcome is not None and bob.welcome is not None
        ann_lobby = await connect_raw(self, server.lobby)
        self.assertEqual((await hello(ann_lobby, ann_auth))["player_id"], ann.welcome.player_id)

        out, err, code = await self.vinom_accounts(server.data_dir, "ban", ann.welcome.player_id,
                                                   "--reason", "aimbot")  # fmt: skip
        self.assertEqual((code, err), (0, ""), out)
        told = await ann_lobby.of_type("error")
        self.assertEqual((told["code"], told["reason"], told["until"]),
                         ("banned", "aimbot", None), told)  # fmt: skip
        await ann_lobby.closed
        final = await bob_game.finished
        self.assertEqual((final["p"], final["result"]["reason"], final["result"]["winners"]),
                         ("finished", "opponent_left", [bob.welcome.player_id]))  # fmt: skip
        await until(lambda: not ann_game.connected, "Ann's game session to close")


# A four-seat maze in two teams of two, written with the public API only: a ranked
# party may fill one team of it, never sit on both.
PAIRS_PLUGIN = """
from vinom.games.maze import MazeGame


class PairsMaze(MazeGame):
    name = "pairs"
    display_name = "Pairs"
    description = "The maze in two teams of two"
    min_players = 4
    match_size = 4
    team_size = 2


pairs = PairsMaze()
"""


class RatingIntegrityTests(TestCase):
    """The attacks on the ladder, with their own frames against a real `twistd vinom`: a
    party queued ranked against itself, accounts made by the hundred from one address,
    and one player's wrong secrets locking out a NAT's other players."""

    timeout = 90

    async def test_a_party_never_queues_ranked_against_itself_and_fills_one_team(
        self,
    ) -> None:
        server = await start_twistd(self, {"twisted/plugins/pairs_game.py": PAIRS_PLUGIN},
                                    "--auth", "device", "--games", "tictactoe,pairs")  # fmt: skip
        players = {}
        for name in ("Ann", "Bob", "Cat", "Dan"):
            player = await connect_raw(self, server.lobby)
            welcome = await hello(player, device(), name)
            self.assertEqual(welcome["type"], "welcome", welcome)
            player.player_id = welcome["player_id"]
            players[name] = player
        ann, bob, cat, dan = players.values()
        party = (await ann.request({"type": "party_create"}))["party"]
        joined = await bob.request({"type": "party_join", "code": party["code"]})
        self.assertEqual(joined["type"], "party", joined)

        # The farming attack: the party alone fills tictactoe's two ranked seats.
        refused = await ann.request({"type": "queue", "game": "tictactoe", "queue": "ranked"})
        self.assertEqual((refused["type"], refused["code"], refused["largest"]),
                         ("error", "party_too_large", 1), refused)  # fmt: skip
        # Nothing was queued: the leader may queue the party again at once.
        self.assertEqual([f for f in bob.frames if f["type"] in ("queued", "match_found")], [])

        # A game with teams: the party fills one of them, two solo players the other.
        queued = await ann.request({"type": "queue", "game": "pairs", "queue": "ranked"})
        self.assertEqual(queued["type"], "queued", queued)
        found = [p.of_type("match_found") for p in (ann, bob, cat, dan)]
        for solo in (cat, dan):
            await solo.request({"type": "queue", "game": "pairs", "queue": "ranked"})
        seats = [(await d)["seat"] for d in found]
        teams = [seat // 2 for seat in seats]
        self.assertEqual(teams[0], teams[1], seats)
        self.assertEqual(teams[2], teams[3], seats)
        self.assertNotEqual(teams[0], teams[2], seats)

    async def test_accounts_by_the_hundred_from_one_address_are_refused_past_its_share(
        self,
    ) -> None:
        server = await start_twistd(self, {}, "--auth", "device",
                                    "--limit", "new-accounts-per-hour=5")  # fmt: skip
        answers = [await hello(await connect_raw(self, server.lobby), device(), "Bot")
                   for _ in range(8)]  # fmt: skip
        self.assertEqual([a["type"] for a in answers], ["welcome"] * 5 + ["error"] * 3)
        self.assertEqual({(a["code"], a["reason"]) for a in answers[5:]},
                         {("auth_failed", "account_limit")})  # fmt: skip
        # The account database file is its owner's alone, as the data directory's
        # records are (it keeps device secrets' hashes and bans).
        for name in ("accounts.sqlite3", "accounts.sqlite3-wal", "accounts.sqlite3-shm"):
            path = os.path.join(server.data_dir, name)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, name)

    async def test_one_players_wrong_secrets_do_not_lock_out_their_neighbours(self) -> None:
        server = await start_twistd(self, {}, "--auth", "device")
        ann, bob = device(), device()
        for credentials in (ann, bob):
            first = await hello(await connect_raw(self, server.lobby), credentials)
            self.assertEqual(first["type"], "welcome", first)
        # Someone behind the same address guesses Ann's secret until refused unread.
        guesser = await connect_raw(self, server.lobby)
        reasons = [(await hello(guesser, device(ann["device_id"])))["reason"]
                   for _ in range(11)]  # fmt: skip
        self.assertEqual(reasons, ["bad_secret"] * 10 + ["rate_limited"])
        # Ann's device is locked from this address for now; Bob, beside her, is not.
        again = await hello(await connect_raw(self, server.lobby), ann)
        self.assertEqual(again.get("reason"), "rate_limited", again)
        welcome = await hello(await connect_raw(self, server.lobby), bob)
        self.assertEqual(welcome["type"], "welcome", welcome)


class RankedRatingTests(TestCase):
    timeout = 90

    async def play_ranked(
        self, server: RunningServer, auth: Frame, name: str, claimed: float, think: float
    ) -> tuple[Frame, Frame, str, Player]:
        """One device-signed player queues ranked claiming `claimed`, signs in again on
        a second lobby connection while the match runs (the first closes with
        `match_found`), and plays to the end: (the game's final, the `rating` frame
        the second connection was pushed, the player id, that connection)."""
        game = GameRegistry.from_plugins().get("tictactoe")
        player = LobbyPlayer(reactor, server.lobby, name, auth=auth)
        found = await player.find_match("tictactoe", claimed, queue="ranked")
        assert player.welcome is not None
        player_id = player.welcome.player_id
        watcher = await connect_raw(self, server.lobby)
        welcome = await hello(watcher, auth, name)
        self.assertEqual(welcome["player_id"], player_id)
        rated = watcher.of_type("rating")
        session = await connect_game(reactor, found)
        self.addCleanup(session.disconnect)
        driver = BotDriver(session, game.make_bot(player_id, random.Random(name)), think,
                           reactor)  # fmt: skip
        driver.attach()
        final = await session.finished
        driver.cancel()
        return final, await rated, player_id, watcher

    async def test_ranked_results_change_the_stored_ratings_once_and_players_are_told(
        self,
    ) -> None:
        server = await start_server(self, "--auth", "device", "--rating-window",
                                    "tictactoe=10,0", "--websocket", "ssl:0:interface=127.0.0.1",
                                    ports=2)  # fmt: skip
        ann, bob = device(), device()
        (final_a, rating_a, id_a, lobby_a), (final_b, rating_b, id_b, _) = await gatherResults([
            Deferred.fromCoroutine(self.play_ranked(server, ann, "Ann", 2900.0, 0.0)),
            # 2,500 apart in claims, and the window (10) never grows: matched all the
            # same, as both are new players to the server (mu 1,500): claims are ignored.
            Deferred.fromCoroutine(self.play_ranked(server, bob, "Bob", 400.0, 0.05)),
        ])  # fmt: skip
        self.assertEqual(final_a["result"], final_b["result"])
        result = final_a["result"]
        winners = result["winners"]
        ratings = {id_a: rating_a, id_b: rating_b}
        for frame in ratings.values():
            self.assertEqual(set(frame), {"type", "match_id", "game", "queue", "rating",
                                          "change"})  # fmt: skip
            self.assertEqual((frame["game"], frame["queue"]), ("tictactoe", "ranked"))
        self.assertEqual(rating_a["match_id"], rating_b["match_id"])
        if winners:
            (winner,) = winners
            loser = id_b if winner == id_a else id_a
            self.assertGreater(ratings[winner]["change"], 0)
            self.assertLess(ratings[loser]["change"], ratings[winner]["change"])
            self.assertGreater(ratings[winner]["rating"], ratings[loser]["rating"])
        # What the store keeps: one rated match, the same numbers as the players were told.
        lobby = server.service("lobby")
        self.assertEqual(lobby.ratings.recorded, 1)
        store = lobby.auth.accounts
        history = await store.history(id_a, 10)
        self.assertEqual([h.match_id for h in history], [rating_a["match_id"]])
        self.assertLess(abs(history[0].change.change - rating_a["change"]), 0.006)

        # The leaderboard and the history, as lobby frames on the signed-in connection.
        board = await lobby_a.request({"type": "leaderboard", "game": "tictactoe", "id": 1})
        self.assertEqual(set(board) - {"id"}, {"type", "game", "queue", "entries"})
        self.assertEqual((board["game"], board["queue"]), ("tictactoe", "ranked"))
        entries = board["entries"]
        self.assertEqual([e["rank"] for e in entries], [1, 2])
        self.assertEqual({e["player_id"]: e["rating"] for e in entries},
                         {id_a: rating_a["rating"], id_b: rating_b["rating"]})  # fmt: skip
        self.assertEqual(set(entries[0]), {"rank", "player_id", "name", "rating", "mu", "sigma",
                                           "matches"})  # fmt: skip
        self.assertEqual({e["name"] for e in entries}, {"Ann", "Bob"})
        self.assertEqual([e["matches"] for e in entries], [1, 1])
        self.assertGreaterEqual(entries[0]["rating"], entries[1]["rating"])
        around = await lobby_a.request({"type": "leaderboard", "game": "tictactoe",
                                        "around": True, "limit": 1, "id": 2})  # fmt: skip
        self.assertEqual([e["player_id"] for e in around["entries"]], [id_a])
        mine = await lobby_a.request({"type": "history", "id": 3})
        self.assertEqual((mine["player_id"], len(mine["matches"])), (id_a, 1))
        (match,) = mine["matches"]
        self.assertEqual(match["match_id"], rating_a["match_id"])
        self.assertEqual((match["rating"], match["change"]),
                         (rating_a["rating"], rating_a["change"]))  # fmt: skip
        self.assertEqual(match["opponents"], [{"player_id": id_b, "name": "Bob"}])
        expected = "draw" if not winners else ("win" if winners == [id_a] else "loss")
        self.assertEqual(match["result"], expected)
        bad = await lobby_a.request({"type": "history", "limit": 0})
        self.assertEqual((bad["type"], bad["code"]), ("error", "bad_request"))

        # The same over the WebSocket lobby, signed in as a browser is...
        assert server.websocket_port is not None and server.lobby.trust is not None
        browser = await connect_websocket(self, server.websocket_port, server.lobby.trust)
        welcome = await browser.request({"type": "hello", "name": "web", "id": 1, "auth": bob})
        self.assertEqual(welcome["player_id"], id_b)
        web_board = await browser.request({"type": "leaderboard", "game": "tictactoe", "id": 2})
        self.assertEqual(web_board["entries"], entries)
        web_history = await browser.request({"type": "history", "id": 3})
        self.assertEqual([m["match_id"] for m in web_history["matches"]], [match["match_id"]])

        # ...and as JSON over the web server, with no sign-in.
        web = f"https://localhost:{server.websocket_port}"

        async def http_get(url: str) -> tuple[int, bytes]:
            return await https_get(url, server.lobby.trust or "")

        code, body = await http_get(f"{web}/leaderboard/tictactoe/ranked?limit=10")
        self.assertEqual((code, json.loads(body)),
                         (200, {"game": "tictactoe", "queue": "ranked", "entries": entries}))
        code, body = await http_get(f"{web}/history/{id_a}")
        self.assertEqual((code, json.loads(body)), (200, {"player_id": id_a,
                                                          "matches": mine["matches"]}))
        for path, status, error in (("/leaderboard/chess/ranked", 404, "unknown_game"),
                                    ("/leaderboard/tictactoe/casual", 404, "unknown_queue"),
                                    ("/leaderboard/tictactoe/ranked?limit=101", 400,
                                     "bad_request"),
                                    ("/history/" + id_b + "?limit=x", 400, "bad_request")):
            code, body = await http_get(web + path)
            self.assertEqual((code, json.loads(body)["error"]), (status, error), path)
        # Each answer is a database read: one address gets a burst, then 429.
        answered = 0
        for _ in range(4 * BURST):
            code, body = await http_get(f"{web}/history/{id_a}")
            if code != 200:
                break
            answered += 1
        self.assertEqual((code, json.loads(body)["error"]), (429, "rate_limited"))
        self.assertGreaterEqual(answered, BURST - 8 - 1)
        # /leaderboard draws on the same address's bucket: refused too, until it refills.
        code, body = await http_get(f"{web}/leaderboard/tictactoe/ranked?limit=10")
        self.assertEqual((code, json.loads(body)["error"]), (429, "rate_limited"))


class PrivateRoomByAccountTests(TestCase):
    timeout = 60

    async def test_a_private_rooms_match_is_watched_and_rejoined_by_its_accounts_only(
        self,
    ) -> None:
        server = await start_server(self, "--auth", "device", ports=2)
        ann, bob, eve = device(), device(), device()
        owner = await connect_raw(self, server.lobby)
        welcome = await hello(owner, ann, "Ann")
        room = await owner.request({"type": "create_room", "game": "tictactoe",
                                    "private": True})  # fmt: skip
        # Nobody may watch this room's match: its owner did not allow spectators.
        self.assertEqual(room["room"]["private"], True)
        guest = await connect_raw(self, server.lobby)
        await hello(guest, bob, "Bob")
        found = guest.of_type("match_found")
        await guest.request({"type": "join_room", "code": room["room"]["code"]})
        match_id = (await found)["game_id"]

        async def spectate(auth: Frame) -> tuple[Frame, Frame]:
            viewer = await connect_raw(self, server.lobby)
            signed = await hello(viewer, auth)
            return signed, await viewer.request({"type": "spectate", "match_id": match_id})

        # Its players' accounts watch it, signed in again on new connections...
        for auth in (bob, ann):
            welcome, watching = await spectate(auth)
            self.assertEqual((watching["type"], watching["game_id"]), ("spectating", match_id))
        # ...and another account is refused as any stranger is.
        _, refused = await spectate(eve)
        self.assertEqual((refused["type"], refused["code"]), ("error", "no_active_match"))

        # The owner's account rejoins its seat with the id and secret of its last welcome;
        # Eve, signed in as herself, cannot use them.
        again = await connect_raw(self, server.lobby)
        back = await again.request({"type": "reconnect", "player_id": welcome["player_id"],
                                    "secret": welcome["secret"], "protocol": PROTOCOL,
                                    "auth": ann})  # fmt: skip
        self.assertEqual((back["type"], back.get("game_id")), ("match_found", match_id), back)
        thief = await connect_raw(self, server.lobby)
        stolen = await thief.request({"type": "reconnect", "player_id": welcome["player_id"],
                                      "secret": welcome["secret"], "protocol": PROTOCOL,
                                      "auth": eve})  # fmt: skip
        self.assertEqual(stolen["code"], "bad_secret")


class OwnReplayTests(TestCase):
    timeout = 60

    async def test_a_players_own_private_match_replays_to_them_only(self) -> None:
        port = free_tcp_port()
        server = await start_server(
            self, "--auth", "device", "--websocket", f"ssl:{port}:interface=127.0.0.1",
            "--web-replays", "--limit", "connect-deadline=2",
            ports=2,
        )  # fmt: skip
        ann, eve = device(), device()
        owner = await connect_raw(self, server.lobby)
        await hello(owner, ann, "Ann")
        await owner.request({"type": "create_room", "game": "tictactoe", "private": True})
        found = owner.of_type("match_found")
        await owner.request({"type": "add_bot"})
        match_id = (await found)["game_id"]
        async def replay(auth: object = None, header: bytes | None = None) -> tuple[int, bytes]:
            headers = Headers()
            if auth is not None:
                header = b"Vinom " + base64.urlsafe_b64encode(json.dumps(auth).encode())
            if header is not None:
                headers.addRawHeader(b"authorization", header)
            return await https_get(f"https://localhost:{port}/replays/{match_id}",
                                   server.lobby.trust or "", headers)  # fmt: skip

        # Ann never connects: the match is aborted at its connect deadline, its record
        # ends, and Ann, signed in with the credentials of her hello, replays her match.
        async def replayed() -> bytes | None:
            status, body = await replay(ann)
            return body if status == 200 else None

        body = await until(replayed, "Ann's replay of her aborted match", timeout=20)
        assert isinstance(body, bytes)
        # Its room let nobody watch: no replay for anonymous viewers or another account.
        self.assertEqual(await replay(), (404, b"no finished match has this id"))
        self.assertEqual(await replay(eve), (404, b"no finished match has this id"))
        document = msgpack.unpackb(body)
        self.assertEqual((document["match_id"], document["end"]["phase"]), (match_id, "aborted"))
        # The document made for her is not served to anyone else from the cache.
        self.assertEqual(await replay(), (404, b"no finished match has this id"))
        # Refused credentials are a 401 with the lobby's reason.
        for refused, reason in ((await replay(device(ann["device_id"])), b"bad_secret"),
                                (await replay(header=b"Vinom !!!"), b"malformed")):
            self.assertEqual(refused[0], 401)
            self.assertTrue(refused[1].startswith(b"sign-in refused: " + reason), refused)
