"""What every account store does: the suite test_store_sqlite.py and
test_store_postgres.py run against SQLite and a real PostgreSQL.

`AccountStoreContract` is a mixin: a case gives `database()` (a fresh empty
database's `--database` value) and the suite opens stores on it as a server
would (`store_from_url`, schema migrated at start), two at once where two
lobbies would share it.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from vinom.accounts import ratings
from vinom.accounts.device import make_device
from vinom.accounts.interfaces import AuthFailed, Ban, IAccountStore, IAuthenticator, Identity
from vinom.accounts.queries import LAST_SEEN_INTERVAL
from vinom.accounts.records import (
    MAX_METADATA_BYTES,
    IdentityTaken,
    InvalidValue,
    LastIdentity,
    NotLinked,
    RankedResult,
    SchemaTooNew,
    UnknownAccount,
)
from vinom.accounts.schema import LATEST, MIGRATIONS
from vinom.accounts.sql import (
    RECENT_SIGN_IN_TTL,
    SqlAccountStore,
    store_from_url,
)

SECRET = "s" * 43
# When the leaderboards are read (after every match of these tests).
NOW = 1e6


class AccountStoreContract:
    """The tests every account store passes."""

    store: SqlAccountStore
    url: str

    async def database(self) -> str:
        raise NotImplementedError

    async def open(self, **kwargs: Any) -> SqlAccountStore:
        """A started store on this test's database (closed at cleanup)."""
        store = store_from_url(self.url, os.getcwd(), **kwargs)
        self.addCleanup(store.close)  # type: ignore[attr-defined]
        await store.start()
        return store

    def setUp(self) -> Deferred[None]:
        async def made() -> None:
            self.url = await self.database()
            self.store = await self.open()

        return Deferred.fromCoroutine(made())

    async def players(self, *names: str) -> list[str]:
        accounts = [await self.store.account_for(Identity("jwt", n), n, 1.0) for n in names]
        return [a.account_id for a in accounts]

    # -- accounts -----------------------------------------------------------

    def test_provides_the_interface(self: Any) -> None:
        self.assertTrue(verifyObject(IAccountStore, self.store))

    async def test_first_sign_in_makes_the_account_the_next_finds_it(self: Any) -> None:
        ann = Identity("jwt", "user-1")
        made = await self.store.account_for(ann, "Ann", 100.0)
        self.assertRegex(made.account_id, r"^a-[0-9a-f]{16}$")
        self.assertEqual(
            (made.display_name, made.created, made.last_seen, made.identities, made.ban),
            ("Ann", 100.0, 100.0, (Identity("jwt", "user-1"),), None),
        )
        self.assertEqual(made.metadata, {})
        # Signing in again finds the same account; the hello name does not rename it.
        again = await self.store.account_for(ann, "Someone else", 250.0)
        self.assertEqual(again.account_id, made.account_id)
        self.assertEqual((again.display_name, again.created, again.last_seen),
                         ("Ann", 100.0, 250.0))  # fmt: skip
        self.assertEqual(await self.store.get(made.account_id), again)
        self.assertEqual(await self.store.find("jwt", "user-1"), again)
        self.assertIsNone(await self.store.get("a-0000000000000000"))
        self.assertIsNone(await self.store.find("jwt", "user-2"))
        # The same subject under another provider is another player.
        other = await self.store.account_for(Identity("signed", "user-1"), "Ann", 300.0)
        self.assertNotEqual(other.account_id, made.account_id)

    async def test_last_seen_is_written_at_most_once_a_minute(self: Any) -> None:
        """A returning player's sign-ins within LAST_SEEN_INTERVAL of the stored
        `last_seen` write nothing: what a sign-in answers is what the store keeps."""
        clock = Clock()
        clock.advance(1_000.0)
        ann = Identity("jwt", "regular")
        made = await self.store.account_for(ann, "Ann", clock.seconds())
        for _ in range(5):
            clock.advance(LAST_SEEN_INTERVAL / 6)
            again = await self.store.account_for(ann, "Ann", clock.seconds())
            self.assertEqual(again, made)
            self.assertEqual(await self.store.get(made.account_id), made)
        clock.advance(LAST_SEEN_INTERVAL / 6)
        later = await self.store.account_for(ann, "Ann", clock.seconds())
        self.assertEqual(later.last_seen, 1_000.0 + LAST_SEEN_INTERVAL)
        self.assertEqual(await self.store.get(made.account_id), later)

    async def test_two_lobbies_signing_in_one_new_player_at_once_make_one_account(
        self: Any,
    ) -> None:
        lobbies = [self.store, await self.open(), await self.open()]
        accounts = await gatherResults([
            lobby.account_for(Identity("jwt", "new-player"), "Neo", 5.0)
            for lobby in lobbies for _ in range(3)
        ])  # fmt: skip
        self.assertEqual(len({a.account_id for a in accounts}), 1)
        found = await self.store.find("jwt", "new-player")
        assert found is not None
        self.assertEqual(found.account_id, accounts[0].account_id)

    async def test_names_are_checked_as_hello_names_are(self: Any) -> None:
        account = await self.store.account_for(Identity("jwt", "u"), "  Cafe\u0301 ", 1.0)
        self.assertEqual(account.display_name, "Caf\u00e9")  # NFC, trimmed
        vouched = await self.store.account_for(Identity("jwt", "v", display_name="Vee"), "x", 1.0)
        self.assertEqual(vouched.display_name, "Vee")
        # A provider's name players may not show: the hello name is used.
        bidi = Identity("jwt", "w", display_name="evil\u202e")
        self.assertEqual((await self.store.account_for(bidi, "Dub", 1.0)).display_name, "Dub")
        for bad in ("", "   ", "a\u202eb", "x" * 33, "\u3164"):
            with self.assertRaises(InvalidValue):
                await self.store.account_for(Identity("jwt", "bad"), bad, 1.0)
        self.assertIsNone(await self.store.find("jwt", "bad"))
        renamed = await self.store.rename(account.account_id, "New name")
        self.assertEqual(renamed.display_name, "New name")
        with self.assertRaises(InvalidValue):
            await self.store.rename(account.account_id, "line\nbreak")
        with self.assertRaises(UnknownAccount):
            await self.store.rename("a-0000000000000000", "Nobody")

    async def test_identities_are_bounded(self: Any) -> None:
        for provider, subject in (("", "x"), ("jwt", ""), ("p" * 33, "x"), ("jwt", "s" * 256),
                                  ("jwt", "new\nline")):  # fmt: skip
            with self.assertRaises(InvalidValue):
                await self.store.account_for(Identity(provider, subject), "Ann", 1.0)

    async def test_identities_are_linked_and_unlinked(self: Any) -> None:
        first = await self.store.account_for(Identity("device", "phone-00001"), "Ann", 1.0)
        other = await self.store.account_for(Identity("jwt", "bob"), "Bob", 1.0)
        linked = await self.store.link(first.account_id, Identity("jwt", "ann"), 2.0)
        self.assertEqual(linked.identities,
                         (Identity("device", "phone-00001"), Identity("jwt", "ann")))  # fmt: skip
        # Signing in with either identity is the same player.
        by_jwt = await self.store.account_for(Identity("jwt", "ann"), "Ann", 3.0)
        self.assertEqual(by_jwt.account_id, first.account_id)
        # Linking again is no change; linking another's identity is refused.
        self.assertEqual(await self.store.link(first.account_id, Identity("jwt", "ann"), 4.0),
                         await self.store.get(first.account_id))  # fmt: skip
        with self.assertRaises(IdentityTaken):
            await self.store.link(first.account_id, Identity("jwt", "bob"), 4.0)
        with self.assertRaises(UnknownAccount):
            await self.store.link("a-0000000000000000", Identity("jwt", "zed"), 4.0)
        with self.assertRaises(NotLinked):
            await self.store.unlink(first.account_id, Identity("jwt", "bob"))
        left = await self.store.unlink(first.account_id, Identity("device", "phone-00001"))
        self.assertEqual(left.identities, (Identity("jwt", "ann"),))
        with self.assertRaises(LastIdentity):
            await self.store.unlink(first.account_id, Identity("jwt", "ann"))
        self.assertEqual((await self.store.get(other.account_id)).identities,
                         (Identity("jwt", "bob"),))  # fmt: skip
        # The unlinked device is a new player the next time it signs in.
        again = await self.store.account_for(Identity("device", "phone-00001"), "Ann", 5.0)
        self.assertNotEqual(again.account_id, first.account_id)

    async def test_bans_have_a_reason_and_an_end(self: Any) -> None:
        account = await self.store.account_for(Identity("jwt", "cheat"), "Cheat", 1.0)
        banned = await self.store.ban(account.account_id, "aimbot", 1000.0)
        ban = banned.banned_at(999.0)
        assert ban is not None
        self.assertEqual((ban.reason, ban.until), ("aimbot", 1000.0))
        self.assertIsNone(banned.banned_at(1000.0))
        # The ban is kept, and signing in shows it.
        signed_in = await self.store.account_for(Identity("jwt", "cheat"), "Cheat", 2.0)
        self.assertEqual(signed_in.ban, ban)
        forever = await self.store.ban(account.account_id, "again", None)
        self.assertIsNotNone(forever.banned_at(1e12))
        lifted = await self.store.unban(account.account_id)
        self.assertIsNone(lifted.ban)
        self.assertIsNone(lifted.banned_at(3.0))
        for reason in ("", "   ", "x" * 201, "a\x00b"):
            with self.assertRaises(InvalidValue):
                await self.store.ban(account.account_id, reason, None)
        with self.assertRaises(UnknownAccount):
            await self.store.ban("a-0000000000000000", "nobody", None)

    async def test_another_lobby_reads_the_bans_made_since_it_last_looked(
        self: Any,
    ) -> None:
        """`bans_since` answers with the bans made at or after a time of the database's
        clock and in force now, and the time to ask from next: a lobby sees every ban,
        whichever process made it, on the next read after it."""
        other_lobby = await self.open()
        cheat, smurf, old, lifted, over = await self.players(
            "cheat", "smurf", "old", "lifted", "over")  # fmt: skip
        await self.store.ban(old, "long ago", None)
        first = await other_lobby.bans_since(0.0)
        self.assertEqual(first.bans, {old: Ban("long ago", None)})
        # SQLite's clock counts milliseconds: a read in the ban's millisecond finds it
        # again ("at or after"); read on until the clock has passed it.
        start = first.now
        while (probe := await other_lobby.bans_since(start)).bans:
            self.assertEqual(probe.bans, {old: Ban("long ago", None)})
            start = probe.now
        await self.store.ban(cheat, "aimbot", None)
        await self.store.ban(smurf, "smurfing", 4e9)
        await self.store.ban(lifted, "a mistake", None)
        await self.store.unban(lifted)
        # A ban whose end has passed is not in force: there is nothing to end.
        await self.store.ban(over, "over already", 1000.0)
        seen = await other_lobby.bans_since(start)
        self.assertEqual(seen.bans, {cheat: Ban("aimbot", None), smurf: Ban("smurfing", 4e9)})
        self.assertGreaterEqual(seen.now, start)
        self.assertEqual((await other_lobby.bans_since(seen.now + 1.0)).bans, {})
        # A ban replaced is made anew.
        await self.store.ban(old, "again", None)
        self.assertEqual((await other_lobby.bans_since(seen.now)).bans,
                         {old: Ban("again", None)})  # fmt: skip

    async def test_bans_made_before_schema_version_2_stay_and_are_not_new(
        self: Any,
    ) -> None:
        self.url = await self.database()
        old = await self.open(migrations=MIGRATIONS[:1])
        (cheat,) = [(await old.account_for(Identity("jwt", "c"), "Cheat", 1.0)).account_id]
        # As a vinom of schema version 1 banned: reason and end, no time.
        await old._update(cheat, "ban_reason = 'before', ban_until = NULL")
        old.close()
        store = await self.open()
        self.assertEqual((await store.get(cheat)).ban, Ban("before", None))
        self.assertEqual((await store.bans_since(0.0)).bans, {})

    # -- what a sign-in remembers ---------------------------------------------

    async def test_a_write_through_the_store_is_seen_at_the_next_sign_in(self: Any) -> None:
        """A returning player's sign-in may be answered from memory (RECENT_SIGN_IN_TTL);
        a ban, unban, rename, link or unlink made through the store is seen by the very
        next sign-in, at the same instant."""
        ann = Identity("jwt", "regular")
        made = await self.store.account_for(ann, "Ann", 10.0)
        self.assertEqual(await self.store.account_for(ann, "Ann", 10.0), made)
        banned = await self.store.ban(made.account_id, "aimbot", None)
        self.assertEqual((await self.store.account_for(ann, "Ann", 10.0)).ban, banned.ban)
        await self.store.unban(made.account_id)
        self.assertIsNone((await self.store.account_for(ann, "Ann", 10.0)).ban)
        await self.store.rename(made.account_id, "Anna")
        self.assertEqual((await self.store.account_for(ann, "x", 10.0)).display_name, "Anna")
        phone = Identity("device", "phone-00009")
        linked = await self.store.link(made.account_id, phone, 10.0)
        self.assertEqual((await self.store.account_for(ann, "Ann", 10.0)).identities,
                         linked.identities)  # fmt: skip
        await self.store.unlink(made.account_id, ann)
        # Unlinked, the identity is a new player; the account signs in by its phone.
        self.assertNotEqual((await self.store.account_for(ann, "Ann", 10.0)).account_id,
                            made.account_id)  # fmt: skip
        self.assertEqual((await self.store.account_for(phone, "Ann", 10.0)).account_id,
                         made.account_id)  # fmt: skip

    async def test_a_ban_made_while_a_sign_in_reads_is_seen_at_the_next(self: Any) -> None:
        ann = Identity("jwt", "racer")
        made = await self.store.account_for(ann, "Ann", 10.0)
        # A sign-in whose last_seen is due reads the account while the ban is written.
        reading = self.store.account_for(ann, "Ann", 10.0 + LAST_SEEN_INTERVAL)
        banning = self.store.ban(made.account_id, "smurfing", None)
        await gatherResults([reading, banning])
        after = await self.store.account_for(ann, "Ann", 11.0 + LAST_SEEN_INTERVAL)
        self.assertEqual(after.ban, (await banning).ban)

    async def test_another_lobbys_ban_is_seen_within_the_recent_sign_in_ttl(
        self: Any,
    ) -> None:
        """A write this store does not make (another lobby's, the `vinom accounts`
        command's) is seen by a sign-in RECENT_SIGN_IN_TTL seconds after the last read at
        the latest (at once on SQLite: test_store_sqlite.py)."""
        clock = Clock()
        clock.advance(500.0)
        other_lobby = await self.open()
        ann = Identity("jwt", "roamer")
        made = await self.store.account_for(ann, "Ann", clock.seconds())
        await self.store.account_for(ann, "Ann", clock.seconds())
        await other_lobby.ban(made.account_id, "win trading", None)
        clock.advance(RECENT_SIGN_IN_TTL)
        later = await self.store.account_for(ann, "Ann", clock.seconds())
        assert later.ban is not None
        self.assertEqual(later.ban.reason, "win trading")
        # The same for a device another lobby has seen first.
        await other_lobby.authenticate_device("phone-00077", SECRET, clock.seconds())
        with self.assertRaises(AuthFailed):
            await self.store.authenticate_device("phone-00077", "w" * 43, clock.seconds())

    async def test_metadata_is_a_small_json_object(self: Any) -> None:
        account = await self.store.account_for(Identity("jwt", "m"), "Meta", 1.0)
        bag = {"level": 3, "skins": ["red", "blue"], "name": "\u00e9t\u00e9"}
        kept = await self.store.set_metadata(account.account_id, bag)
        self.assertEqual(kept.metadata, bag)
        self.assertEqual((await self.store.get(account.account_id)).metadata, bag)
        too_big = {"x": "y" * MAX_METADATA_BYTES}
        for bad in (too_big, {"x": float("nan")}, {"x": object()}, ["not", "an", "object"]):
            with self.assertRaises(InvalidValue):
                await self.store.set_metadata(account.account_id, bad)
        self.assertEqual((await self.store.get(account.account_id)).metadata, bag)

    # -- devices ------------------------------------------------------------

    async def test_a_device_keeps_its_first_secret(self: Any) -> None:
        device = await self.store.authenticate_device("phone-00001", SECRET, 1.0)
        self.assertEqual(device, Identity("device", "phone-00001"))
        self.assertEqual(await self.store.authenticate_device("phone-00001", SECRET, 2.0), device)
        with self.assertRaises(AuthFailed) as raised:
            await self.store.authenticate_device("phone-00001", "t" * 43, 3.0)
        self.assertEqual(raised.exception.reason, "bad_secret")
        # Another device may have any secret of its own.
        await self.store.authenticate_device("phone-00002", "t" * 43, 3.0)
        for device_id, secret in (("short", SECRET), ("phone-00003", "short"),
                                  ("x" * 129, SECRET), ("phone 00003", SECRET)):  # fmt: skip
            with self.assertRaises(AuthFailed) as raised:
                await self.store.authenticate_device(device_id, secret, 4.0)
            self.assertEqual(raised.exception.reason, "malformed")

    async def test_sign_ins_at_once_each_get_their_own_answer(self: Any) -> None:
        """Sign-ins arriving together (which SQLite runs in shared transactions): each
        is answered with its own account, and a wrong secret refuses only its own."""
        await self.store.authenticate_device("phone-taken", SECRET, 1.0)
        devices = [self.store.authenticate_device(f"phone-{n:05d}", SECRET, 2.0)
                   for n in range(20)]  # fmt: skip
        wrong = self.store.authenticate_device("phone-taken", "w" * 43, 2.0)
        accounts = [self.store.account_for(Identity("jwt", f"at-once-{n}"), f"P{n}", 2.0)
                    for n in range(20)]  # fmt: skip
        self.assertEqual(await gatherResults(devices),
                         [Identity("device", f"phone-{n:05d}") for n in range(20)])  # fmt: skip
        with self.assertRaises(AuthFailed) as raised:
            await wrong
        self.assertEqual(raised.exception.reason, "bad_secret")
        made = await gatherResults(accounts)
        self.assertEqual([a.display_name for a in made], [f"P{n}" for n in range(20)])
        self.assertEqual(len({a.account_id for a in made}), 20)
        for n, account in enumerate(made):
            self.assertEqual(await self.store.find("jwt", f"at-once-{n}"), account)

    async def test_the_device_authenticator_signs_in_a_player(self: Any) -> None:
        from twisted.internet.task import Clock

        clock = Clock()
        clock.advance(50.0)
        device = make_device(None, clock, self.store)
        self.assertTrue(verifyObject(IAuthenticator, device))
        self.assertEqual(device.name, "device")
        credentials = {"kind": "device", "device_id": "browser-abcdef", "secret": SECRET}
        identity = await device.authenticate(credentials, "127.0.0.1")
        account = await self.store.account_for(identity, "Ann", clock.seconds())
        again = await device.authenticate(credentials, "127.0.0.1")
        self.assertEqual((await self.store.account_for(again, "Ann", 60.0)).account_id,
                         account.account_id)  # fmt: skip
        refusals = [
            ({**credentials, "secret": "g" * 43}, "bad_secret"),
            ({**credentials, "kind": "jwt"}, "wrong_kind"),
            ({}, "wrong_kind"),
            ({"kind": "device", "device_id": 5, "secret": SECRET}, "malformed"),
            ({"kind": "device", "device_id": "browser-abcdef"}, "malformed"),
            ({**credentials, "secret": "short"}, "malformed"),
            ({**credentials, "device_id": "x" * 5000}, "too_large"),
        ]
        for wrong, reason in refusals:
            with self.assertRaises(AuthFailed) as raised:
                await device.authenticate(wrong, "127.0.0.1")
            self.assertEqual(raised.exception.reason, reason, wrong)
        # A store that cannot answer (closed): `unavailable`, at once.
        self.store.close()
        with self.assertRaises(AuthFailed) as raised:
            await device.authenticate(credentials, "127.0.0.1")
        self.assertEqual(raised.exception.reason, "unavailable")
        with self.assertRaises(ValueError):
            make_device(None, clock, None)

    # -- ratings ------------------------------------------------------------

    async def test_a_ranked_match_moves_winner_up_and_loser_down(self: Any) -> None:
        ann, bob = await self.players("ann", "bob")
        result = RankedResult("m-1", "tictactoe", "ranked", ((ann,), (bob,)), (1, 2))
        changes = await self.store.record_match(result, 10.0)
        self.assertEqual(set(changes), {ann, bob})
        self.assertEqual(changes[ann].before, ratings.new_rating())
        self.assertGreater(changes[ann].after.mu, 1500.0)
        self.assertLess(changes[bob].after.mu, 1500.0)
        self.assertGreater(changes[ann].change, 0)
        self.assertEqual(changes[ann].after.matches, 1)
        nobody = "a-0000000000000000"
        stored = await self.store.ratings_of([ann, bob, nobody], "tictactoe", "ranked")
        self.assertEqual(stored[ann], changes[ann].after)
        self.assertEqual(stored[nobody], ratings.new_rating())
        # Another queue or game is another rating.
        self.assertEqual((await self.store.ratings_of([ann], "dice", "ranked"))[ann],
                         ratings.new_rating())  # fmt: skip

    async def test_a_match_is_rated_once_whoever_reports_it(self: Any) -> None:
        ann, bob = await self.players("ann", "bob")
        result = RankedResult("m-1", "tictactoe", "ranked", ((ann,), (bob,)), (1, 2))
        first = await self.store.record_match(result, 10.0)
        # The same match heard again, by this store and by another lobby's.
        second_lobby = await self.open()
        self.assertEqual(await self.store.record_match(result, 20.0), first)
        self.assertEqual(await second_lobby.record_match(result, 30.0), first)
        stored = await self.store.ratings_of([ann, bob], "tictactoe", "ranked")
        self.assertEqual(stored, {ann: first[ann].after, bob: first[bob].after})
        self.assertEqual(len(await self.store.history(ann, 10)), 1)

    async def test_two_lobbies_rating_one_match_at_once_rate_it_once(self: Any) -> None:
        ids = await self.players("ann", "bob", "cat", "dan")
        lobbies = [self.store, await self.open(), await self.open()]
        result = RankedResult("m-9", "maze", "ranked", tuple((p,) for p in ids), (1, 2, 3, 4))
        answers = await gatherResults(
            [lobby.record_match(result, 10.0) for lobby in lobbies for _ in range(3)]
        )
        self.assertTrue(all(answer == answers[0] for answer in answers))
        stored = await self.store.ratings_of(ids, "maze", "ranked")
        self.assertEqual({p: r.matches for p, r in stored.items()}, dict.fromkeys(ids, 1))
        self.assertEqual(stored, {p: answers[0][p].after for p in ids})

    async def test_concurrent_matches_of_one_player_each_count(self: Any) -> None:
        ids = await self.players("ann", *(f"rival{i}" for i in range(6)))
        ann, rivals = ids[0], ids[1:]
        lobbies = [self.store, await self.open()]
        results = [
            RankedResult(f"m-{i}", "tictactoe", "ranked", ((ann,), (rival,)), (1, 2))
            for i, rival in enumerate(rivals)
        ]
        await gatherResults(
            [lobbies[i % 2].record_match(r, 10.0 + i) for i, r in enumerate(results)]
        )
        mine = (await self.store.ratings_of([ann], "tictactoe", "ranked"))[ann]
        self.assertEqual(mine.matches, 6)
        # Each match started from the rating the previous one left: the history's
        # changes chain up, none lost.
        history = await self.store.history(ann, 10)
        chain = sorted(history, key=lambda h: h.change.before.matches)
        for earlier, later in itertools.pairwise(chain):
            self.assertEqual(earlier.change.after, later.change.before)
        self.assertEqual(chain[-1].change.after, mine)

    async def test_draws_teams_and_placements(self: Any) -> None:
        ann, bob, cat, dan = await self.players("ann", "bob", "cat", "dan")
        draw = await self.store.record_match(
            RankedResult.from_game_result("m-d", "tictactoe", "ranked", [ann, bob],
                                          {"winners": [], "reason": "draw"}), 1.0)  # fmt: skip
        self.assertEqual(draw[ann].after.mu, 1500.0)
        self.assertEqual(draw[ann].after, draw[bob].after)
        self.assertLess(draw[ann].after.sigma, 500.0)
        teams = await self.store.record_match(
            RankedResult.from_game_result("m-t", "arena", "ranked", [ann, bob, cat, dan],
                                          {"winners": [cat], "reason": "score"},
                                          teams=[[ann, bob], [cat, dan]]), 2.0)  # fmt: skip
        self.assertGreater(teams[dan].after.mu, 1500.0)  # won with cat
        self.assertLess(teams[ann].after.mu, 1500.0)
        ffa = await self.store.record_match(
            RankedResult.from_game_result("m-p", "maze", "ranked", [ann, bob, cat, dan],
                                          {"winners": [bob], "reason": "exit",
                                           "placements": {bob: 1, dan: 2, ann: 3, cat: 4}}),
            3.0)  # fmt: skip
        after = [ffa[p].after.mu for p in (bob, dan, ann, cat)]
        self.assertEqual(after, sorted(after, reverse=True))
        outcomes = {h.match_id: h.outcome for h in await self.store.history(ann, 10)}
        self.assertEqual(outcomes, {"m-d": "draw", "m-t": "loss", "m-p": "loss"})
        self.assertEqual((await self.store.history(bob, 1))[0].outcome, "win")

    async def test_a_match_with_a_player_without_account_records_nothing(self: Any) -> None:
        (ann,) = await self.players("ann")
        stranger = RankedResult("m-1", "tictactoe", "ranked", ((ann,), ("p-0123456789abcdef",)),
                                (1, 2))  # fmt: skip
        with self.assertRaises(UnknownAccount):
            await self.store.record_match(stranger, 1.0)
        self.assertEqual(await self.store.history(ann, 10), [])
        self.assertEqual(await self.store.top("tictactoe", "ranked", 10, NOW), [])
        # The match id is still free for the real result.
        (bob,) = await self.players("bob")
        fixed = RankedResult("m-1", "tictactoe", "ranked", ((ann,), (bob,)), (1, 2))
        self.assertEqual(set(await self.store.record_match(fixed, 2.0)), {ann, bob})

    def test_results_are_checked(self: Any) -> None:
        for teams, places in ((((("a",),), (1,))), ((("a",), ("a",)), (1, 2)),
                              ((("a",), ()), (1, 2)), ((("a",), ("b",)), (1,)),
                              ((("a",), ("b",)), (0, 1))):  # fmt: skip
            with self.assertRaises(InvalidValue):
                RankedResult("m", "g", "ranked", teams, places)

    # -- leaderboards and history --------------------------------------------

    async def _league(self) -> list[str]:
        """Eight players; player i has won i matches against the last one."""
        ids = await self.players(*(f"p{i}" for i in range(8)))
        loser = ids[-1]
        n = 0
        for i, player in enumerate(ids[:-1]):
            for _ in range(i):
                n += 1
                await self.store.record_match(
                    RankedResult(f"m-{n}", "dice", "ranked", ((player,), (loser,)), (1, 2)),
                    float(n))  # fmt: skip
        return ids

    async def test_leaderboard_top_and_around_a_player(self: Any) -> None:
        ids = await self._league()
        everyone = await self.store.top("dice", "ranked", 100, NOW)
        # p0 never played: not on the board; everyone else is, by conservative value.
        self.assertEqual({e.account_id for e in everyone}, set(ids[1:]))
        self.assertEqual([e.rank for e in everyone], list(range(1, 8)))
        values = [e.rating.conservative for e in everyone]
        self.assertEqual(values, sorted(values, reverse=True))
        self.assertEqual([e.display_name for e in everyone],
                         [f"p{ids.index(e.account_id)}" for e in everyone])  # fmt: skip
        self.assertEqual(await self.store.top("dice", "ranked", 3, NOW), everyone[:3])
        for entry in everyone:
            page = await self.store.around(entry.account_id, "dice", "ranked", 3, NOW)
            start = min(max(0, entry.rank - 2), len(everyone) - 3)
            self.assertEqual(page, everyone[start:start + 3])
            self.assertIn(entry, page)
        self.assertEqual(await self.store.around(ids[0], "dice", "ranked", 5, NOW), [])
        self.assertEqual(await self.store.top("dice", "normal", 10, NOW), [])
        with self.assertRaises(InvalidValue):
            await self.store.top("dice", "ranked", 0, NOW)

    async def test_a_banned_player_leaves_the_leaderboard_while_banned(self: Any) -> None:
        await self._league()
        everyone = await self.store.top("dice", "ranked", 100, NOW)
        cheat = everyone[1].account_id
        await self.store.ban(cheat, "win trading", NOW + 100.0)
        during = await self.store.top("dice", "ranked", 100, NOW)
        self.assertEqual([e.account_id for e in during],
                         [e.account_id for e in everyone if e.account_id != cheat])  # fmt: skip
        self.assertEqual([e.rank for e in during], list(range(1, 7)))
        self.assertEqual(await self.store.around(cheat, "dice", "ranked", 3, NOW), [])
        last = everyone[-1].account_id
        self.assertEqual([e.rank for e in await self.store.around(last, "dice", "ranked", 3, NOW)],
                         [4, 5, 6])  # fmt: skip
        # The ban over, the player is back where their rating puts them.
        self.assertEqual(await self.store.top("dice", "ranked", 100, NOW + 100.0), everyone)
        await self.store.unban(cheat)
        self.assertEqual(await self.store.top("dice", "ranked", 100, NOW), everyone)

    async def test_history_is_newest_first_with_opponents_and_changes(self: Any) -> None:
        ids = await self._league()
        loser = ids[-1]
        history = await self.store.history(loser, 5)
        self.assertEqual([h.match_id for h in history], ["m-21", "m-20", "m-19", "m-18", "m-17"])
        last = history[0]
        self.assertEqual((last.game, last.queue, last.ended, last.outcome, last.place),
                         ("dice", "ranked", 21.0, "loss", 2))  # fmt: skip
        self.assertEqual([(o.account_id, o.display_name) for o in last.opponents],
                         [(ids[6], "p6")])  # fmt: skip
        self.assertLess(last.change.change, 0)
        now = await self.store.ratings_of([loser], "dice", "ranked")
        self.assertEqual(last.change.after, now[loser])
        self.assertEqual(len(await self.store.history(loser, 1000)), 21)
        self.assertEqual(await self.store.history(ids[0], 5), [])

    async def test_standings_are_each_queues_rating_and_how_its_matches_ended(
        self: Any,
    ) -> None:
        ann, bob, cat, dan = await self.players("ann", "bob", "cat", "dan")
        for match_id, game, teams, places in [
            ("m-1", "dice", ((ann,), (bob,)), (1, 2)),
            ("m-2", "dice", ((ann,), (bob,)), (2, 1)),
            ("m-3", "dice", ((cat,), (ann,)), (1, 1)),
            ("m-4", "maze", ((bob,), (ann,), (cat,)), (1, 2, 3)),
        ]:
            await self.store.record_match(RankedResult(match_id, game, "ranked", teams, places),
                                          NOW)  # fmt: skip
        standings = await self.store.standings(ann)
        self.assertEqual([(s.game, s.queue, s.wins, s.losses, s.draws) for s in standings],
                         [("dice", "ranked", 1, 1, 1), ("maze", "ranked", 0, 1, 0)])  # fmt: skip
        for standing in standings:
            now = await self.store.ratings_of([ann], standing.game, standing.queue)
            self.assertEqual(standing.rating, now[ann])
        self.assertEqual([s.rating.matches for s in standings], [3, 1])
        # Never rated: no standings.
        self.assertEqual(await self.store.standings(dan), [])

    async def test_the_leaderboard_equals_a_replay_of_the_history(self: Any) -> None:
        ids = await self._league()
        replayed = {p: ratings.new_rating() for p in ids}
        loser = ids[-1]
        for entry in reversed(await self.store.history(loser, 100)):
            winner = entry.opponents[0].account_id
            result = RankedResult(entry.match_id, "dice", "ranked", ((winner,), (loser,)), (1, 2))
            replayed.update(ratings.rate(result, replayed))
        board = {e.account_id: e.rating
                 for e in await self.store.top("dice", "ranked", 100, NOW)}  # fmt: skip
        self.assertEqual(board, {p: r for p, r in replayed.items() if r.matches})

    # -- schema ---------------------------------------------------------------

    async def test_a_reopened_database_keeps_everything(self: Any) -> None:
        ann, bob = await self.players("ann", "bob")
        await self.store.record_match(
            RankedResult("m-1", "dice", "ranked", ((ann,), (bob,)), (1, 2)), 5.0)  # fmt: skip
        before = (await self.store.get(ann), await self.store.top("dice", "ranked", 10, NOW))
        self.store.close()
        reopened = await self.open()
        self.assertEqual((await reopened.get(ann), await reopened.top("dice", "ranked", 10, NOW)),
                         before)  # fmt: skip

    async def test_a_newer_schema_is_migrated_in_order_and_a_newer_database_refused(
        self: Any,
    ) -> None:
        (ann,) = await self.players("ann")
        self.store.close()
        newer = [*MIGRATIONS, ("CREATE TABLE later_one (x TEXT)",),
                 ("INSERT INTO later_one (x) VALUES ('after the first')",)]  # fmt: skip
        upgraded = await self.open(migrations=newer)
        self.assertEqual((await upgraded.get(ann)).display_name, "ann")
        upgraded.close()
        with self.assertRaises(SchemaTooNew) as raised:
            await self.open()
        message = str(raised.exception)
        self.assertNotIn("\n", message)
        self.assertIn(f"schema version {LATEST + 2}, newer than this vinom's {LATEST}", message)
        # Nothing of the database changed: the newer code still reads it.
        again = await self.open(migrations=newer)
        self.assertEqual((await again.get(ann)).display_name, "ann")

    async def test_calls_answer_later_from_the_pools_thread(self: Any) -> None:
        # The call returns before the database has done anything: the work runs in
        # the pool's thread and the answer comes back through the reactor.
        pending = self.store.account_for(Identity("jwt", "t"), "Tee", 1.0)
        self.assertFalse(pending.called)
        self.assertEqual((await pending).display_name, "Tee")
