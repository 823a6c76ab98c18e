"""The account store on SQL: one implementation for SQLite and PostgreSQL.

Every call is one transaction run by a `twisted.enterprise.adbapi` connection
pool in its threads, so nothing waits on the database in the reactor's
thread; the SQL is written once (vinom.accounts.schema, `Dialect` for what
differs). Where two lobbies may race on PostgreSQL, a unique key decides and
the loser reads what the winner wrote:

- the first sign-in of an identity: its (provider, subject) key; the account
  the losing transaction made is removed in the same transaction;
- a device's first use: the device id's key;
- a ranked match's result: the match id's key on `rated_matches`. The second
  `record_match` of one match waits for the first one's transaction, changes
  nothing and answers with the changes the first one stored. Two different
  matches sharing a player lock those players' account rows in one order
  (`FOR UPDATE`, by account id) before reading their ratings, so no update is
  lost and no two transactions wait on each other in a circle.

SQLite has one connection in its pool (one writer), and each write starts
with BEGIN IMMEDIATE so that a second process on the same file (the
`vinom accounts` command beside a running server) waits for the lock.

Sign-ins on SQLite share transactions (`batch_sign_ins`): a commit costs the
file a sync (a few hundred microseconds of CPU, more than the sign-in's own
statements), so the calls of `account_for` and `authenticate_device` that
arrive while a sign-in transaction runs wait for it and then run together in
the next one, at most `MAX_BATCH` of them: one thread hop and one commit for
all, each answered with its own result or refusal; their `account_for`s read
their accounts in one query and make the new ones in one insert per table. With a clock (the
server's store has the reactor), these transactions start at most every
`BATCH_INTERVAL` seconds: a sign-in arriving sooner after the last one's
start waits for the interval's end, with the others arriving meanwhile. A lone
sign-in on an idle server starts at once. On PostgreSQL each call
keeps its own transaction: its pool has several connections, and lobbies'
transactions would otherwise lock rows in orders that could wait on each
other. A sign-in's commit on SQLite is not synced to the disk on its own
(`synchronous = NORMAL` for its transaction; every other write is synced, and
syncs the sign-ins' writes before it with its own): a crash of the process
loses nothing, a power cut may lose the accounts made since the last synced
write, none of which had a rated match yet.

A returning player's sign-in is answered from memory, in the reactor's thread
with no transaction, when this store read their account (or their device's
secret hash; a known device's check reads its account too) less than
`RECENT_SIGN_IN_TTL` seconds ago and nothing has changed it since
(`vinom.accounts.recent`): every write through the store that changes an
account (`link`, `unlink`, `rename`, `set_metadata`, `ban`, `unban`) forgets
what it remembers, when it is asked and when it is done, and a read that began
before is not remembered. On SQLite the store also forgets
when the database's files change under it: each transaction notes the files'
state (inode, size and modification time of its WAL, which every commit
writes: a database in WAL mode stays in it while the server holds it open) as
it leaves them, and a sign-in answers from memory only while the files are still
so, which makes a ban by another process (the `vinom accounts` command) seen at
the next sign-in. On PostgreSQL another process's write (another lobby's, the
command's) is seen within `RECENT_SIGN_IN_TTL`. A sign-in whose `last_seen` is
due to be written goes to the database.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from attrs import frozen
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.accounts import queries, ratings, schema
from vinom.accounts.interfaces import (
    Account,
    AuthFailed,
    Ban,
    IAccountStore,
    Identity,
    NewBans,
)
from vinom.accounts.recent import Recent
from vinom.accounts.records import (
    HistoryEntry,
    IdentityTaken,
    InvalidValue,
    LastIdentity,
    LeaderboardEntry,
    NotLinked,
    RankedResult,
    Rating,
    RatingChange,
    Standing,
    UnknownAccount,
    checked_identity,
    checked_name,
    checked_reason,
    encode_metadata,
)
from vinom.errors import BackendUnavailable
from vinom.identity import hash_secret, verify_secret

T = TypeVar("T")

# The file `--database` names by default, in the server's data directory.
SQLITE_FILE = "accounts.sqlite3"
# A leaderboard page or a history holds at most this many rows.
MAX_PAGE = 100
# Device credentials: a device id as Nakama takes it (10 to 128 characters), and a
# secret of at least 128 bits in URL-safe base64 (22 characters; vinom's clients
# make 32 random bytes, 43 characters), so that one SHA-256 is enough to keep it.
DEVICE_ID_LENGTH = (10, 128)
DEVICE_SECRET_LENGTH = (22, 128)
# Seconds a PostgreSQL connection attempt may take before the call fails.
CONNECT_TIMEOUT = 10
# PostgreSQL connections per process (each a thread of the pool).
POSTGRES_POOL = 4
# At most this many sign-ins share one SQLite transaction (each one holds the file's
# write lock that long).
MAX_BATCH = 64
# Sign-ins' SQLite transactions start at most this often (seconds; with a clock):
# sign-ins arriving meanwhile share the next, each thread hop and commit serving several
# (a thread hop costs the reactor's thread more than the transaction's statements).
BATCH_INTERVAL = 0.05
# Seconds a SQLite write waits for another process's lock on the file.
SQLITE_BUSY_TIMEOUT = 10.0
# A sign-in is answered from memory when the store read the account (or the device)
# less than this many seconds ago and has seen no change to it since (module
# docstring): the longest a write by another process that the store cannot see (on
# PostgreSQL, another lobby's) goes unseen by a sign-in.
RECENT_SIGN_IN_TTL = 5.0
# At most this many identities' accounts, and as many devices, are remembered.
RECENT_SIGN_INS = 4096
# What a write transaction on SQLite asks of the disk: sign-ins' commits are synced
# by the next durable write (module docstring).
_SYNCHRONOUS = {True: "PRAGMA synchronous = FULL", False: "PRAGMA synchronous = NORMAL"}



def _printable_ascii(text: object, low: int, high: int) -> bool:
    return (
        isinstance(text, str) and low <= len(text) <= high and text.isascii()
        and text.isprintable() and " " not in text
    )  # fmt: skip


@implementer(IAccountStore)
class SqlAccountStore:
    """Accounts in SQLite or PostgreSQL behind `IAccountStore` (module docstring).

    Built by `store_from_url`; `start()` opens the pool and migrates the schema,
    `close()` ends it.
    """

    def __init__(
        self,
        pool: adbapi.ConnectionPool,
        dialect: schema.Dialect,
        where: str,
        migrations: Sequence[Sequence[str]] = schema.MIGRATIONS,
        *,
        batch_sign_ins: bool = False,
        files: Sequence[str] = (),
        clock: IReactorTime | None = None,
    ) -> None:
        self._pool = pool
        self._dialect = dialect
        self._migrations = migrations
        self._closed = False
        # Sign-ins waiting for the transaction in flight (module docstring), or None
        # when none is in flight.
        self._batch_sign_ins = batch_sign_ins
        self._waiting: list[_Call[Any]] | None = None
        # With a clock, when the last sign-in transaction started, and the timer that
        # starts the next (module docstring).
        self._clock = clock
        self._batch_started = float("-inf")
        self._batch_timer: IDelayedCall | None = None
        # Accounts by identity and devices' secret hashes, lately read (module docstring).
        self._recent_accounts: Recent[tuple[str, str], Account] = Recent(
            RECENT_SIGN_IN_TTL, RECENT_SIGN_INS)  # fmt: skip
        self._recent_devices: Recent[str, str] = Recent(RECENT_SIGN_IN_TTL, RECENT_SIGN_INS)
        # One more each time they are forgotten: a read begun before is not remembered.
        self._generation = 0
        # SQLite: the database's files, and their state as this store's last
        # transaction left them (None: not known yet).
        self._files = tuple(files)
        # SQLite: the connection whose `synchronous` this store last set, and to what
        # (durable or not): set again only when a write asks for the other.
        self._synchronous: tuple[Any, bool] | None = None
        self._seen_files: _FileState | None = None
        # The database as an operator would name it (a path, or a URL without its password).
        self.where = where

    # -- life ---------------------------------------------------------------

    def start(self) -> Deferred[int]:
        """Start the pool and migrate the schema; fires with the version found, or fails
        with SchemaTooNew or the database's own error (the pool then closed)."""
        self._pool.start()

        def failed(failure: Any) -> Any:
            self.close()
            return failure

        def migrated(version: int) -> int:
            # The files as the migration left them: what the first sign-ins compare with.
            if self._files:
                self._seen_files = _file_state(self._files)
            return version

        d: Deferred[int] = self._pool.runInteraction(
            schema.migrate, self._dialect, self._migrations
        )
        d.addCallbacks(migrated, failed)
        return d

    def close(self) -> None:
        """Stop the pool's threads and close its connections; later calls fail with
        BackendUnavailable."""
        self._closed = True
        self._forget()
        self._synchronous = None
        waiting, self._waiting = self._waiting or [], None
        if self._batch_timer is not None and self._batch_timer.active():
            self._batch_timer.cancel()
        self._batch_timer = None
        for call in waiting:
            call.done.errback(BackendUnavailable(f"the account database {self.where}: closed"))
        if self._pool.running:
            self._pool.close()

    # -- plumbing -----------------------------------------------------------

    def _run(
        self, work: Callable[..., T], *args: Any, write: bool = True, durable: bool = True
    ) -> Deferred[T]:
        """`work(cursor, *args)` in one transaction in the pool's thread; a database that
        is down or does not answer fails the call with BackendUnavailable. A write that
        is not `durable` (sign-ins') is not synced to the disk on its own (SQLite)."""
        if self._closed:
            # adbapi would queue the call for good on its stopped thread pool.
            return _failed(BackendUnavailable(f"the account database {self.where}: closed"))
        d: Deferred[Any] = self._pool.runInteraction(
            self._transaction, work, write, durable, *args
        )
        if self._files:
            d.addCallback(self._settled, write)
        d.addErrback(self._unavailable)
        return d

    def _settled(self, settled: _Settled, write: bool) -> Any:
        # Another process wrote to the files since this store's last transaction (or,
        # for a read, while it ran): what is remembered may be out of date.
        if settled.before != self._seen_files or (not write and settled.after != settled.before):
            self._forget()
        self._seen_files = settled.after
        return settled.result

    def _forget(self) -> None:
        """Forget every account and device remembered, and any read in flight."""
        self._generation += 1
        self._recent_accounts.clear()
        self._recent_devices.clear()

    def _forgetting(self, result: T) -> T:
        self._forget()
        return result

    def _recall(self) -> bool:
        """Whether what is remembered may answer now: on SQLite, only while the files are
        as this store's last transaction left them (otherwise the next transaction, the
        sign-in's own, finds out whose change it was)."""
        return not self._files or _file_state(self._files) == self._seen_files

    def _changing(self, d: Deferred[T]) -> Deferred[T]:
        """`d`, a write that changes an account: remembered accounts are forgotten now and
        when it is done (a sign-in read while it ran may have read the account before)."""
        self._forget()
        return d.addBoth(self._forgetting)

    def _sign_in(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """`_run(work, *args)`, sharing a transaction with other sign-ins on SQLite."""
        if not self._batch_sign_ins or self._closed:
            return self._run(work, *args)
        call: _Call[T] = _Call(work, args, Deferred())
        if self._waiting is not None:
            self._waiting.append(call)
        else:
            self._waiting = [call]
            self._next_batch()
        return call.done

    def _run_batch(self, calls: list[_Call[Any]]) -> None:
        d = self._run(queries.batch, [(c.work, c.args) for c in calls], durable=False)

        def answered(outcomes: Any) -> None:
            if isinstance(outcomes, Failure):
                outcomes = [outcomes] * len(calls)
            # The next batch starts before anyone hears: a caller's own next call
            # (a device's account) joins the batch after it.
            self._next_batch()
            for call, outcome in zip(calls, outcomes, strict=True):
                if isinstance(outcome, Failure):
                    call.done.errback(outcome)
                else:
                    call.done.callback(outcome)

        d.addBoth(answered)

    def _next_batch(self) -> None:
        """Start the waiting sign-ins' transaction: now, or at the end of BATCH_INTERVAL
        from the last one's start. Called when none is in flight (or due)."""
        self._batch_timer = None
        waiting = self._waiting or []
        if not waiting:
            self._waiting = None
            return
        if self._clock is not None:
            now = self._clock.seconds()
            wait = self._batch_started + BATCH_INTERVAL - now
            if wait > 0:
                self._batch_timer = self._clock.callLater(wait, self._next_batch)
                return
            self._batch_started = now
        self._waiting = waiting[MAX_BATCH:]
        self._run_batch(waiting[:MAX_BATCH])

    def _unavailable(self, failure: Failure) -> Failure:
        # The transaction was rolled back (or never began): the call did nothing. After
        # a server restart each pooled connection fails one call this way, and adbapi
        # replaces it (logging its failed rollback once).
        lost: list[type[BaseException]] = [adbapi.ConnectionLost, sqlite3.OperationalError]
        if self._dialect is schema.POSTGRESQL:
            # Imported by the pool that opened the postgresql:// URL: psycopg is vinom's
            # postgres extra, not needed on SQLite.
            import psycopg

            lost += [psycopg.OperationalError, psycopg.InterfaceError]
        error = failure.check(*lost)
        if error is None:
            return failure
        text = str(failure.value).strip()
        reason = text.splitlines()[0] if text else type(failure.value).__name__
        raise BackendUnavailable(f"the account database {self.where}: {reason}")

    def _transaction(
        self, cursor: Any, work: Callable[..., T], write: bool, durable: bool, *args: Any
    ) -> T | _Settled:
        if not self._files:
            if self._dialect.begin:
                cursor.execute(self._dialect.begin if write else "BEGIN")
            return work(queries.Sql(cursor, self._dialect), *args)
        # SQLite. The files' state is read with the write lock held (BEGIN IMMEDIATE),
        # so no other process's commit falls between it and this one's.
        if write:
            connection = cursor.connection
            if self._synchronous != (connection, durable):
                cursor.execute(_SYNCHRONOUS[durable])
                self._synchronous = (connection, durable)
        cursor.execute(self._dialect.begin if write else "BEGIN")
        before = _file_state(self._files)
        result = work(queries.Sql(cursor, self._dialect), *args)
        # Committed here rather than by the pool, so that the files are read as this
        # transaction left them.
        cursor.execute("COMMIT")
        return _Settled(result, before, _file_state(self._files))

    # -- accounts -----------------------------------------------------------

    def account_for(self, identity: Identity, name: str, now: float) -> Deferred[Account]:
        try:
            provider, subject = checked_identity(identity.provider, identity.subject)
            display = checked_name(name)
            # A name the provider vouches for wins, unless players may not show it.
            if identity.display_name is not None:
                with suppress(InvalidValue):
                    display = checked_name(identity.display_name)
        except InvalidValue as e:
            return _failed(e)
        key = (provider, subject)
        account = self._recent_accounts.get(key, now)
        # Answered from memory unless its last_seen is due to be written.
        if account is not None and account.last_seen > now - queries.LAST_SEEN_INTERVAL and (
            self._recall()
        ):
            return succeed(account)
        generation = self._generation
        d = self._sign_in(queries.account_for, provider, subject, display, now)
        return d.addCallback(self._remember_account, key, now, generation)

    def _remember_account(
        self, account: Account, key: tuple[str, str], now: float, generation: int
    ) -> Account:
        if generation == self._generation:
            self._recent_accounts.put(key, account, now)
        return account

    def get(self, account_id: str) -> Deferred[Account | None]:
        return self._run(queries.load, account_id, write=False)

    def find(self, provider: str, subject: str) -> Deferred[Account | None]:
        """The account linked to (provider, subject), or None."""

        def find(sql: queries.Sql) -> Account | None:
            row = sql.one("SELECT account_id FROM identities WHERE provider = ? AND subject = ?",
                          provider, subject)  # fmt: skip
            return None if row is None else queries.load(sql, row[0])

        return self._run(find, write=False)

    def link(self, account_id: str, identity: Identity, now: float) -> Deferred[Account]:
        """Link one more identity; IdentityTaken if another account has it (linking it
        to the account it is linked to is no change)."""
        try:
            provider, subject = checked_identity(identity.provider, identity.subject)
        except InvalidValue as e:
            return _failed(e)

        def link(sql: queries.Sql) -> Account:
            queries.lock_rows(sql, [account_id])
            sql.run("INSERT INTO identities (provider, subject, account_id, linked) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (provider, subject) DO NOTHING",
                    provider, subject, account_id, now)  # fmt: skip
            owner = sql.one("SELECT account_id FROM identities WHERE provider = ? AND subject = ?",
                            provider, subject)  # fmt: skip
            if owner is None or owner[0] != account_id:
                raise IdentityTaken(f"{provider}:{subject} is linked to another account")
            return queries.must_load(sql, account_id)

        return self._changing(self._run(link))

    def unlink(self, account_id: str, identity: Identity) -> Deferred[Account]:
        """Unlink an identity; NotLinked if this account does not have it, LastIdentity
        if it is the account's only one."""

        def unlink(sql: queries.Sql) -> Account:
            queries.lock_rows(sql, [account_id])
            owner = sql.one("SELECT account_id FROM identities WHERE provider = ? AND subject = ?",
                            identity.provider, identity.subject)  # fmt: skip
            if owner is None or owner[0] != account_id:
                raise NotLinked(
                    f"{identity.provider}:{identity.subject} is not linked to {account_id}"
                )
            count = sql.one("SELECT COUNT(*) FROM identities WHERE account_id = ?", account_id)
            if count is None or int(count[0]) <= 1:
                raise LastIdentity(f"{account_id} would have no identity left to sign in with")
            sql.run("DELETE FROM identities WHERE provider = ? AND subject = ?",
                    identity.provider, identity.subject)  # fmt: skip
            return queries.must_load(sql, account_id)

        return self._changing(self._run(unlink))

    def rename(self, account_id: str, name: str) -> Deferred[Account]:
        """Change the display name (checked as a `hello` name is)."""
        try:
            display = checked_name(name)
        except InvalidValue as e:
            return _failed(e)
        return self._update(account_id, "display_name = ?", display)

    def set_metadata(self, account_id: str, metadata: Mapping[str, Any]) -> Deferred[Account]:
        """Replace the metadata bag (a JSON object of at most MAX_METADATA_BYTES)."""
        try:
            text = encode_metadata(metadata)
        except InvalidValue as e:
            return _failed(e)
        return self._update(account_id, "metadata = ?", text)

    def ban(self, account_id: str, reason: str, until: float | None) -> Deferred[Account]:
        """Ban the account until `until` (None: for good); a new ban replaces the old."""
        try:
            text = checked_reason(reason)
        except InvalidValue as e:
            return _failed(e)
        return self._update(
            account_id, f"ban_reason = ?, ban_until = ?, banned_at = {self._dialect.clock}",
            text, until,
        )  # fmt: skip

    def unban(self, account_id: str) -> Deferred[Account]:
        return self._update(account_id, "ban_reason = NULL, ban_until = NULL, banned_at = NULL")

    def bans_since(self, since: float) -> Deferred[NewBans]:
        """The bans made at `since` or later (the database's clock) and in force now."""

        def read(sql: queries.Sql) -> NewBans:
            (now,) = sql.one(f"SELECT {sql.dialect.clock}")
            rows = sql.all("SELECT account_id, ban_reason, ban_until FROM accounts "
                           "WHERE banned_at >= ? AND (ban_until IS NULL OR ban_until > ?)",
                           since, now)  # fmt: skip
            bans = {a: Ban(reason, None if until is None else float(until))
                    for a, reason, until in rows}  # fmt: skip
            return NewBans(float(now), bans)

        return self._run(read, write=False)

    def _update(self, account_id: str, assignments: str, *values: Any) -> Deferred[Account]:
        def update(sql: queries.Sql) -> Account:
            changed = sql.run(f"UPDATE accounts SET {assignments} WHERE account_id = ?",
                              *values, account_id)  # fmt: skip
            if changed == 0:
                raise UnknownAccount(account_id)
            return queries.must_load(sql, account_id)

        return self._changing(self._run(update))

    # -- devices ------------------------------------------------------------

    def authenticate_device(self, device_id: str, secret: str, now: float) -> Deferred[Identity]:
        """The identity ('device', device_id) if `secret` is the device's: a device seen
        for the first time keeps the secret's hash; AuthFailed('bad_secret') for a wrong
        secret, AuthFailed('malformed') for an id or secret of the wrong form."""
        if not _printable_ascii(device_id, *DEVICE_ID_LENGTH):
            return _failed(AuthFailed("malformed", "a device id is 10 to 128 printable characters"))
        if not _printable_ascii(secret, *DEVICE_SECRET_LENGTH):
            return _failed(AuthFailed("malformed", "a device secret is 22 to 128 characters"))

        def device(sql: queries.Sql) -> tuple[Identity, Account | None]:
            made = sql.run("INSERT INTO devices (device_id, secret_hash, created) VALUES (?, ?, ?) "
                           "ON CONFLICT (device_id) DO NOTHING",
                           device_id, hash_secret(secret), now)  # fmt: skip
            if not made:
                row = sql.one("SELECT secret_hash FROM devices WHERE device_id = ?", device_id)
                if not verify_secret(secret, None if row is None else row[0]):
                    raise AuthFailed("bad_secret")
            # A known device's account, read in the same transaction, so that the
            # sign-in's next call (`account_for`) is answered from memory, not by another.
            account = None if made else queries.signed_in(sql, [("device", device_id)]).get(
                ("device", device_id))
            return Identity("device", device_id), account

        known = self._recent_devices.get(device_id, now)
        if known is not None and self._recall():
            # A device's secret is kept once and never changed: its hash answers.
            if verify_secret(secret, known):
                return succeed(Identity("device", device_id))
            return _failed(AuthFailed("bad_secret"))
        generation = self._generation
        d = self._sign_in(device)
        return d.addCallback(self._remember_device, device_id, secret, now, generation)

    def _remember_device(
        self, found: tuple[Identity, Account | None], device_id: str, secret: str, now: float,
        generation: int,
    ) -> Identity:  # fmt: skip
        identity, account = found
        if generation == self._generation:
            self._recent_devices.put(device_id, hash_secret(secret), now)
            if account is not None:
                self._recent_accounts.put((identity.provider, identity.subject), account, now)
        return identity

    # -- ratings ------------------------------------------------------------

    def record_match(self, result: RankedResult, now: float) -> Deferred[dict[str, RatingChange]]:
        """Rate a ranked match once: each player's rating change by account id. A second
        call with the same match id changes nothing and answers as the first did.
        UnknownAccount (and nothing recorded) if a player has no account."""
        return self._run(queries.record_match, result, now)

    def ratings_of(
        self, account_ids: Sequence[str], game: str, queue: str
    ) -> Deferred[dict[str, Rating]]:
        """The ratings of these accounts in one game's queue (a new player's when none)."""

        def read(sql: queries.Sql) -> dict[str, Rating]:
            found = queries.read_ratings(sql, list(account_ids), game, queue, lock=False)
            return {a: found.get(a, ratings.new_rating()) for a in account_ids}

        return self._run(read, write=False)

    def top(
        self, game: str, queue: str, limit: int, now: float
    ) -> Deferred[list[LeaderboardEntry]]:
        """The first `limit` (at most MAX_PAGE) of a leaderboard at `now`, by conservative
        value; accounts banned at `now` are left out."""
        return self._run(queries.board_page, game, queue, now, 0, _page(limit), write=False)

    def around(
        self, account_id: str, game: str, queue: str, limit: int, now: float
    ) -> Deferred[list[LeaderboardEntry]]:
        """The page of `limit` rows (at most MAX_PAGE) with this player near its middle
        (a full page at either end of the board); empty if the player has no rating
        there or is banned at `now`."""

        def around(sql: queries.Sql) -> list[LeaderboardEntry]:
            mine = sql.one(f"SELECT r.conservative FROM ratings r {queries.SHOWN_JOIN} AND "
                           f"r.account_id = ?", game, queue, now, account_id)  # fmt: skip
            if mine is None:
                return []
            above = sql.one(
                f"SELECT COUNT(*) FROM ratings r {queries.SHOWN_JOIN} AND (r.conservative > ? OR "
                f"(r.conservative = ? AND r.account_id < ?))",
                game, queue, now, mine[0], mine[0], account_id,
            )  # fmt: skip
            shown = queries.SHOWN_JOIN
            total = sql.one(f"SELECT COUNT(*) FROM ratings r {shown}", game, queue, now)
            size = _page(limit)
            # The player near the middle; a full page at either end of the board.
            offset = max(0, min(int(above[0]) - size // 2, int(total[0]) - size))
            return queries.board_page(sql, game, queue, now, offset, size)

        return self._run(around, write=False)

    def history(self, account_id: str, limit: int = 10) -> Deferred[list[HistoryEntry]]:
        """The player's last `limit` (at most MAX_PAGE) rated matches, newest first."""
        return self._run(queries.history, account_id, _page(limit), write=False)

    def standings(self, account_id: str) -> Deferred[list[Standing]]:
        """The account's rating in each game's queue it was rated in, with its wins,
        losses and draws there, by game and queue."""
        return self._run(queries.standings, account_id, write=False)


def _page(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise InvalidValue("a page holds at least one row")
    return min(limit, MAX_PAGE)


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d


# A file's (inode, size, modification time), or None when it is missing.
_FileState = tuple[tuple[int, int, int] | None, ...]


def _file_state(paths: Sequence[str]) -> _FileState:
    """The state of the database's files: any commit changes it (module docstring)."""
    state: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            found = os.stat(path)
        except OSError:
            state.append(None)
        else:
            state.append((found.st_ino, found.st_size, found.st_mtime_ns))
    return tuple(state)


@frozen
class _Settled:
    """A SQLite transaction's result, and the files' state as it found and left them."""

    result: Any
    before: _FileState
    after: _FileState


@frozen
class _Call(Generic[T]):
    """A sign-in waiting for its turn in a shared transaction."""

    work: Callable[..., T]
    args: tuple[Any, ...]
    done: Deferred[T]




def _sqlite_connected(connection: sqlite3.Connection) -> None:
    # Foreign keys are off in SQLite unless each connection asks; WAL lets the
    # `vinom accounts` command read while the server writes.
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA journal_mode = WAL")


def describe(url: str) -> str:
    """The database as a log line may name it: a URL's password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}{host}{port}").geturl()


def database_url(value: str | None, data_dir: str) -> str:
    """What `--database` names: a postgresql:// URL as given, else a SQLite file (a
    path, or sqlite:///PATH); None is DATA_DIR/accounts.sqlite3."""
    if value is None:
        return str(Path(data_dir) / SQLITE_FILE)
    return value


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    return url[len("sqlite:///"):] if url.startswith("sqlite:///") else url


def store_from_url(
    url: str | None,
    data_dir: str,
    reactor: Any = None,
    migrations: Sequence[Sequence[str]] = schema.MIGRATIONS,
    *,
    clock: IReactorTime | None = None,
) -> SqlAccountStore:
    """The account store `--database` names (database_url), not started: its
    `start()` opens it and migrates the schema (to the last of `migrations`).
    `clock` (`reactor` by default) times the start of sign-ins' transactions on
    SQLite; without either they start as soon as none is in flight."""
    where = database_url(url, data_dir)
    extra: dict[str, Any] = {} if reactor is None else {"cp_reactor": reactor}
    if is_postgresql(where):
        pool = adbapi.ConnectionPool(
            "psycopg", where, connect_timeout=CONNECT_TIMEOUT, cp_min=1, cp_max=POSTGRES_POOL,
            cp_reconnect=True, cp_noisy=False, **extra,
        )  # fmt: skip
        return SqlAccountStore(pool, schema.POSTGRESQL, describe(where), migrations)
    if "://" in where and not where.startswith("sqlite:///"):
        raise InvalidValue(
            f"--database {describe(where)!r}: a postgresql:// URL or a SQLite file's path"
        )
    # Absolute, taken now: the pool connects from its thread later, whatever the
    # process's working directory is by then; its directory made as the data directory is.
    path = os.path.abspath(sqlite_path(where))
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _owner_only(path)
    # One connection, used by the pool's one thread; closed at the end from the
    # reactor's thread, hence check_same_thread=False. isolation_level=None: the
    # store begins its own transactions (BEGIN IMMEDIATE for writes).
    pool = adbapi.ConnectionPool(
        "sqlite3", path, check_same_thread=False, isolation_level=None,
        timeout=SQLITE_BUSY_TIMEOUT, cp_min=1, cp_max=1, cp_noisy=False,
        cp_openfun=_sqlite_connected, **extra,
    )  # fmt: skip
    return SqlAccountStore(pool, schema.SQLITE, path, migrations, batch_sign_ins=True,
                           files=(path + "-wal",),
                           clock=reactor if clock is None else clock)  # fmt: skip


def _owner_only(path: str) -> None:
    """Make the SQLite file (device secrets' hashes, bans, ratings) its owner's alone,
    as the data directory's records are, whatever the umask: SQLite makes its -wal and
    -shm files with the database file's mode; those of an older start are set too."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        with suppress(FileNotFoundError):
            if stat.S_IMODE(os.stat(name).st_mode) != 0o600:
                os.chmod(name, 0o600)


async def open_store(
    url: str | None,
    data_dir: str,
    reactor: Any = None,
    migrations: Sequence[Sequence[str]] = schema.MIGRATIONS,
) -> SqlAccountStore:
    """A started store (store_from_url, then start())."""
    store = store_from_url(url, data_dir, reactor, migrations)
    await store.start()
    return store
