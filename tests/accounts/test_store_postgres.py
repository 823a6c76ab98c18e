"""The account store on PostgreSQL (what every lobby of a cluster shares): the
shared contract (store_contract.py) on a real server started by the tests
(tests/support/postgres_server.py), and what only a server has."""

# slow: starts PostgreSQL (tests/support/postgres_server.py)

from __future__ import annotations

import os

import psycopg
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.accounts.store_contract import AccountStoreContract
from tests.support.ports import free_tcp_port
from tests.support.postgres_server import postgres_database
from vinom.accounts.interfaces import Identity
from vinom.accounts.sql import open_store, store_from_url


class PostgresAccountStoreTests(AccountStoreContract, TestCase):
    timeout = 120

    async def database(self) -> str:
        return await postgres_database(self)


class PostgresServerTests(TestCase):
    timeout = 120

    async def test_lobbies_starting_together_migrate_one_after_the_other(self) -> None:
        url = await postgres_database(self)
        stores = await gatherResults(
            [Deferred.fromCoroutine(open_store(url, os.getcwd())) for _ in range(4)]
        )
        for store in stores:
            self.addCleanup(store.close)
        made = await stores[1].account_for(Identity("jwt", "ann"), "Ann", 1.0)
        self.assertEqual(await stores[3].get(made.account_id), made)

    async def test_an_unreachable_database_fails_its_start_in_one_error(self) -> None:
        store = store_from_url(f"postgresql://vinom@127.0.0.1:{free_tcp_port()}/none", ".")
        self.addCleanup(store.close)
        with self.assertRaises(psycopg.OperationalError):
            await store.start()
