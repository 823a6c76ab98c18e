"""The account store on SQLite (the embedded default): the shared contract
(store_contract.py), and what only a file has."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from tests.accounts.store_contract import AccountStoreContract
from vinom.accounts.interfaces import Identity
from vinom.accounts.sql import MAX_BATCH, SQLITE_FILE, open_store
from vinom.errors import BackendUnavailable


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
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        store = await open_store(None, directory)
        self.addCleanup(store.close)
        statements: list[str] = []
        # The pool's one connection, as the file sees it: every statement it runs.
        await store._pool.runWithConnection(
            lambda connection: connection.set_trace_callback(statements.append))
        return store, statements

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
        again = await gatherResults([store.get(a.account_id) for a in made])
        self.assertEqual(again, made)

    async def test_sign_ins_waiting_when_the_store_closes_are_unavailable(self) -> None:
        store, _ = await self.open()
        first = store.account_for(Identity("jwt", "first"), "First", 5.0)
        waiting = [store.account_for(Identity("jwt", f"w{n}"), "W", 5.0) for n in range(3)]
        store.close()
        for d in waiting:
            with self.assertRaises(BackendUnavailable):
                await d
        await first  # the one in flight finishes: it does not hang
