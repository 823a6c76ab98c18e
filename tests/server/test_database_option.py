"""`--database`: the account database a lobby opens, its checks, and the start
that refuses a database it cannot use in one line."""

from __future__ import annotations

import os

from twisted.application import service
from twisted.internet import reactor
from twisted.python import usage
from twisted.trial.unittest import TestCase

from tests.support.ports import free_tcp_port
from vinom.accounts.interfaces import Identity
from vinom.accounts.schema import LATEST, MIGRATIONS
from vinom.accounts.sql import SQLITE_FILE, open_store
from vinom.server.accounts import AccountStoreService, build_accounts, migrate_now
from vinom.server.options import role_options
from vinom.server.startup import StartupError
from vinom.server.tap import Options


def parse(*argv: str) -> usage.Options:
    """The options of the role `argv` runs (its subcommand's, else the whole server's)."""
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


class DatabaseOptionTests(TestCase):
    def key_file(self) -> str:
        key = self.mktemp()
        with open(key, "wb") as f:
            f.write(bytes(range(32)))
        os.chmod(key, 0o600)
        return key

    def test_sqlite_in_the_data_directory_by_default(self) -> None:
        self.assertEqual(parse()["database-url"], os.path.join("vinom-data", SQLITE_FILE))
        self.assertEqual(parse("--data-dir", "/srv/v")["database-url"], f"/srv/v/{SQLITE_FILE}")
        self.assertEqual(parse("--database", "/srv/a.db")["database-url"], "/srv/a.db")
        url = "postgresql://vinom@db.example.com/vinom"
        self.assertEqual(parse("--database", url)["database-url"], url)

    def test_other_urls_are_refused_without_their_password(self) -> None:
        with self.assertRaises(usage.UsageError) as raised:
            parse("--database", "mysql://root:hunter2@db/vinom")
        self.assertEqual(
            str(raised.exception),
            "--database 'mysql://root:***@db/vinom': a postgresql:// URL or a SQLite file (a "
            "path or sqlite:///PATH)",
        )
        with self.assertRaises(usage.UsageError):
            parse("--database", " ")


class StartTests(TestCase):
    async def test_a_database_a_newer_vinom_migrated_ends_the_start_in_one_line(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        newer = await open_store(None, data_dir, migrations=[*MIGRATIONS, ("SELECT 1",)])
        newer.close()
        path = os.path.join(data_dir, SQLITE_FILE)
        with self.assertRaises(StartupError) as raised:
            migrate_now(path)
        self.assertEqual(
            str(raised.exception),
            f"vinom: --database {path}: the account database is at schema version {LATEST + 1}, "
            f"newer than this vinom's {LATEST}: run a vinom at least as new as the one that "
            "migrated it",
        )

    def test_an_unreachable_postgresql_ends_the_start_in_one_line(self) -> None:
        port = free_tcp_port()
        with self.assertRaises(StartupError) as raised:
            migrate_now(f"postgresql://vinom:hunter2@127.0.0.1:{port}/vinom")
        message = str(raised.exception)
        self.assertTrue(message.startswith(
            f"vinom: cannot use the account database postgresql://vinom:***@127.0.0.1:{port}"
            "/vinom: "), message)  # fmt: skip
        self.assertTrue(message.endswith("; correct --database"), message)
        self.assertNotIn("\n", message)
        self.assertNotIn("hunter2", message)

    async def test_the_lobby_store_opens_with_the_server_and_closes_with_it(self) -> None:
        data_dir = os.path.join(os.path.abspath(self.mktemp()), "data")
        options = parse("--data-dir", data_dir)
        root = service.MultiService()
        store = build_accounts(options, reactor, root, check=True)
        assert store is not None
        # Migrated before the reactor would run: the file is there, at the latest version.
        self.assertTrue(os.path.isfile(os.path.join(data_dir, SQLITE_FILE)))
        root.startService()
        accounts = root.getServiceNamed("accounts")
        assert isinstance(accounts, AccountStoreService) and accounts.ready is not None
        self.assertEqual(await accounts.ready, LATEST)
        made = await store.account_for(Identity("jwt", "ann"), "Ann", 1.0)
        await root.stopService()
        # What the server kept is there at its next start.
        again = await open_store(None, data_dir)
        self.addCleanup(again.close)
        self.assertEqual(await again.get(made.account_id), made)
