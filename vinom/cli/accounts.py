"""`vinom accounts`: the account database's operator commands (show, ban, unban, link,
unlink; docs/accounts.md), as Twisted subcommands, and their run, which turns a refusal or
a database that cannot be used into one line. The commands' work is
vinom.client.accounts's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from twisted.python import usage

from vinom.cli.options import CommandError, CommandOptions


def _database(value: str) -> str:
    """`--database`, checked as twistd vinom checks it (a usage mistake: exit 2)."""
    from vinom.server.accounts import database_option

    return database_option("database", value)


class AccountCommandOptions(CommandOptions):
    """What every `vinom accounts` command takes: the database and the account."""

    optFlags = [["json", None, "Print the account as one JSON object."]]
    optParameters = [
        ["database", None, None, "The account database, as twistd vinom's --database: a SQLite "
         "file or a postgresql:// URL (default: DATA_DIR/accounts.sqlite3).", _database],
        ["data-dir", "d", "vinom-data", "The server's data directory (for the default database)."],
    ]  # fmt: skip
    synopsis = "COMMAND ACCOUNT"
    # The arguments after ACCOUNT, by name.
    more: tuple[str, ...] = ()

    def getSynopsis(self) -> str:
        return f"Usage: vinom accounts {self.synopsis}"

    def parseArgs(self, account: str | None = None, *more: str) -> None:
        from vinom.client.accounts import parse_identity

        if account is None or len(more) != len(self.more):
            raise usage.UsageError(f"usage: vinom accounts {self.synopsis}")
        if not account.startswith("a-") or ":" in account:
            _usage(parse_identity, account)
        self["account"] = account
        self.update(zip(self.more, more, strict=True))
        if "identity" in self:
            _usage(parse_identity, self["identity"])


def _usage(parse: Callable[[str], object], text: str) -> None:
    """`parse(text)`, its refusal a usage mistake (exit 2), as a word of the command line."""
    from vinom.accounts.records import InvalidValue

    try:
        parse(text)
    except InvalidValue as e:
        raise usage.UsageError(str(e)) from None


class AccountShowOptions(AccountCommandOptions):
    synopsis = "show ACCOUNT [--json]"


class AccountBanOptions(AccountCommandOptions):
    synopsis = "ban ACCOUNT --reason TEXT [--duration 7d]"
    optParameters = [
        *AccountCommandOptions.optParameters,
        ["reason", "r", None, "Why (shown to the player when they are refused; required)."],
        ["duration", None, None, "How long: 90s, 30m, 12h, 7d (default: for good)."],
    ]

    def postOptions(self) -> None:
        from vinom.client.accounts import parse_duration

        if not self["reason"]:
            raise usage.UsageError("a ban needs --reason")
        if self["duration"] is not None:
            _usage(parse_duration, self["duration"])


class AccountUnbanOptions(AccountCommandOptions):
    synopsis = "unban ACCOUNT"


class AccountLinkOptions(AccountCommandOptions):
    synopsis = "link ACCOUNT PROVIDER:SUBJECT"
    more = ("identity",)


class AccountUnlinkOptions(AccountCommandOptions):
    synopsis = "unlink ACCOUNT PROVIDER:SUBJECT"
    more = ("identity",)


class AccountsOptions(CommandOptions):
    synopsis = "<show|ban|unban|link|unlink> ACCOUNT [options]"
    longdesc = (
        "The account database's operator commands (docs/accounts.md). ACCOUNT is an "
        "account id (a-...) or an identity linked to it, PROVIDER:SUBJECT."
    )
    subCommands = [
        ["show", None, AccountShowOptions, "Show an account."],
        ["ban", None, AccountBanOptions, "Ban an account (refused at its next hello)."],
        ["unban", None, AccountUnbanOptions, "Lift an account's ban."],
        ["link", None, AccountLinkOptions, "Link one more identity to an account."],
        ["unlink", None, AccountUnlinkOptions, "Unlink an identity (not the last one)."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("name a command: show, ban, unban, link, unlink")



async def accounts(reactor: Any, command: str, options: Any) -> int:
    """`vinom accounts COMMAND`: a refusal or a database that cannot be used is one line."""
    import sqlite3

    from vinom.accounts.records import AccountError, SchemaTooNew
    from vinom.client.accounts import accounts_command

    try:
        return await accounts_command(reactor, command, options, sys.stdout)
    except Exception as e:
        refused: tuple[type[Exception], ...] = (AccountError, SchemaTooNew, sqlite3.Error)
        # Loaded by then where --database is a postgresql:// URL (vinom's postgres extra).
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None:
            refused += (psycopg.Error,)
        if not isinstance(e, refused):
            raise
        raise CommandError(str(e).strip().splitlines()[0] if str(e).strip() else repr(e)) from e
