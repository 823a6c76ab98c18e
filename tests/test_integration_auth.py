"""Players sign in at the lobby, on real TLS sockets of a real server (makeService with
`--auth jwt`, its keys fetched over HTTPS from a local identity provider it is told to
trust): a JWT's `sub` names the player's account in the server's database, keys rotate
by kid, and every refusal is one `auth_failed` error with its exact reason, limited per
address; a provider that is slow
or down makes only the sign-in wait while the lobby answers everyone else."""

from __future__ import annotations

import io
import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.client.test_cli import bots_options
from tests.support.doc_examples import getting_started_issuer, python_example
from tests.support.identity_provider import AUDIENCE, ISSUER, IdentityProvider
from tests.support.lobby_players import Player, connect_raw
from tests.support.servers import start_server
from tests.support.websocket_client import connect_websocket
from vinom import cli
from vinom.client.lobby import PROTOCOL, LobbyAddress, connect_lobby, jwt_auth
from vinom.errors import LobbyError

Frame = dict[str, Any]


async def account_of(server: Any, provider: str, subject: str) -> str:
    """The id of the account the server's database links to (provider, subject): the
    player id of whoever signs in as it."""
    account = await server.service("lobby").auth.accounts.find(provider, subject)
    assert account is not None, (provider, subject)
    return str(account.account_id)


