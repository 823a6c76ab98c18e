"""The account database's schema, its versions and their migration at start.

`MIGRATIONS` lists every schema version in order, each the statements that
take the previous version to it; `schema_version` holds the version a
database is at. `migrate` runs, in one transaction, every migration past the
database's version, or refuses (SchemaTooNew) a database a newer vinom has
migrated: this code does not know its tables. The statements are written once
for SQLite and PostgreSQL (types both read alike: TEXT, BIGINT, DOUBLE
PRECISION); `Dialect` holds the few things that differ.

A new version is one more entry at the end; an entry is never changed once
released, since databases already past it will not run it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from vinom.accounts.records import SchemaTooNew


@frozen
class Dialect:
    """What differs between the two databases, as the store's SQL sees it."""

    name: str
    # The DB-API parameter marker: the store writes '?' and PostgreSQL's driver wants '%s'.
    marker: str
    # What a write transaction starts with: SQLite's BEGIN IMMEDIATE takes the write
    # lock at once (two processes on one file then wait rather than fail at commit);
    # psycopg opens a transaction by itself.
    begin: str | None
    # Row locks for a read-then-write (SQLite's one writer needs none).
    for_update: str
    # Serializes two processes migrating one database at once.
    migration_lock: str | None
    # The database's clock, in Unix seconds: a ban's time and the lobbies' reads of new
    # bans share it, whatever the clocks of the machines that write and read them.
    clock: str

    def sql(self, text: str) -> str:
        return text if self.marker == "?" else text.replace("?", self.marker)


SQLITE = Dialect(
    "sqlite", "?", "BEGIN IMMEDIATE", "", None, "((julianday('now') - 2440587.5) * 86400.0)"
)
# pg_advisory_xact_lock: a lock held until the transaction ends, on a number of
# our own (the bytes "vinomacc"), so that two lobbies starting together migrate
# one after the other.
POSTGRESQL = Dialect(
    "postgresql", "%s", None, " FOR UPDATE", "SELECT pg_advisory_xact_lock(8680213587330458467)",
    "EXTRACT(EPOCH FROM clock_timestamp())",
)  # fmt: skip

MIGRATIONS: Sequence[Sequence[str]] = (
    # 1: accounts, their identities, devices, ratings, rated matches.
    (
        """CREATE TABLE accounts (
            account_id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL,
            ban_reason TEXT,
            ban_until DOUBLE PRECISION,
            metadata TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE identities (
            provider TEXT NOT NULL,
            subject TEXT NOT NULL,
            account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
            linked DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (provider, subject)
        )""",
        "CREATE INDEX identities_by_account ON identities (account_id)",
        """CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE ratings (
            account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
            game TEXT NOT NULL,
            queue TEXT NOT NULL,
            mu DOUBLE PRECISION NOT NULL,
            sigma DOUBLE PRECISION NOT NULL,
            conservative DOUBLE PRECISION NOT NULL,
            matches BIGINT NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (account_id, game, queue)
        )""",
        "CREATE INDEX ratings_by_value ON ratings (game, queue, conservative DESC, account_id)",
        """CREATE TABLE rated_matches (
            match_id TEXT PRIMARY KEY,
            game TEXT NOT NULL,
            queue TEXT NOT NULL,
            ended DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE match_players (
            match_id TEXT NOT NULL REFERENCES rated_matches (match_id) ON DELETE CASCADE,
            account_id TEXT NOT NULL,
            team BIGINT NOT NULL,
            place BIGINT NOT NULL,
            outcome TEXT NOT NULL,
            ended DOUBLE PRECISION NOT NULL,
            mu_before DOUBLE PRECISION NOT NULL,
            sigma_before DOUBLE PRECISION NOT NULL,
            matches_before BIGINT NOT NULL,
            mu_after DOUBLE PRECISION NOT NULL,
            sigma_after DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (match_id, account_id)
        )""",
        "CREATE INDEX match_players_by_account ON match_players (account_id, ended DESC)",
    ),
    # 2: when each ban was made (the database's clock), so that every lobby finds the
    # bans made since it last looked and ends those players' connections.
    (
        "ALTER TABLE accounts ADD COLUMN banned_at DOUBLE PRECISION",
        "CREATE INDEX accounts_by_ban ON accounts (banned_at)",
    ),
)

LATEST = len(MIGRATIONS)


def migrate(cursor: Any, dialect: Dialect, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the database to the last of `migrations` in the cursor's transaction and
    return the version it was at; SchemaTooNew (one line) if it is past them."""
    if dialect.begin:
        cursor.execute(dialect.begin)
    if dialect.migration_lock:
        cursor.execute(dialect.migration_lock)
    cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
    cursor.execute("SELECT version FROM schema_version")
    row = cursor.fetchone()
    found = 0 if row is None else int(row[0])
    if found > len(migrations):
        raise SchemaTooNew(
            f"the account database is at schema version {found}, newer than this vinom's "
            f"{len(migrations)}: run a vinom at least as new as the one that migrated it"
        )
    for statements in migrations[found:]:
        for statement in statements:
            cursor.execute(statement)
    if row is None:
        cursor.execute(dialect.sql("INSERT INTO schema_version (version) VALUES (?)"),
                       (len(migrations),))  # fmt: skip
    elif found != len(migrations):
        cursor.execute(dialect.sql("UPDATE schema_version SET version = ?"), (len(migrations),))
    return found
