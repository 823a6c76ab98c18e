"""The server's account database: `--database`, its check, and the service that
opens the store and closes it.

`--database` is a postgresql:// URL or a SQLite file (a path, or
sqlite:///PATH); without it a lobby keeps its accounts in DATA_DIR/accounts.sqlite3.
A SQLite file belongs to one process, so with `--redis` (lobbies in many
processes sharing state) only PostgreSQL is taken, and without `--database`
such a lobby has no account database (`database-url` None).

`build_accounts` makes the store of a lobby. Under twistd the schema is
migrated before the reactor starts (as `check_redis` waits for Redis): a
database that cannot be reached, or that a newer vinom migrated, ends the
start in one line, and so does a SQLite file another server uses: under twistd
the server holds an exclusive lock (`flock`) on FILE.lock beside it for its
life (`lock_sqlite`), which the `vinom accounts` command does not take, so an
operator still bans beside the running server. `AccountStoreService` starts
the store's pool with the server, and closes it and lets the lock go when the
server stops.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import IO, Any

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from vinom.accounts import schema
from vinom.accounts.records import SchemaTooNew
from vinom.accounts.sql import (
    CONNECT_TIMEOUT,
    SqlAccountStore,
    describe,
    is_postgresql,
    sqlite_path,
    store_from_url,
)
from vinom.accounts.sql import (
    database_url as default_database,
)
from vinom.server.checks import needs_extra
from vinom.server.startup import StartupError

_log = Logger()


def database_option(name: str, value: str) -> str:
    """The coerce column of `--database`: a postgresql:// URL or a SQLite file."""
    text = value.strip()
    if not text:
        raise usage.UsageError(f"--{name} must name a SQLite file or a postgresql:// URL")
    if "://" in text and not is_postgresql(text) and not text.startswith("sqlite:///"):
        raise usage.UsageError(
            f"--{name} {describe(text)!r}: a postgresql:// URL or a SQLite file (a path or "
            "sqlite:///PATH)"
        )
    if is_postgresql(text):
        needs_extra(f"--{name} postgresql://...", "postgres", "psycopg")
    return text


def database_url(options: usage.Options) -> str | None:
    """The account database of these options (postOptions' `database-url`); a
    UsageError for SQLite with --redis."""
    given = options["database"]
    if options["shared"] is not None:
        if given is not None and not is_postgresql(given):
            raise usage.UsageError(
                "--database with --redis must be a postgresql:// URL that every lobby shares, "
                "not a SQLite file (one process's)"
            )
        return given
    return default_database(given, options["data-dir"])


def migrate_now(url: str) -> int:
    """Migrate the database's schema at once, blocking (before the reactor runs);
    StartupError, one line, when it cannot be used. Returns the version found."""
    try:
        if is_postgresql(url):
            import psycopg

            with (
                psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT) as connection,
                connection.cursor() as cursor,
            ):
                # The connection's block commits the migration when it ends without error.
                return schema.migrate(cursor, schema.POSTGRESQL)
        file = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=10.0)
        try:
            try:
                found = schema.migrate(file.cursor(), schema.SQLITE)
            except BaseException:
                file.rollback()
                raise
            file.commit()
            return found
        finally:
            file.close()
    except SchemaTooNew as e:
        raise StartupError(f"--database {describe(url)}: {e}") from None
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StartupError(
            f"cannot use the account database {describe(url)}: {reason}; correct --database"
        ) from None


def lock_sqlite(path: str) -> IO[str]:
    """Lock the SQLite file at `path` for this process: the open lock file, held until
    closed (a forked daemon keeps it); StartupError, one line, if another holds it."""
    lock_path = f"{path}.lock"
    try:
        lock = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held for its life)
    except OSError as e:
        raise StartupError(f"cannot use the account database {path}: cannot open {lock_path}: "
                           f"{e.strerror}; correct --database or --data-dir") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip()[:20] or "?"
        lock.close()
        raise StartupError(
            f"another server (pid {holder}) uses the account database {path}: one server "
            f"process per SQLite file; stop it, or give this one another --data-dir"
        ) from None
    _write_pid(lock)
    return lock


def _write_pid(lock: IO[str]) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()


class AccountStoreService(service.Service):
    """Starts the store's pool (migrating, if not done yet) and closes it at stop,
    letting `lock` (lock_sqlite's) go. `ready` fires once the store answers, or fails
    with why it cannot (logged)."""

    def __init__(self, store: SqlAccountStore, lock: IO[str] | None = None) -> None:
        self.store = store
        self.lock = lock
        self.ready: Deferred[int] | None = None

    def startService(self) -> None:
        super().startService()

        def failed(failure: Failure) -> Failure:
            _log.error("vinom: the account database {where}: {why}", where=self.store.where,
                       why=failure.getErrorMessage())  # fmt: skip
            return failure

        if self.lock is not None:
            _write_pid(self.lock)  # (a daemon's, forked since the lock was taken)
        self.ready = self.store.start()
        self.ready.addErrback(failed)

    def stopService(self) -> None:
        super().stopService()
        self.store.close()
        if self.lock is not None:
            self.lock.close()


def build_accounts(
    options: usage.Options, reactor: Any, root: service.MultiService, check: bool
) -> SqlAccountStore | None:
    """The lobby's account store (None: no lobby here, or no account database: module
    docstring), its service added to `root`; with `check` (under twistd) migrated at once."""
    url = options["database-url"]
    if url is None or options["role"] not in ("all", "lobby"):
        return None
    if not IReactorThreads.providedBy(reactor):
        # A test's MemoryReactor: no threads for the database's pool, so no store (every
        # reactor that runs a server has them).
        return None
    if options["database"] is None:
        # The default file's directory is the server's own, made if missing.
        os.makedirs(options["data-dir"], exist_ok=True)
    lock = None
    if check:
        if not is_postgresql(url):
            lock = lock_sqlite(sqlite_path(url))
        migrate_now(url)
    store = store_from_url(url, options["data-dir"], reactor)
    accounts = AccountStoreService(store, lock)
    accounts.setName("accounts")
    accounts.setServiceParent(root)
    return store
