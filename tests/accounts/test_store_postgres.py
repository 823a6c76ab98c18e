"""The account store on PostgreSQL (what every lobby of a cluster shares): the
shared contract (store_contract.py) on a real server started by the tests
(tests/support/postgres_server.py), and what only a server has."""

# slow: starts PostgreSQL (tests/support/postgres_server.py)

from __future__ import annotations

import os

import psycopg
from twisted.enterprise.adbapi import ConnectionLost
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.accounts.store_contract import AccountStoreContract
from tests.support.ports import free_tcp_port
from tests.support.postgres_server import postgres_database, shared_postgres
from vinom.accounts.interfaces import Identity
from vinom.accounts.sql import POSTGRES_POOL, open_store, store_from_url
from vinom.errors import BackendUnavailable


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

    async def test_a_restarted_server_costs_each_connection_one_call(self) -> None:
        url = await postgres_database(self)
        store = await open_store(url, os.getcwd())
        self.addCleanup(store.close)
        made = await store.account_for(Identity("jwt", "ann"), "Ann", 1.0)
        await deferToThread(shared_postgres().restart)
        failed = 0
        for _ in range(POSTGRES_POOL + 1):
            try:
                self.assertEqual(await store.get(made.account_id), made)
            except BackendUnavailable as e:
                self.assertIn(f"the account database {url}: ", str(e))
                failed += 1
        self.assertLessEqual(failed, POSTGRES_POOL)
        self.assertEqual(await store.get(made.account_id), made)
        # adbapi logs each broken connection's failed rollback once (and why it failed).
        self.assertEqual(len(self.flushLoggedErrors(ConnectionLost)), failed)
        self.flushLoggedErrors(psycopg.OperationalError)
