"""The statements of each account call, run in its transaction's thread: what
vinom.accounts.sql's `SqlAccountStore` hands its connection pool. Each function takes
a `Sql` (the transaction's cursor) and returns plain values; none touches the reactor.
The SQL is written once for SQLite and PostgreSQL (`Sql` turns '?' markers into the
driver's), and the races between lobbies are settled by unique keys and row locks as
vinom.accounts.sql's docstring says."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from attrs import evolve
from twisted.python.failure import Failure

from vinom.accounts import ratings, schema
from vinom.accounts.interfaces import Account, AuthFailed, Ban, Identity
from vinom.accounts.records import (
    HistoryEntry,
    InvalidValue,
    LeaderboardEntry,
    Opponent,
    RankedResult,
    Rating,
    RatingChange,
    Standing,
    UnknownAccount,
    new_account_id,
)

# A sign-in writes an account's `last_seen` only when the stored one is at least this
# many seconds old: a returning player's sign-ins within it are reads only.
LAST_SEEN_INTERVAL = 60.0

ACCOUNT_COLUMNS = "account_id, display_name, created, last_seen, ban_reason, ban_until, metadata"


def batch(sql: Sql, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
    """Each call's result, or its refusal as a Failure, in one transaction. A database
    error fails the whole transaction (and so every call), as it would one call: a
    call refused (a wrong device secret) refuses before it writes anything. The
    `account_for` calls are answered together (`_accounts_for`: one read, one write
    of each table for all); no call of a batch waits on another's result."""
    requests = [args for work, args in calls if work is account_for]
    accounts = _accounts_for(sql, requests) if requests else {}
    outcomes: list[Any] = []
    for work, args in calls:
        try:
            if work is account_for:
                outcomes.append(_answer(accounts, args[0], args[1]))
            else:
                outcomes.append(work(sql, *args))
        except (AuthFailed, InvalidValue, UnknownAccount):
            failure = Failure()
            failure.cleanFailure()  # no frames kept: it crosses to the reactor's thread
            outcomes.append(failure)
    return outcomes


