"""The account store on SQLite (the embedded default): the shared contract
(store_contract.py), and what only a file has."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from tests.accounts.store_contract import AccountStoreContract
from vinom.accounts.interfaces import Identity
from vinom.accounts.sql import SQLITE_FILE, open_store


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
