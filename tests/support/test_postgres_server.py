"""The tests' own PostgreSQL (tests/support/postgres_server.py): it answers, runs as an
unprivileged user when the tests run as root, gives each test a schema of its own,
and keeps its data across a restart."""

# slow: starts PostgreSQL (tests/support/postgres_server.py)

from __future__ import annotations

import os
import pwd
from typing import Any

import psycopg
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.support.postgres_server import RUN_AS, postgres_database, shared_postgres


def query(url: str, *statements: str) -> Any:
    """The last statement's first row (run in one transaction, committed)."""
    with psycopg.connect(url) as connection:
        row = None
        for statement in statements:
            cursor = connection.execute(statement)  # type: ignore[arg-type]
            row = cursor.fetchone() if statement.startswith("SELECT") else None
        return row


class PostgresServerTests(TestCase):
    timeout = 120

    async def test_it_runs_unprivileged_and_keeps_data_across_a_restart(self) -> None:
        url = await postgres_database(self)
        server = shared_postgres()
        owner = pwd.getpwuid(os.stat(server.data).st_uid).pw_name
        self.assertEqual(owner, RUN_AS if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())[0])
        await deferToThread(query, url, "CREATE TABLE kept (x TEXT)",
                            "INSERT INTO kept VALUES ('here')")  # fmt: skip
        await deferToThread(server.restart)
        self.assertEqual(await deferToThread(query, url, "SELECT x FROM kept"), ("here",))

    async def test_each_test_database_is_a_schema_of_its_own(self) -> None:
        first, second = await postgres_database(self), await postgres_database(self)
        await deferToThread(query, first, "CREATE TABLE mine (x TEXT)")
        with self.assertRaises(psycopg.errors.UndefinedTable):
            await deferToThread(query, second, "SELECT x FROM mine")