class JwtSignInTests(TestCase):
    timeout = 60

    async def start(self, *extra: str, mode: str = "up") -> LobbyAddress:
        self.idp = IdentityProvider()
        self.idp.add_key("k1", "RS256")
        self.idp.mode = mode
        url, ca = self.idp.serve(self)
        server = self.server = await start_server(
            self, "--auth", "jwt", "--auth-jwks-url", url, "--auth-jwks-ca", ca,
            "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, *extra,
        )  # fmt: skip
        return server.lobby

    async def hello(self, player: Player, auth: Any, name: str = "ann") -> Frame:
        frame: Frame = {"type": "hello", "name": name, "protocol": PROTOCOL}
        if auth is not None:
            frame["auth"] = auth
        return await player.request(frame)

    async def reason_of(self, lobby: LobbyAddress, token: str) -> str:
        player = await connect_raw(self, lobby)
        answer = await self.hello(player, {"kind": "jwt", "token": token})
        self.assertEqual((answer["type"], answer["code"]), ("error", "auth_failed"), answer)
        self.assertEqual(set(answer), {"type", "code", "reason", "message", "id"})
        return str(answer["reason"])

    async def test_a_jwt_signs_the_player_in_and_its_sub_is_the_player(self) -> None:
        lobby = await self.start("--limit", "auth-refresh-interval=0.01")
        ids = []
        for _ in range(2):
            player = await connect_raw(self, lobby)
            welcome = await self.hello(player, {"kind": "jwt", "token": self.idp.token(
                "user-42", name="Ann Lee")})  # fmt: skip
            self.assertEqual(welcome["type"], "welcome", welcome)
            self.assertEqual((welcome["auth"], welcome["name"]), ("jwt", "Ann Lee"))
            ids.append(welcome["player_id"])
        # The same account, the same player id; a second sign-in replaces the first.
        self.assertEqual(ids, [await account_of(self.server, "jwt", "user-42")] * 2)
        # Key rotation: the provider publishes a new key (k2) and drops k1. A token of
        # k2 makes the lobby fetch the keys again; k1's tokens are refused since.
        self.idp.rotate("k2", "ES256")
        player = await connect_raw(self, lobby)
        welcome = await self.hello(player, {"kind": "jwt", "token": self.idp.token("bo", "k2")})
        self.assertEqual(welcome["type"], "welcome", welcome)
        self.assertEqual(await self.reason_of(lobby, self.idp.token("bo", "k1")), "unknown_kid")
        # An EdDSA key joins the set the same way.
        self.idp.add_key("k3", "EdDSA")
        player = await connect_raw(self, lobby)
        welcome = await self.hello(player, {"kind": "jwt", "token": self.idp.token("cy", "k3")})
        self.assertEqual(welcome["type"], "welcome", welcome)

    async def test_browsers_sign_in_over_the_websocket_lobby_alike(self) -> None:
        self.idp = IdentityProvider()
        self.idp.add_key("k1", "ES256")
        url, ca = self.idp.serve(self)
        server = await start_server(
            self, "--auth", "jwt", "--auth-jwks-url", url, "--auth-jwks-ca", ca,
            "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
            "--websocket", "ssl:0:interface=127.0.0.1",
        )  # fmt: skip
        assert server.websocket_port is not None and server.lobby.trust is not None
        browser = await connect_websocket(self, server.websocket_port, server.lobby.trust)
        refused = await browser.request({"type": "hello", "name": "web", "id": 1})
        self.assertEqual((refused["code"], refused["reason"]), ("auth_failed", "required"))
        welcome = await browser.request({"type": "hello", "name": "web", "id": 2, "auth": {
            "kind": "jwt", "token": self.idp.token("web-user", "k1")}})  # fmt: skip
        self.assertEqual((welcome["type"], welcome["auth"]), ("welcome", "jwt"))
        self.assertEqual(welcome["player_id"], await account_of(server, "jwt", "web-user"))

    async def test_each_refusal_has_its_exact_reason(self) -> None:
        lobby = await self.start("--limit", "auth-failure-burst=100")
        idp = self.idp
        now = int(reactor.seconds())
        idp.add_key("stranger", publish=False)
        forged = idp.token("a", "stranger", headers={"kid": "k1"})
        cases = {
            "expired": idp.token("a", exp=now - 60),
            "not_yet_valid": idp.token("a", nbf=now + 600),
            "wrong_issuer": idp.token("a", iss="https://somebody-else.test/"),
            "wrong_audience": idp.token("a", aud="another-game"),
            "bad_signature": forged,
            "bad_algorithm": idp.unsigned_token("a"),
            "unknown_kid": idp.token("a", headers={"kid": "k-nobody-has"}),
        }
        for reason, token in cases.items():
            self.assertEqual(await self.reason_of(lobby, token), reason, reason)
        # HS256 with the provider's public key as the HMAC secret: refused as well.
        self.assertEqual(await self.reason_of(lobby, idp.hmac_with_public_key("a")),
                         "bad_algorithm")  # fmt: skip
        # A token within the frame's size but over the auth limit: too_large.
        self.assertEqual(await self.reason_of(lobby, "e" * 3500), "too_large")
        # A frame over the frame limit is the frame's error, as ever.
        player = await connect_raw(self, lobby)
        Deferred.fromCoroutine(self.hello(player, {"kind": "jwt", "token": "e" * 5000}))
        answer = await player.of_type("error")
        self.assertEqual((answer["code"], answer["id"]), ("frame_too_large", None))
        # An old client (no auth) is told to sign in; so is a guest's.
        player = await connect_raw(self, lobby)
        old = await player.request({"type": "hello", "name": "old"})
        self.assertEqual((old["code"], old["reason"]), ("auth_failed", "required"))
        self.assertIn("sign in", old["message"])
        guest = await self.hello(player, {"kind": "guest"})
        self.assertEqual((guest["code"], guest["reason"]), ("auth_failed", "wrong_kind"))
        # The connection is still open and may sign in properly.
        welcome = await self.hello(player, {"kind": "jwt", "token": idp.token("late")})
        self.assertEqual(welcome["type"], "welcome")

    async def test_refusals_are_limited_per_identity_then_per_address(self) -> None:
        lobby = await self.start("--limit", "auth-failure-burst=3",
                                 "--limit", "auth-failure-rate=0.01")  # fmt: skip
        idp = self.idp
        bad = idp.token("a", aud="another-game")
        for _ in range(3):
            self.assertEqual(await self.reason_of(lobby, bad), "wrong_audience")
        # Out of refusals for "a" from this address: even a good token for "a" is turned
        # away unverified, on any connection; "b", from the same address, is not.
        self.assertEqual(await self.reason_of(lobby, idp.token("a")), "rate_limited")
        welcome = await self.hello(await connect_raw(self, lobby),
                                   {"kind": "jwt", "token": idp.token("b")})  # fmt: skip
        self.assertEqual(welcome["type"], "welcome", welcome)
        # Refusals over many identities spend the address's own allowance (10 times one's).
        guesser = await connect_raw(self, lobby)
        for n in range(27):
            answer = await self.hello(guesser, {"kind": "jwt",
                                                "token": idp.token(f"x{n}", aud="no")})  # fmt: skip
            self.assertEqual(answer["reason"], "wrong_audience", answer)
        player = await connect_raw(self, lobby)
        answer = await player.request({"type": "hello", "name": "x", "protocol": PROTOCOL})
        self.assertEqual(answer["reason"], "rate_limited")

    async def test_a_provider_that_is_down_answers_unavailable(self) -> None:
        lobby = await self.start(mode="down")
        self.assertEqual(await self.reason_of(lobby, self.idp.token("a")), "unavailable")
        self.assertGreaterEqual(self.idp.requests, 1)

    async def test_a_slow_provider_makes_only_that_hello_wait(self) -> None:
        lobby = await self.start("--limit", "auth-timeout=1", mode="slow")
        waiting = await connect_raw(self, lobby)
        answer = Deferred.fromCoroutine(
            self.hello(waiting, {"kind": "jwt", "token": self.idp.token("a")})
        )
        # Meanwhile another player is answered at once.
        other = await connect_raw(self, lobby)
        pong = await other.request({"type": "ping"})
        self.assertEqual(pong["type"], "pong")
        self.assertFalse(answer.called)
        refused = await answer
        self.assertEqual((refused["code"], refused["reason"]), ("auth_failed", "unavailable"))

    async def test_the_client_library_signs_in_and_reconnect_needs_the_same_account(
        self,
    ) -> None:
        lobby = await self.start()
        client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        self.addCleanup(client.close)
        welcome = await client.hello("ann", auth={"kind": "jwt", "token": self.idp.token("u1")})
        self.assertEqual(welcome.player_id, await account_of(self.server, "jwt", "u1"))
        # A reconnect signs in too: without auth, or as another account, it is refused.
        for auth, code in ((None, "auth_failed"),
                           ({"kind": "jwt", "token": self.idp.token("u2")}, "bad_secret")):
            other = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
            self.addCleanup(other.close)
            error = await self.failing(
                other.reconnect(welcome.player_id, welcome.secret, auth=auth)
            )
            self.assertEqual(error.code, code)
        other = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        self.addCleanup(other.close)
        error = await self.failing(other.reconnect(welcome.player_id, welcome.secret,
                                                   auth=jwt_auth(self.idp.token("u1"))))
        self.assertEqual(error.code, "no_active_match")  # signed in, and nothing to go back to

    async def failing(self, d: Deferred[Any]) -> LobbyError:
        try:
            await d
        except LobbyError as e:
            return e
        raise AssertionError("the request succeeded")


