"""The account store on SQLite (the embedded default): the shared contract
(store_contract.py), and what only a file has."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.accounts.store_contract import SECRET, AccountStoreContract
from vinom.accounts.interfaces import AuthFailed, Identity
from vinom.accounts.records import RankedResult
from vinom.accounts.sql import (
    BATCH_INTERVAL,
    MAX_BATCH,
    RECENT_SIGN_IN_TTL,
    SQLITE_FILE,
    SqlAccountStore,
    open_store,
    store_from_url,
)
from vinom.errors import BackendUnavailable


async def traced_store(case: TestCase, clock: Clock | None = None) -> tuple[Any, list[str]]:
    """A started store on a new file, and every statement its connection runs (the
    file's view of it). `clock` times its sign-ins' transactions."""
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    store = store_from_url(None, directory, clock=clock)
    case.addCleanup(store.close)
    await store.start()
    statements: list[str] = []
    await store._pool.runWithConnection(
        lambda connection: connection.set_trace_callback(statements.append))
    return store, statements


class SQLiteAccountStoreTests(AccountStoreContract, TestCase):
    async def database(self) -> str:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return os.path.join(directory, "accounts.sqlite3")


class DefaultFileTests(TestCase):
    async def test_the_default_database_is_a_file_in_the_data_directory(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        store = await open_store(None, data_dir)
        self.addCleanup(store.close)
        made = await store.account_for(Identity("jwt", "ann"), "Ann", 1.0)
        store.close()
        self.assertTrue(os.path.isfile(os.path.join(data_dir, SQLITE_FILE)))
        # sqlite:/// names the same file.
        again = await open_store(f"sqlite:///{data_dir}/{SQLITE_FILE}", "elsewhere")
        self.addCleanup(again.close)
        self.assertEqual(await again.get(made.account_id), made)


class SharedTransactionTests(TestCase):
    """Sign-ins on SQLite share transactions: a commit syncs the file, which costs
    more than a sign-in's own statements."""

    async def open(self) -> tuple[Any, list[str]]:
        return await traced_store(self)

    async def test_sign_ins_at_once_share_a_few_commits(self) -> None:
        store, statements = await self.open()
        players = 3 * MAX_BATCH
        made = await gatherResults([
            store.account_for(Identity("jwt", f"p{n}"), f"P{n}", 5.0) for n in range(players)
        ])  # fmt: skip
        self.assertEqual(len({a.account_id for a in made}), players)
        writes = [s for s in statements if s == "BEGIN IMMEDIATE"]
        # The first alone, then the rest MAX_BATCH at a time.
        self.assertEqual(len(writes), 1 + -(-(players - 1) // MAX_BATCH))
        # Each transaction reads its sign-ins' accounts in one query.
        self.assertEqual(len([s for s in statements if s.startswith("SELECT")]), len(writes))
        again = await gatherResults([store.get(a.account_id) for a in made])
        self.assertEqual(again, made)

    async def test_one_new_identity_signing_in_twice_in_one_transaction_gets_one_account(
        self,
    ) -> None:
        store, statements = await self.open()
        first = store.account_for(Identity("jwt", "first"), "First", 5.0)
        twice = [store.account_for(Identity("jwt", "twin"), name, 5.0) for name in "AB"]
        await first
        made = await gatherResults(twice)
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 2)
        self.assertEqual(made[0], made[1])
        self.assertEqual(made[0].display_name, "A")
        self.assertEqual(await store.find("jwt", "twin"), made[0])

    async def test_sign_ins_waiting_when_the_store_closes_are_unavailable(self) -> None:
        store, _ = await self.open()
        first = store.account_for(Identity("jwt", "first"), "First", 5.0)
        waiting = [store.account_for(Identity("jwt", f"w{n}"), "W", 5.0) for n in range(3)]
        store.close()
        for d in waiting:
            with self.assertRaises(BackendUnavailable):
                await d
        await first  # the one in flight finishes: it does not hang

    async def test_sign_ins_start_a_transaction_at_most_every_batch_interval(self) -> None:
        """With a clock (the server's reactor), sign-ins arriving within BATCH_INTERVAL of
        the last transaction's start wait and share the next; a lone one on an idle
        store starts at once. Their commits are not synced on their own."""
        clock = Clock()
        store, statements = await traced_store(self, clock)
        first = await store.account_for(Identity("jwt", "p0"), "P", 5.0)
        later = [store.account_for(Identity("jwt", f"p{n}"), "P", 5.0) for n in range(1, 4)]
        clock.advance(BATCH_INTERVAL)
        made = await gatherResults(later)
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 2)
        self.assertEqual(len({a.account_id for a in [first, *made]}), 4)
        clock.advance(BATCH_INTERVAL)
        await store.account_for(Identity("jwt", "alone"), "A", 5.0)
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 3)
        # Said to the connection once, not again for each sign-in transaction.
        self.assertEqual(statements.count("PRAGMA synchronous = NORMAL"), 1)
        # Every other write is synced, and the next sign-in's is not again.
        await store.record_match(RankedResult("m-1", "dice", "ranked",
                                              ((first.account_id,), (made[0].account_id,)),
                                              (1, 2)), 6.0)  # fmt: skip
        self.assertEqual(statements.count("PRAGMA synchronous = FULL"), 1)
        clock.advance(BATCH_INTERVAL)
        await store.account_for(Identity("jwt", "after"), "A", 6.0)
        self.assertEqual(statements.count("PRAGMA synchronous = NORMAL"), 2)
        self.assertEqual([s for s in statements if s.startswith("PRAGMA synchronous")][-2:],
                         ["PRAGMA synchronous = FULL", "PRAGMA synchronous = NORMAL"])  # fmt: skip

    async def test_a_known_devices_sign_in_is_one_transaction(self) -> None:
        """A device's check reads its account too: the sign-in's account (the lobby's next
        call) is answered without a second transaction."""
        clock = Clock()
        clock.advance(1_000.0)
        store, statements = await traced_store(self, clock)

        async def sign_in() -> Any:
            identity = await store.authenticate_device("phone-00001", SECRET, clock.seconds())
            account = store.account_for(identity, "Phone", clock.seconds())
            clock.advance(BATCH_INTERVAL)  # (a second transaction waits for its turn)
            return await account

        made = await sign_in()
        clock.advance(RECENT_SIGN_IN_TTL)  # both forgotten: the file answers
        statements.clear()
        self.assertEqual(await sign_in(), made)
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 1)