class Sql:
    """A transaction's cursor, taking '?' markers whatever the database."""

    def __init__(self, cursor: Any, dialect: schema.Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def run(self, statement: str, *args: Any) -> int:
        """Execute; the number of rows changed."""
        self.cursor.execute(self.dialect.sql(statement), args)
        return int(self.cursor.rowcount)

    def one(self, statement: str, *args: Any) -> Any:
        self.cursor.execute(self.dialect.sql(statement), args)
        return self.cursor.fetchone()

    def all(self, statement: str, *args: Any) -> list[Any]:
        self.cursor.execute(self.dialect.sql(statement), args)
        return list(self.cursor.fetchall())


def _markers(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def load(sql: Sql, account_id: str) -> Account | None:
    row = sql.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?", account_id)
    if row is None:
        return None
    identities = sql.all("SELECT provider, subject FROM identities WHERE account_id = ? "
                         "ORDER BY linked, provider, subject", account_id)  # fmt: skip
    return _account(row, identities)


def _account(row: Sequence[Any], identities: Iterable[Sequence[Any]]) -> Account:
    """An account from its row (`ACCOUNT_COLUMNS`) and its identities' (provider, subject)."""
    account_id, name, created, last_seen, ban_reason, ban_until, metadata = row
    until = None if ban_until is None else float(ban_until)
    return Account(
        account_id=account_id,
        display_name=name,
        created=float(created),
        last_seen=float(last_seen),
        identities=tuple(Identity(provider, subject) for provider, subject in identities),
        ban=None if ban_reason is None else Ban(ban_reason, until),
        metadata=json.loads(metadata),
    )


def must_load(sql: Sql, account_id: str) -> Account:
    account = load(sql, account_id)
    if account is None:
        raise UnknownAccount(account_id)
    return account


def lock_rows(sql: Sql, account_ids: Iterable[str]) -> None:
    """Lock these accounts' rows in one order (PostgreSQL; SQLite has one writer);
    UnknownAccount if one is missing."""
    wanted = sorted(set(account_ids))
    found = sql.all(f"SELECT account_id FROM accounts WHERE account_id IN ({_markers(wanted)}) "
                    f"ORDER BY account_id{sql.dialect.for_update}", *wanted)  # fmt: skip
    missing = set(wanted) - {row[0] for row in found}
    if missing:
        raise UnknownAccount(", ".join(sorted(missing)))


def signed_in(sql: Sql, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Account]:
    """The account linked to each (provider, subject) of `keys` that has one, with all
    its identities: one query."""
    wanted = sorted(set(keys))
    rows = sql.all(
        f"SELECT {', '.join('a.' + c for c in ACCOUNT_COLUMNS.split(', '))}, i.provider, "
        "i.subject, o.provider, o.subject FROM identities i "
        "JOIN accounts a ON a.account_id = i.account_id "
        "JOIN identities o ON o.account_id = a.account_id "
        # One index search per identity: SQLite scans the whole table for a row-value IN.
        f"WHERE {' OR '.join(['(i.provider = ? AND i.subject = ?)'] * len(wanted))} "
        "ORDER BY i.provider, i.subject, o.linked, o.provider, o.subject",
        *(value for key in wanted for value in key),
    )  # fmt: skip
    found: dict[tuple[str, str], Account] = {}
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or rows[end][7:9] != rows[start][7:9]:
            found[rows[start][7], rows[start][8]] = _account(
                rows[start][:7], [row[9:] for row in rows[start:end]])  # fmt: skip
            start = end
    return found


def account_for(sql: Sql, provider: str, subject: str, name: str, now: float) -> Account:
    """The account of (provider, subject), made for it (named `name`) if it has none; its
    `last_seen` written if due."""
    return _answer(_accounts_for(sql, [(provider, subject, name, now)]), provider, subject)


def _answer(accounts: dict[tuple[str, str], Account], provider: str, subject: str) -> Account:
    account = accounts.get((provider, subject))
    if account is None:
        # Its account, made by another lobby meanwhile, was removed as this one read it.
        raise UnknownAccount(f"{provider}:{subject}")
    return account


def _accounts_for(
    sql: Sql, requests: Sequence[Sequence[Any]]
) -> dict[tuple[str, str], Account]:
    """`account_for` for each (provider, subject, name, now) of `requests` at once, the
    account of each identity by (provider, subject): one read, and one write of each
    table for the accounts made and the `last_seen`s due (an identity asked for twice
    gets one account, named as its first request says)."""
    accounts = signed_in(sql, ((provider, subject) for provider, subject, *_ in requests))
    made: dict[tuple[str, str], Account] = {}
    due: set[str] = set()
    latest = max(float(now) for *_, now in requests)
    for provider, subject, name, now in requests:
        key = (provider, subject)
        account = accounts.get(key)
        if account is None:
            if key not in made:
                made[key] = Account(new_account_id(), name, float(now), float(now),
                                    (Identity(provider, subject),))  # fmt: skip
        elif account.last_seen <= now - LAST_SEEN_INTERVAL:
            # Written at most once an interval: a returning player's sign-in within it
            # writes nothing.
            due.add(account.account_id)
            accounts[key] = evolve(account, last_seen=latest)
    if due:
        ids = sorted(due)
        sql.run(f"UPDATE accounts SET last_seen = ? WHERE account_id IN ({_markers(ids)}) "
                "AND last_seen < ?", latest, *ids, latest)  # fmt: skip
    if made:
        # One statement for each table, whatever the number of rows: SQLite's module lets
        # go of the GIL around each row of an executemany, which the reactor's thread
        # pays for.
        sql.run(f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES "
                + ", ".join(["(?, ?, ?, ?, NULL, NULL, '{}')"] * len(made)),
                *(v for a in made.values()
                  for v in (a.account_id, a.display_name, a.created, a.created)))  # fmt: skip
        linked = sql.run("INSERT INTO identities (provider, subject, account_id, linked) VALUES "
                         + ", ".join(["(?, ?, ?, ?)"] * len(made))
                         + " ON CONFLICT (provider, subject) DO NOTHING",
                         *(v for key, a in made.items()
                           for v in (*key, a.account_id, a.created)))  # fmt: skip
        if linked < len(made):
            # Another lobby made some of these identities' accounts meanwhile: theirs are
            # the ones, and those made here for them are removed.
            theirs = signed_in(sql, made)
            unused = [a.account_id for key, a in made.items()
                      if key not in theirs or theirs[key].account_id != a.account_id]  # fmt: skip
            sql.run(f"DELETE FROM accounts WHERE account_id IN ({_markers(unused)})", *unused)
            made = theirs
        accounts.update(made)
    return accounts


def read_ratings(
    sql: Sql, account_ids: list[str], game: str, queue: str, lock: bool
) -> dict[str, Rating]:
    if not account_ids:
        return {}
    if lock:
        lock_rows(sql, account_ids)
    rows = sql.all(f"SELECT account_id, mu, sigma, matches FROM ratings WHERE game = ? AND "
                   f"queue = ? AND account_id IN ({_markers(account_ids)})",
                   game, queue, *account_ids)  # fmt: skip
    return {a: Rating(float(mu), float(sigma), int(n)) for a, mu, sigma, n in rows}


def record_match(sql: Sql, result: RankedResult, now: float) -> dict[str, RatingChange]:
    first = sql.run("INSERT INTO rated_matches (match_id, game, queue, ended) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (match_id) DO NOTHING",
                    result.match_id, result.game, result.queue, now)  # fmt: skip
    if not first:
        return _stored_changes(sql, result.match_id)
    before = read_ratings(sql, list(result.players), result.game, result.queue, lock=True)
    after = ratings.rate(result, before)
    changes: dict[str, RatingChange] = {}
    for team_index, team in enumerate(result.teams):
        outcome = result.outcome_of(team_index)
        for player in team:
            old = before.get(player, ratings.new_rating())
            new = after[player]
            changes[player] = RatingChange(player, old, new)
            sql.run(
                "INSERT INTO ratings (account_id, game, queue, mu, sigma, conservative, matches, "
                "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, game, queue) "
                "DO UPDATE SET mu = excluded.mu, sigma = excluded.sigma, conservative = "
                "excluded.conservative, matches = excluded.matches, updated = excluded.updated",
                player, result.game, result.queue, new.mu, new.sigma, new.conservative,
                new.matches, now,
            )  # fmt: skip
            sql.run(
                "INSERT INTO match_players (match_id, account_id, team, place, outcome, ended, "
                "mu_before, sigma_before, matches_before, mu_after, sigma_after) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                result.match_id, player, team_index, result.places[team_index], outcome, now,
                old.mu, old.sigma, old.matches, new.mu, new.sigma,
            )  # fmt: skip
    return changes


def _change(account_id: str, mu0: Any, sigma0: Any, n: Any, mu1: Any, sigma1: Any) -> RatingChange:
    before = Rating(float(mu0), float(sigma0), int(n))
    return RatingChange(account_id, before, Rating(float(mu1), float(sigma1), int(n) + 1))


def _stored_changes(sql: Sql, match_id: str) -> dict[str, RatingChange]:
    rows = sql.all("SELECT account_id, mu_before, sigma_before, matches_before, mu_after, "
                   "sigma_after FROM match_players WHERE match_id = ? ORDER BY team, account_id",
                   match_id)  # fmt: skip
    return {row[0]: _change(*row) for row in rows}


# A leaderboard's rows: one game's queue, without the accounts banned at the time
# given (parameters: game, queue, now).
SHOWN_JOIN = (
    "JOIN accounts a ON a.account_id = r.account_id WHERE r.game = ? AND r.queue = ? AND "
    "(a.ban_reason IS NULL OR (a.ban_until IS NOT NULL AND a.ban_until <= ?))"
)


def board_page(
    sql: Sql, game: str, queue: str, now: float, offset: int, limit: int
) -> list[LeaderboardEntry]:
    rows = sql.all(
        f"SELECT r.account_id, a.display_name, r.mu, r.sigma, r.matches FROM ratings r "
        f"{SHOWN_JOIN} ORDER BY r.conservative DESC, r.account_id LIMIT ? OFFSET ?",
        game, queue, now, limit, offset,
    )  # fmt: skip
    return [
        LeaderboardEntry(offset + i + 1, a, name, Rating(float(mu), float(sigma), int(n)))
        for i, (a, name, mu, sigma, n) in enumerate(rows)
    ]


def standings(sql: Sql, account_id: str) -> list[Standing]:
    ended = sql.all(
        "SELECT m.game, m.queue, p.outcome, COUNT(*) FROM match_players p JOIN rated_matches m "
        "ON m.match_id = p.match_id WHERE p.account_id = ? GROUP BY m.game, m.queue, p.outcome",
        account_id,
    )
    counts = {(game, queue, outcome): int(n) for game, queue, outcome, n in ended}
    rows = sql.all("SELECT game, queue, mu, sigma, matches FROM ratings WHERE account_id = ? "
                   "ORDER BY game, queue", account_id)  # fmt: skip
    return [
        Standing(game, queue, Rating(float(mu), float(sigma), int(n)),
                 *(counts.get((game, queue, o), 0) for o in ("win", "loss", "draw")))
        for game, queue, mu, sigma, n in rows
    ]  # fmt: skip


def history(sql: Sql, account_id: str, limit: int) -> list[HistoryEntry]:
    mine = sql.all(
        "SELECT p.match_id, m.game, m.queue, p.ended, p.outcome, p.place, p.team, p.mu_before, "
        "p.sigma_before, p.matches_before, p.mu_after, p.sigma_after FROM match_players p "
        "JOIN rated_matches m ON m.match_id = p.match_id WHERE p.account_id = ? "
        "ORDER BY p.ended DESC, p.match_id DESC LIMIT ?",
        account_id, limit,
    )  # fmt: skip
    if not mine:
        return []
    match_ids = [row[0] for row in mine]
    others = sql.all(
        f"SELECT p.match_id, p.team, p.account_id, a.display_name FROM match_players p "
        f"LEFT JOIN accounts a ON a.account_id = p.account_id "
        f"WHERE p.match_id IN ({_markers(match_ids)}) ORDER BY p.team, p.account_id",
        *match_ids,
    )  # fmt: skip
    entries = []
    for match_id, game, queue, ended, outcome, place, team, *rating in mine:
        opponents = tuple(
            Opponent(other, name or other)
            for m, other_team, other, name in others
            if m == match_id and other_team != team
        )
        entries.append(HistoryEntry(
            match_id, game, queue, float(ended), outcome, int(place), opponents,
            _change(account_id, *rating),
        ))  # fmt: skip
    return entries


# -- opening a store -------------------------------------------------------------
