"""Signing in at the lobby (docs/lobby.md, "Authentication"), driven through
StringTransport and Clock: the `auth` object's bounds, an account's id as the player
id, bans, a second sign-in replacing the first, a slow authenticator bounded by the
timeout while the lobby answers others, refusals limited per address."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from twisted.internet.defer import Deferred, fail
from twisted.logger import globalLogPublisher
from zope.interface import implementer

from tests.lobby import hello, reconnect
from tests.lobby.test_lobby import Client, LobbyHarness
from tests.support.accounts import MemoryAccounts
from tests.support.http import capture_log
from vinom.accounts.interfaces import AuthFailed, IAuthenticator, Identity, NewBans
from vinom.accounts.signed import SignedTokenAuthenticator
from vinom.accounts.sql import RECENT_SIGN_IN_TTL
from vinom.errors import BackendUnavailable
from vinom.lobby.auth import ADDRESS_SHARE, claimed_identity, derived_player_id
from vinom.lobby.codec import parse_frame
from vinom.lobby.config import LobbyConfig
from vinom.lobby.request_types import BadAuth
from vinom.lobby.server import BAN_CHECK_INTERVAL, BAN_CHECK_OVERLAP

KEY = b"k" * 32


@implementer(IAuthenticator)
class Stalling:
    """An authenticator that answers only when the test fires its Deferreds, or fails
    with a surprise (a bug in a studio's plugin)."""

    name = "stall"

    def __init__(self) -> None:
        self.waiting: list[Deferred[Identity]] = []
        self.broken = False

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        if self.broken:
            return fail(KeyError("a bug"))
        d: Deferred[Identity] = Deferred()
        self.waiting.append(d)
        return d


class SignInHarness(LobbyHarness):
    def setUp(self) -> None:
        super().setUp()
        self.accounts = MemoryAccounts(self.clock)
        self.use(SignedTokenAuthenticator(KEY, self.clock), self.accounts)

    def use(self, authenticator: IAuthenticator | None, accounts: MemoryAccounts | None,
            config: LobbyConfig | None = None) -> None:  # fmt: skip
        self.factory = self.make_factory(authenticator=authenticator, accounts=accounts,
                                         config=config)  # fmt: skip
        self.factory.startService()

    def token(self, sub: str, **claims: Any) -> dict[str, str]:
        body = {"sub": sub, "aud": "vinom", "exp": int(self.clock.seconds()) + 300, **claims}
        return {"kind": "signed", "token": jwt.encode(body, KEY, "HS256")}

    def sign_in(self, sub: str, host: str = "192.0.2.1", name: str = "Ann") -> Client:
        client = self.connect(host)
        welcome = client.request(hello(name, auth=self.token(sub)))
        self.assertEqual(welcome["type"], "welcome", welcome)
        client.player_id = welcome["player_id"]
        return client


class AuthFieldTests(SignInHarness):
    def test_the_auth_object_is_bounded_and_checked_before_any_authenticator(self) -> None:
        def auth_of(auth: Any) -> Any:
            request = parse_frame(f'{{"type":"hello","name":"a","auth":{auth}}}'.encode())
            return getattr(request, "auth", request)

        self.assertIsNone(auth_of("null"))
        self.assertEqual(auth_of('{"kind":"jwt","token":"t"}'), {"kind": "jwt", "token": "t"})
        too_large = '{"kind":"jwt","token":"' + "t" * 3070 + '"}'
        self.assertEqual(auth_of(too_large).reason, "too_large")
        many = "{" + ",".join(f'"k{n}":1' for n in range(9)) + "}"
        self.assertEqual(auth_of(many).reason, "too_large")
        for bad in ('"jwt"', "[]", '{"token":"t"}', '{"kind":""}', '{"kind":"jwt","x":{}}',
                    '{"kind":"jwt","x":[1]}', '{"kind":5}', '{"kind":"' + "k" * 33 + '"}'):
            self.assertEqual(auth_of(bad), BadAuth(auth_of(bad).reason, auth_of(bad).message))
            self.assertEqual(auth_of(bad).reason, "malformed", bad)
        # The token is never in a request's repr (requests are logged when serving fails).
        request = parse_frame(b'{"type":"hello","name":"a","auth":{"kind":"jwt","token":"SEKRIT"}}')
        self.assertNotIn("SEKRIT", repr(request))

    def test_each_refusal_is_one_auth_failed_error_with_its_reason(self) -> None:
        client = self.connect()
        now = int(self.clock.seconds())
        cases = [
            (None, "required"),
            ({"kind": "guest"}, "wrong_kind"),
            ({"kind": "signed"}, "malformed"),
            ({"kind": "signed", "token": "t" * 3100}, "too_large"),
            ([1], "malformed"),
            (self.token("ann", exp=now - 60), "expired"),
            (self.token("ann", aud="elsewhere"), "wrong_audience"),
        ]
        for auth, reason in cases:
            frame = hello("Ann", id=7) if auth is None else hello("Ann", auth=auth, id=7)
            answer = client.request(frame)
            self.assertEqual(list(answer), ["type", "code", "reason", "message", "id"])
            self.assertEqual((answer["code"], answer["reason"], answer["id"]),
                             ("auth_failed", reason, 7))  # fmt: skip
        # Not counted as protocol errors (7 of them, and 10 close): still open, and it
        # may sign in now.
        self.assertFalse(client.closed)
        self.assertEqual(client.request(hello("Ann", auth=self.token("ann")))["type"], "welcome")


class AccountTests(SignInHarness):
    def test_the_accounts_id_is_the_player_id_at_every_sign_in(self) -> None:
        first = self.sign_in("studio-1", name="Ann")
        first.drop()
        again = self.connect()
        welcome = again.request(hello("Someone Else", auth=self.token("studio-1")))
        self.assertEqual(welcome["player_id"], first.player_id)
        self.assertEqual(welcome["player_id"], "a-0001")
        # The account's name, kept from its first sign-in; the kind that proved it.
        self.assertEqual((welcome["name"], welcome["auth"]), ("Ann", "signed"))
        self.assertEqual(self.sign_in("studio-2").player_id, "a-0002")

    def test_a_banned_account_is_refused_with_why_and_until_when_and_closed(self) -> None:
        self.sign_in("cheater").drop()
        until = self.clock.seconds() + 3600
        self.accounts.ban("a-0001", "aim assist", until)
        client = self.connect()
        answer = client.request(hello("Ann", auth=self.token("cheater"), id=1))
        self.assertEqual(answer, {"type": "error", "code": "banned", "reason": "aim assist",
                                  "until": until, "message": "this account is banned until "
                                  f"{until:.0f} (Unix time): aim assist", "id": 1})  # fmt: skip
        self.assertTrue(client.closed)
        # For good:
        self.accounts.ban("a-0001", "fraud", None)
        answer = self.connect().request(hello("Ann", auth=self.token("cheater")))
        self.assertEqual((answer["code"], answer["until"]), ("banned", None))
        # Once a ban has run out, the account plays again.
        self.accounts.ban("a-0001", "aim assist", until)
        self.clock.advance(3601)
        self.sign_in("cheater")

    def test_signing_in_again_replaces_the_earlier_connection(self) -> None:
        idle = self.sign_in("ann")
        again = self.sign_in("ann")
        [replaced] = idle.frames()
        self.assertEqual((replaced["code"], idle.closed), ("session_replaced", True))
        # A queued earlier connection's ticket is withdrawn: nobody is matched with it.
        again.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual(again.frames()[0]["type"], "queued")
        third = self.sign_in("ann")
        self.assertEqual(again.frames()[0]["code"], "session_replaced")
        bob = self.sign_in("bob", name="Bob")
        bob.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual(bob.frames()[0]["type"], "queued")
        self.assertEqual(self.matches, [])
        # The new connection queues and is matched with Bob.
        third.send({"type": "queue", "game": "tictactoe"})
        self.assertIn("match_found", [f["type"] for f in third.frames()])
        [match] = self.matches
        self.assertEqual({t.player_id for t in match.players}, {"a-0001", "a-0002"})

    def test_a_player_whose_match_has_not_ended_plays_it_out_before_queueing_again(
        self,
    ) -> None:
        ann, bob = self.sign_in("ann"), self.sign_in("bob")
        for client in (ann, bob):
            client.send({"type": "queue", "game": "tictactoe"})
        found = [f for f in ann.frames() if f["type"] == "match_found"]
        self.assertEqual(len(found), 1)
        ann.drop()
        back = self.connect()
        welcome = back.request(hello("Ann", auth=self.token("ann")))
        refused = back.request({"type": "queue", "game": "tictactoe"})
        self.assertEqual(refused["code"], "already_queued")
        # The new welcome's secret takes the player back to their match.
        other = self.connect()
        other.send(reconnect(welcome["player_id"], welcome["secret"], auth=self.token("ann")))
        self.assertEqual(other.frames()[0]["type"], "match_found")

    def test_a_reconnect_must_sign_in_as_the_same_player(self) -> None:
        ann = self.sign_in("ann")
        client = self.connect()
        answer = client.request(reconnect(ann.player_id or "", "x" * 43))
        self.assertEqual((answer["code"], answer["reason"]), ("auth_failed", "required"))
        answer = client.request(reconnect(ann.player_id or "", "x" * 43,
                                          auth=self.token("bob")))  # fmt: skip
        self.assertEqual(answer["code"], "bad_secret")

    def test_without_a_store_the_id_is_derived_from_the_identity(self) -> None:
        self.use(SignedTokenAuthenticator(KEY, self.clock), None)
        client = self.sign_in("studio-1")
        self.assertEqual(client.player_id, derived_player_id(Identity("signed", "studio-1")))


class BanWhileOnlineTests(SignInHarness):
    """A ban made while its player is online (by `vinom accounts`, another lobby) is read
    within BAN_CHECK_INTERVAL and ends what the player holds here."""

    def test_a_ban_ends_the_players_connection_with_why_and_until_and_their_ticket(
        self,
    ) -> None:
        cheat, bystander = self.sign_in("cheat"), self.sign_in("fair", name="Fair")
        cheat.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual(cheat.frames()[0]["type"], "queued")
        self.wait(BAN_CHECK_INTERVAL, cheat, bystander)
        until = self.clock.seconds() + 86400
        self.accounts.ban("a-0001", "aimbot", until)
        self.clock.advance(BAN_CHECK_INTERVAL)
        self.assertEqual(cheat.unread + cheat.frames(), [
            {"type": "error", "code": "banned", "reason": "aimbot", "until": until,
             "message": f"this account is banned until {until:.0f} (Unix time): aimbot",
             "id": None}])  # fmt: skip
        self.assertTrue(cheat.closed)
        cheat.drop()
        # Gone as at a disconnection: the ticket too (the fair player is matched with
        # nobody), and the bystander is untouched.
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        self.assertFalse(bystander.closed)
        self.assertEqual(self.factory.bans_ended, {"connection": 1})
        # Later reads (their windows overlap) find nobody left to end.
        self.wait(4 * BAN_CHECK_INTERVAL, bystander)
        self.assertEqual(self.factory.bans_ended, {"connection": 1})
        self.assertEqual(self.factory.errors_sent["banned"], 1)

    def test_a_banned_player_in_a_running_match_is_taken_out_of_it(self) -> None:
        ann, bob = self.sign_in("ann"), self.sign_in("bob", name="Bob")
        for client in (ann, bob):
            client.send({"type": "queue", "game": "tictactoe"})
        [match] = self.matches
        self.assertTrue(ann.closed and bob.closed)  # match_found closed them
        self.accounts.ban("a-0002", "win trading", None)
        self.clock.advance(BAN_CHECK_INTERVAL)
        self.assertEqual(self.removed(), [(match.match_id, "a-0002")])
        self.assertEqual(self.factory.bans_ended, {"seat": 1})
        # Told once, however many reads see the ban.
        self.clock.advance(4 * BAN_CHECK_INTERVAL)
        self.assertEqual(self.removed(), [(match.match_id, "a-0002")])

    def removed(self) -> list[tuple[str, str]]:
        return [pair for host in self.hosts.hosts.values() for pair in host.removed]

    def test_the_reads_are_as_documented_and_overlap_a_remembered_sign_in(self) -> None:
        text = (Path(__file__).resolve().parents[2] / "docs" / "accounts.md").read_text()
        self.assertIn(f"every {BAN_CHECK_INTERVAL:g} s (`BAN_CHECK_INTERVAL`)", text)
        self.assertIn(f"{BAN_CHECK_OVERLAP:g} s before the last (`BAN_CHECK_OVERLAP`", text)
        # A banned player's sign-in answered from the store's memory of their account
        # falls within a later read's window.
        self.assertGreaterEqual(BAN_CHECK_OVERLAP, RECENT_SIGN_IN_TTL + BAN_CHECK_INTERVAL)

    def test_a_store_that_fails_is_logged_once_and_asked_again_from_the_same_time(
        self,
    ) -> None:
        self.clock.advance(BAN_CHECK_INTERVAL)
        cheat = self.sign_in("cheat")
        asked: list[float] = []
        reads = self.accounts.bans_since

        def failing(since: float) -> Deferred[NewBans]:
            asked.append(since)
            return fail(BackendUnavailable("the account database x: down"))

        self.accounts.bans_since = failing  # type: ignore[method-assign]
        logged = capture_log(self)
        self.wait(3 * BAN_CHECK_INTERVAL, cheat)
        self.assertEqual(len(asked), 3)
        self.assertEqual(len(set(asked)), 1)
        self.assertEqual(len([line for line in logged if "reading new bans" in line]), 1)
        self.accounts.ban("a-0001", "aimbot", None)
        self.accounts.bans_since = reads  # type: ignore[method-assign]
        self.wait(BAN_CHECK_INTERVAL, cheat)
        self.assertTrue(cheat.closed)


class SlowAndBrokenTests(SignInHarness):
    def setUp(self) -> None:
        super().setUp()
        self.stalling = Stalling()
        self.use(self.stalling, self.accounts, LobbyConfig(auth_timeout=5.0))

    def test_a_slow_sign_in_waits_alone_and_times_out_unavailable(self) -> None:
        waiting = self.connect()
        waiting.send(hello("Ann", auth={"kind": "stall"}, id=1))
        self.assertEqual(waiting.frames(), [])
        other = self.connect()
        self.assertEqual(other.request({"type": "ping", "id": 2})["type"], "pong")
        self.clock.advance(5)
        [answer] = waiting.frames()
        self.assertEqual((answer["code"], answer["reason"]), ("auth_failed", "unavailable"))
        # Its connection goes on: it may try again.
        waiting.send(hello("Ann", auth={"kind": "stall"}, id=3))
        self.stalling.waiting[-1].callback(Identity("stall", "ann"))
        self.assertEqual(waiting.frames()[0]["type"], "welcome")

    def test_an_authenticator_that_fails_oddly_is_unavailable_and_logged(self) -> None:
        self.stalling.broken = True
        logged: list[Any] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        answer = self.connect().request(hello("Ann", auth={"kind": "stall"}))
        self.assertEqual(answer["reason"], "unavailable")
        self.assertTrue([e for e in logged if e.get("log_failure") is not None])
        self.flushLoggedErrors(KeyError)


class RefusalLimitTests(SignInHarness):
    def test_refusals_are_limited_per_identity_and_address_and_only_refusals_count(
        self,
    ) -> None:
        config = LobbyConfig(auth_failure_burst=3, auth_failure_rate=0.1)
        self.use(SignedTokenAuthenticator(KEY, self.clock), self.accounts, config)
        # Successes take nothing from the allowance.
        for n in range(5):
            self.sign_in(f"ok-{n}")
        client = self.connect()
        for _ in range(3):
            refused = client.request(hello("Ann", auth=self.token("x", aud="no")))
            self.assertEqual(refused["reason"], "wrong_audience")
        # x's refusals from this address are spent: even x's good token is not looked at.
        answer = client.request(hello("Ann", auth=self.token("x")))
        self.assertEqual(answer["reason"], "rate_limited")
        # Another player behind the same address (a NAT) is not locked out by x...
        self.assertEqual(client.request(hello("Ann", auth=self.token("ann")))["type"], "welcome")
        # ...nor is x from another address; after 10 s x may try once more here.
        self.sign_in("x", host="198.51.100.4")
        self.clock.advance(10)
        self.assertEqual(self.connect().request(hello("X", auth=self.token("x")))["type"],
                         "welcome")  # fmt: skip

    def test_an_address_refused_over_many_identities_is_limited_as_a_whole(self) -> None:
        config = LobbyConfig(auth_failure_burst=2, auth_failure_rate=0.1)
        self.use(SignedTokenAuthenticator(KEY, self.clock), self.accounts, config)
        client = self.connect()
        # A new claimed identity each time: 2 x ADDRESS_SHARE refusals for the address.
        for n in range(2 * ADDRESS_SHARE):
            refused = client.request(hello("Ann", auth=self.token(f"guess-{n}", aud="no")))
            self.assertEqual(refused["reason"], "wrong_audience")
        answer = client.request(hello("Ann", auth=self.token("ann")))
        self.assertEqual(answer["reason"], "rate_limited")
        self.sign_in("ann", host="198.51.100.4")

    def test_claimed_identity_reads_a_device_or_a_tokens_sub_unverified(self) -> None:
        self.assertEqual(claimed_identity({"kind": "device", "device_id": "dev-1"}),
                         "device\0dev-1")  # fmt: skip
        token = self.token("ann")["token"]
        self.assertEqual(claimed_identity({"kind": "signed", "token": token}), "sub\0ann")
        for auth in ({"kind": "jwt", "token": "a.!!!.c"}, {"kind": "jwt", "token": "a.bnVsbA.c"},
                     {"kind": "jwt"}, {"kind": "steam", "ticket": "t"}):  # fmt: skip
            self.assertEqual(claimed_identity(auth), "", auth)


class NewAccountLimitTests(SignInHarness):
    def test_an_address_makes_its_share_of_accounts_then_only_known_players_sign_in(
        self,
    ) -> None:
        self.use(SignedTokenAuthenticator(KEY, self.clock), self.accounts,
                 LobbyConfig(new_accounts_per_hour=3))  # fmt: skip
        for n in range(3):
            self.sign_in(f"new-{n}")
        client = self.connect()
        refused = client.request(hello("Ann", auth=self.token("new-3")))
        self.assertEqual((refused["code"], refused["reason"]), ("auth_failed", "account_limit"))
        self.assertEqual(len(self.accounts.accounts), 3)
        # A player with an account still signs in from the address; another address
        # makes accounts of its own.
        self.assertEqual(client.request(hello("Ann", auth=self.token("new-0")))["type"],
                         "welcome")  # fmt: skip
        self.sign_in("elsewhere", host="198.51.100.4")
        # One more an hour / 3 later.
        self.clock.advance(1200)
        self.sign_in("new-3")
        self.assertEqual(self.factory.auth.accounts_made, 5)


class GuestTests(LobbyHarness):
    def test_a_guest_lobby_is_as_ever_and_says_auth_kinds_it_does_not_take(self) -> None:
        first, second = self.connect().hello(), self.connect().hello()
        self.assertNotEqual(first["player_id"], second["player_id"])
        self.assertNotIn("auth", first)
        guest = self.connect().request(hello("Ann", auth={"kind": "guest"}))
        self.assertEqual(guest["type"], "welcome")
        other = self.connect().request(hello("Ann", auth={"kind": "jwt", "token": "t"}))
        self.assertEqual((other["code"], other["reason"]), ("auth_failed", "wrong_kind"))


@implementer(IAuthenticator)
class MadeUpReasons:
    """A plugin that refuses everyone with a reason of its own making."""

    name = "stall"

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        return fail(AuthFailed(str(credentials.get("why", "x")) * 3))


class SignInCountTests(SignInHarness):
    """Every sign-in is counted by its outcome, for the operators' metrics (a bounded
    set of words: docs/operations.md, vinom_sign_ins_total)."""

    def test_each_outcome_is_counted_once(self) -> None:
        self.sign_in("ann").drop()
        self.sign_in("ann").drop()
        now = int(self.clock.seconds())
        self.connect().request(hello("Ann", auth=self.token("bob", exp=now - 60)))
        self.connect().request(hello("Ann"))
        self.accounts.ban("a-0001", "fraud", None)
        self.connect().request(hello("Ann", auth=self.token("ann")))
        self.assertEqual(self.factory.auth.sign_ins,
                         {"ok": 2, "expired": 1, "required": 1, "banned": 1})  # fmt: skip
        self.assertEqual(self.factory.auth.kind, "signed")

    def test_a_timeout_is_unavailable_and_a_plugins_own_reason_is_invalid(self) -> None:
        stalling = Stalling()
        self.use(stalling, self.accounts, LobbyConfig(auth_timeout=5.0))
        self.connect().send(hello("Ann", auth={"kind": "stall"}))
        self.assertEqual(self.factory.auth.sign_ins, {})
        self.clock.advance(5)
        self.assertEqual(self.factory.auth.sign_ins, {"unavailable": 1})
        self.use(MadeUpReasons(), self.accounts)
        for why in ("a", "b", "c"):
            answer = self.connect().request(hello("Ann", auth={"kind": "stall", "why": why}))
            # The client hears the plugin's reason; the metric keeps to known words.
            self.assertEqual(answer["reason"], why * 3)
        self.assertEqual(self.factory.auth.sign_ins, {"invalid": 3})

    def test_a_guest_is_counted_as_signed_in(self) -> None:
        self.use(None, None)
        self.connect().hello()
        self.connect().request(hello("Ann", auth={"kind": "jwt", "token": "t"}))
        self.assertEqual((self.factory.auth.kind, self.factory.auth.sign_ins),
                         ("guest", {"ok": 1, "wrong_kind": 1}))  # fmt: skip