class GettingStartedTests(TestCase):
    timeout = 60

    async def test_the_local_issuer_of_getting_started_signs_players_in(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        issuer = getting_started_issuer()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(directory)
        issuer["make_keys"]()  # type: ignore[operator]
        token = issuer["token"]("ann")  # type: ignore[operator]
        # The options the section gives, on a test server's ports.
        server = await start_server(
            self, "--auth", "jwt", "--auth-key-file", os.path.join(directory, "jwks.json"),
            "--auth-issuer", "https://issuer.localhost/", "--auth-audience", "my-game",
        )  # fmt: skip
        player = await connect_raw(self, server.lobby)
        welcome = await player.request({"type": "hello", "name": "ann", "protocol": PROTOCOL,
                                        "auth": {"kind": "jwt", "token": token}})  # fmt: skip
        self.assertEqual((welcome["type"], welcome["name"], welcome["auth"]),
                         ("welcome", "Ann", "jwt"))  # fmt: skip
        other = await connect_raw(self, server.lobby)
        refused = await other.request({"type": "hello", "name": "bo", "protocol": PROTOCOL})
        self.assertEqual((refused["code"], refused["reason"]), ("auth_failed", "required"))
        self.assertEqual(refused["message"], "this server needs an 'auth' object in hello (and "
                         "reconnect): sign in")  # fmt: skip


class SignedTokenTests(TestCase):
    timeout = 60

    async def signed_server(self, *extra: str) -> Any:
        directory = self.mktemp()
        os.makedirs(directory)
        secret = os.path.join(directory, "shared.key")
        with open(secret, "w") as f:
            f.write("6f1c" * 16 + "\n")
        return await start_server(self, "--auth", "signed", "--auth-secret-file", secret, *extra)

    async def test_bots_sign_in_with_the_tokens_they_are_given(self) -> None:
        server = await self.signed_server()
        make = python_example()
        tokens = [make(("6f1c" * 16).encode(), f"bot-account-{n}") for n in range(2)]
        base = ["--game", "tictactoe", "--count", "2", "--seed", "3", "--json",
                "--lobby", f"127.0.0.1:{server.lobby.port}", "--trust", str(server.lobby.trust)]
        argv = [*base, "--auth", "signed"]
        for token in tokens:
            argv += ["--auth-token", token]
        out = io.StringIO()
        code = await cli.bots_command(reactor, bots_options(*argv), out)
        summary = json.loads(out.getvalue())
        self.assertEqual((code, summary["finished"]), (0, 2), summary)
        self.assertEqual(
            sorted(r["player_id"] for r in summary["reports"]),
            sorted([await account_of(server, "signed", f"bot-account-{n}") for n in range(2)]),
        )
        # Without tokens, bots are turned away by this server, each with the reason.
        out = io.StringIO()
        code = await cli.bots_command(reactor, bots_options(*base), out)
        self.assertEqual(code, 1)
        self.assertIn("auth_failed", out.getvalue())

    async def test_a_token_signed_by_the_studios_backend_signs_the_player_in(self) -> None:
        server = await self.signed_server()
        token = python_example()(("6f1c" * 16).encode(), "studio-player-9")
        player = await connect_raw(self, server.lobby)
        welcome = await player.request({"type": "hello", "name": "Nia", "protocol": PROTOCOL,
                                        "auth": {"kind": "signed", "token": token}})  # fmt: skip
        self.assertEqual((welcome["type"], welcome["auth"]), ("welcome", "signed"))
        self.assertEqual(welcome["player_id"],
                         await account_of(server, "signed", "studio-player-9"))  # fmt: skip
