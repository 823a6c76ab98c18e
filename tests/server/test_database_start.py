"""`twistd -n vinom` and its account database, started as an operator starts it:
the database made and migrated in the data directory at the first start, and a
database it cannot use ending the start in one line."""

# slow: starts twistd vinom (child processes) and PostgreSQL

from __future__ import annotations

import os
import sqlite3

import psycopg
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.server.test_startup import Twistd, only_line
from tests.support.ports import free_tcp_port
from tests.support.postgres_server import postgres_database
from vinom.accounts.schema import LATEST, MIGRATIONS
from vinom.accounts.sql import SQLITE_FILE, open_store


def schema_version(path: str) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT version FROM schema_version").fetchone()[0])


class DatabaseStartTests(TestCase):
    timeout = 90

    async def test_the_first_start_makes_the_database_in_the_data_directory(self) -> None:
        twistd = Twistd(self)
        await twistd.wait_for(b"operations dashboard:")
        path = os.path.join(twistd.directory, "vinom-data", SQLITE_FILE)
        self.assertEqual(schema_version(path), LATEST)

    async def test_a_database_a_newer_vinom_migrated_is_one_line(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        newer = await open_store(None, data_dir, migrations=[*MIGRATIONS, ("SELECT 1",)])
        newer.close()
        path = os.path.join(data_dir, SQLITE_FILE)
        twistd = Twistd(self, "--database", path)
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "--database")
        self.assertEqual(
            line,
            f"vinom: --database {path}: the account database is at schema version {LATEST + 1}, "
            f"newer than this vinom's {LATEST}: run a vinom at least as new as the one that "
            "migrated it",
        )
        self.assertEqual(schema_version(path), LATEST + 1)

    async def test_an_unreachable_postgresql_is_one_line_without_its_password(self) -> None:
        port = free_tcp_port()
        twistd = Twistd(self, "--database", f"postgresql://vinom:hunter2@127.0.0.1:{port}/v")
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "--database")
        self.assertTrue(line.startswith(
            f"vinom: cannot use the account database postgresql://vinom:***@127.0.0.1:{port}/v: "
        ), line)  # fmt: skip
        self.assertNotIn(b"hunter2", twistd.output)

    async def test_a_lobby_on_postgresql_migrates_it_at_start(self) -> None:
        url = await postgres_database(self)
        twistd = Twistd(self, "--database", url)
        await twistd.wait_for(b"operations dashboard:")

        def version() -> int:
            with psycopg.connect(url) as connection:
                row = connection.execute("SELECT version FROM schema_version").fetchone()
                assert row is not None
                return int(row[0])

        self.assertEqual(await deferToThread(version), LATEST)
        self.assertFalse(os.path.exists(os.path.join(twistd.directory, "vinom-data", SQLITE_FILE)))
