"""`vinom accounts`: the operator's commands on the account database.

    vinom accounts show ACCOUNT [--json]
    vinom accounts ban ACCOUNT --reason TEXT [--duration 7d]
    vinom accounts unban ACCOUNT
    vinom accounts link ACCOUNT PROVIDER:SUBJECT
    vinom accounts unlink ACCOUNT PROVIDER:SUBJECT

ACCOUNT is an account id (a-...) or an identity linked to it, PROVIDER:SUBJECT
(jwt:0f7c..., device:...). Every command takes `--database`, as `twistd vinom`
does: a SQLite file or a postgresql:// URL, by default DATA_DIR/accounts.sqlite3
(`--data-dir`, vinom-data). They work beside a running server: it reads a
ban at the player's next `hello`. The option parsing is in vinom.cli.accounts; this
module opens the store and does the work.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from vinom.accounts.interfaces import Account, Identity
from vinom.accounts.records import AccountError, InvalidValue, Standing, UnknownAccount
from vinom.accounts.sql import SqlAccountStore, database_url, is_postgresql, open_store, sqlite_path

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90', '90s', '30m', '12h', '7d' -> seconds (InvalidValue otherwise)."""
    found = _DURATION.match(text.strip())
    if found is None or float(found[1]) <= 0:
        raise InvalidValue(f"a duration is a positive number with s, m, h or d: {text!r}")
    return float(found[1]) * _UNITS[found[2]]


def parse_identity(text: str) -> Identity:
    """'PROVIDER:SUBJECT' -> Identity (the subject may hold ':')."""
    provider, sep, subject = text.partition(":")
    if not sep or not provider or not subject:
        raise InvalidValue(f"an identity is PROVIDER:SUBJECT, e.g. jwt:1234, not {text!r}")
    return Identity(provider, subject)


def when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def standing_json(standing: Standing) -> dict[str, Any]:
    """A rating as the leaderboard shows it (its shown value, two decimals), with how the
    account's rated matches there ended."""
    rating = standing.rating
    return {"game": standing.game, "queue": standing.queue, "rating": round(rating.shown, 2),
            "mu": round(rating.mu, 2), "sigma": round(rating.sigma, 2),
            "matches": rating.matches, "wins": standing.wins, "losses": standing.losses,
            "draws": standing.draws}  # fmt: skip


def standing_text(standing: Standing) -> str:
    shown = standing_json(standing)
    played = f"{shown['matches']} match" + ("" if shown["matches"] == 1 else "es")
    return (f"{shown['game']} {shown['queue']}: {shown['rating']:.2f} (mu {shown['mu']:.2f}, "
            f"sigma {shown['sigma']:.2f}), {played}: {shown['wins']} won, {shown['losses']} "
            f"lost, {shown['draws']} drawn")  # fmt: skip


def account_json(account: Account, now: float, standings: Sequence[Standing]) -> dict[str, Any]:
    ban = account.banned_at(now)
    return {
        "account_id": account.account_id,
        "display_name": account.display_name,
        "created": account.created,
        "last_seen": account.last_seen,
        "identities": [f"{i.provider}:{i.subject}" for i in account.identities],
        "banned": None if ban is None else {"reason": ban.reason, "until": ban.until},
        "metadata": dict(account.metadata),
        "ratings": [standing_json(s) for s in standings],
    }


def account_text(account: Account, now: float, standings: Sequence[Standing]) -> str:
    ban = account.banned_at(now)
    banned = "no" if ban is None else f"{ban.reason} (until {when(ban.until)})"
    metadata: Mapping[str, Any] = account.metadata
    # One line per game's queue, under one another.
    ratings = "\n              ".join(standing_text(s) for s in standings) or "none"
    return "\n".join([
        f"account {account.account_id}",
        f"  name:       {account.display_name}",
        f"  created:    {when(account.created)}",
        f"  last seen:  {when(account.last_seen)}",
        f"  identities: {', '.join(f'{i.provider}:{i.subject}' for i in account.identities)}",
        f"  banned:     {banned}",
        f"  metadata:   {json.dumps(dict(metadata), ensure_ascii=False, sort_keys=True)}",
        f"  ratings:    {ratings}",
    ])  # fmt: skip


async def open_database(reactor: Any, database: str | None, data_dir: str) -> SqlAccountStore:
    """The store the options name; a SQLite file that does not exist is an error here
    (an operator's typo must not make an empty database)."""
    url = database_url(database, data_dir)
    if not is_postgresql(url) and not os.path.isfile(sqlite_path(url)):
        raise AccountError(
            f"no account database at {sqlite_path(url)} (the server makes it at its first "
            f"start; --database or --data-dir names another)"
        )
    return await open_store(url, data_dir, reactor)


async def find_account(store: SqlAccountStore, what: str) -> Account:
    if what.startswith("a-") and ":" not in what:
        account = await store.get(what)
    else:
        identity = parse_identity(what)
        account = await store.find(identity.provider, identity.subject)
    if account is None:
        raise UnknownAccount(f"no account {what}")
    return account


async def accounts_command(
    reactor: Any, command: str, options: Mapping[str, Any], out: TextIO, now: float | None = None
) -> int:
    """Run one `vinom accounts` command; AccountError (one line) when refused."""
    at = time.time() if now is None else now
    store = await open_database(reactor, options["database"], options["data-dir"])
    try:
        account = await find_account(store, options["account"])
        if command == "ban":
            duration = options["duration"]
            until = None if duration is None else at + parse_duration(duration)
            account = await store.ban(account.account_id, options["reason"], until)
        elif command == "unban":
            account = await store.unban(account.account_id)
        elif command == "link":
            account = await store.link(account.account_id, parse_identity(options["identity"]), at)
        elif command == "unlink":
            account = await store.unlink(account.account_id, parse_identity(options["identity"]))
        standings = await store.standings(account.account_id)
        if options.get("json"):
            shown = account_json(account, at, standings)
            out.write(json.dumps(shown, ensure_ascii=False) + "\n")
        else:
            out.write(account_text(account, at, standings) + "\n")
        return 0
    finally:
        store.close()