class RecentSignInTests(TestCase):
    """A returning player's sign-in within RECENT_SIGN_IN_TTL is answered without the
    file; another process's write to the file is seen at the next sign-in."""

    async def test_a_returning_sign_in_within_the_ttl_runs_no_statement(self) -> None:
        clock = Clock()
        clock.advance(1_000.0)
        store, statements = await traced_store(self)
        ann = Identity("jwt", "ann")
        made = await store.account_for(ann, "Ann", clock.seconds())
        phone = await store.authenticate_device("phone-00001", SECRET, clock.seconds())
        statements.clear()
        clock.advance(RECENT_SIGN_IN_TTL - 0.5)
        self.assertEqual(await store.account_for(ann, "Ann", clock.seconds()), made)
        self.assertEqual(await store.authenticate_device("phone-00001", SECRET, clock.seconds()),
                         phone)  # fmt: skip
        with self.assertRaises(AuthFailed) as refused:
            await store.authenticate_device("phone-00001", "w" * 43, clock.seconds())
        self.assertEqual(refused.exception.reason, "bad_secret")
        self.assertEqual(statements, [])
        # At the TTL both are read from the file again.
        clock.advance(0.5)
        self.assertEqual(await store.account_for(ann, "Ann", clock.seconds()), made)
        self.assertEqual(await store.authenticate_device("phone-00001", SECRET, clock.seconds()),
                         phone)  # fmt: skip
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 2)

    async def test_another_process_writing_the_file_is_seen_at_the_next_sign_in(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        server = await open_store(None, directory)
        self.addCleanup(server.close)
        ann = Identity("jwt", "ann")
        made = await server.account_for(ann, "Ann", 10.0)
        await server.account_for(ann, "Ann", 10.0)
        # The operator's `vinom accounts ban` opens the same file, a store of its own.
        command: SqlAccountStore = await open_store(None, directory)
        self.addCleanup(command.close)
        await command.ban(made.account_id, "cheating", None)
        banned = await server.account_for(ann, "Ann", 10.0)
        assert banned.ban is not None
        self.assertEqual(banned.ban.reason, "cheating")
        await command.unban(made.account_id)
        self.assertIsNone((await server.account_for(ann, "Ann", 10.0)).ban)
        renamed = await command.rename(made.account_id, "Anna")
        self.assertEqual(await server.account_for(ann, "Ann", 10.0), renamed)
