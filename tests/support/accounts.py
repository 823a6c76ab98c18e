"""An in-memory `IAccountStore` for the lobby's tests of sign-in: accounts made on first
use, found by identity, banned by the test (at the time of its `clock`, which
`bans_since` reads as a database's). (The stores vinom ships, SQLite and
PostgreSQL, pass their own shared suite.)"""

from __future__ import annotations

import itertools

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from zope.interface import implementer

from vinom.accounts.interfaces import Account, Ban, IAccountStore, Identity, NewBans


@implementer(IAccountStore)
class MemoryAccounts:
    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.clock = clock or Clock()
        # When each ban in force was made.
        self.banned_at: dict[str, float] = {}
        self.accounts: dict[str, Account] = {}
        self.by_identity: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)

    def account_for(self, identity: Identity, name: str, now: float) -> Deferred[Account]:
        key = (identity.provider, identity.subject)
        account_id = self.by_identity.get(key)
        if account_id is None:
            account_id = self.by_identity[key] = f"a-{next(self._ids):04d}"
            self.accounts[account_id] = Account(account_id, name, now, now, (identity,))
        account = self.accounts[account_id] = attrs.evolve(self.accounts[account_id],
                                                           last_seen=now)  # fmt: skip
        return succeed(account)

    def get(self, account_id: str) -> Deferred[Account | None]:
        return succeed(self.accounts.get(account_id))

    def find(self, provider: str, subject: str) -> Deferred[Account | None]:
        account_id = self.by_identity.get((provider, subject))
        return succeed(None if account_id is None else self.accounts[account_id])

    def ban(self, account_id: str, reason: str, until: float | None) -> None:
        self.accounts[account_id] = attrs.evolve(self.accounts[account_id],
                                                 ban=Ban(reason, until))  # fmt: skip
        self.banned_at[account_id] = self.clock.seconds()

    def bans_since(self, since: float) -> Deferred[NewBans]:
        now = self.clock.seconds()
        bans = {a: ban for a, at in self.banned_at.items() if at >= since
                and (ban := self.accounts[a].banned_at(now)) is not None}  # fmt: skip
        return succeed(NewBans(now, bans))
