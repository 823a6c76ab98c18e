"""The seams of player identity: authenticators prove who a player is, the account
store keeps what persists of them.

At `hello` (and `reconnect`) the lobby hands the frame's `auth` object to the
server's `IAuthenticator`, which answers with an `Identity` (a provider and a
subject that provider vouches for) or fails with `AuthFailed`. The lobby then
asks the `IAccountStore` for the account linked to that identity (made on first
use), refuses a banned one, and welcomes the player with the account's id as
their player id. Both seams answer with Deferreds: nothing here may block the
reactor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from vinom.accounts.records import (
    HistoryEntry,
    LeaderboardEntry,
    RankedResult,
    Rating,
    RatingChange,
    Standing,
)


class AuthFailed(Exception):
    """The credentials were refused; `reason` is a short machine-readable word
    (`expired`, `bad_signature`, `unknown_kid`, ...) sent to the client as the
    `auth_failed` error's `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@frozen
class Identity:
    """Who the authenticator says the player is: `provider` ("guest", "jwt",
    "device", "signed", or a plugin's own name) and `subject`, unique within it.

    `display_name` is a name the provider vouches for (None: the player's
    `hello` name is used); `claims` what else it said, kept for the game.
    """

    provider: str
    subject: str
    display_name: str | None = None
    claims: Mapping[str, Any] = field(factory=dict)


@frozen
class Ban:
    """Why and until when an account is banned (`until` None: for good)."""

    reason: str
    until: float | None


@frozen
class NewBans:
    """The bans made since a time and in force: the banned accounts' `Ban` by account
    id, and `now`, the database's clock when it was read (where the next read starts)."""

    now: float
    bans: Mapping[str, Ban] = field(factory=dict)


@frozen
class Account:
    """What persists of a player: the id is their player id whenever they sign in."""

    account_id: str
    display_name: str
    created: float
    last_seen: float
    identities: Sequence[Identity] = ()
    ban: Ban | None = None
    metadata: Mapping[str, Any] = field(factory=dict)

    def banned_at(self, now: float) -> Ban | None:
        """The ban in force at `now`, if any."""
        if self.ban is None or (self.ban.until is not None and self.ban.until <= now):
            return None
        return self.ban


class IAuthenticator(Interface):
    """Proves who a player is from the `auth` object of their `hello`.

    Found as Twisted plugins (like games) by `name`; a studio's own scheme
    (Steam tickets, its own tokens) is one more plugin. Every implementation
    passes the shared suite in tests/accounts/.
    """

    name = Attribute(
        "The word operators choose it by (`--auth NAME`) and clients send as `auth.kind`."
    )

    def authenticate(credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        """The identity `credentials` prove, or a failure with `AuthFailed`.

        `credentials` is the `auth` object of the frame, already checked to be
        a small JSON object; `peer` the client's address (for logs). Never
        blocks: keys are fetched and cached off the reactor's thread or with
        twisted.web's client.
        """


class IAccountStore(Interface):
    """Accounts, their linked identities, bans, ratings and match history.

    Two implementations behind one shared suite: SQLite in the data directory
    (the embedded default) and PostgreSQL (every lobby of a cluster shares it).
    """

    def account_for(identity: Identity, name: str, now: float) -> Deferred[Account]:
        """The account linked to `identity`, made on first use with `name` as its
        display name; its last-seen time becomes `now` unless the one stored is less
        than the store's interval old (a minute for the built-in stores)."""

    def get(account_id: str) -> Deferred[Account | None]:
        """The account with this id, or None."""

    # What the store keeps beyond the two calls above (vinom.accounts.records has
    # the values and errors; docs/accounts.md the rules).

    def find(provider: str, subject: str) -> Deferred[Account | None]:
        """The account linked to (provider, subject), or None."""

    def link(account_id: str, identity: Identity, now: float) -> Deferred[Account]:
        """Link one more identity to the account (IdentityTaken if another has it)."""

    def unlink(account_id: str, identity: Identity) -> Deferred[Account]:
        """Unlink one (NotLinked; LastIdentity for the account's only one)."""

    def rename(account_id: str, name: str) -> Deferred[Account]:
        """A new display name, checked as a `hello` name is."""

    def set_metadata(account_id: str, metadata: Mapping[str, Any]) -> Deferred[Account]:
        """Replace the account's metadata bag (a small JSON object)."""

    def ban(account_id: str, reason: str, until: float | None) -> Deferred[Account]:
        """Ban the account until `until` (None: for good)."""

    def unban(account_id: str) -> Deferred[Account]:
        """Lift the account's ban."""

    def bans_since(since: float) -> Deferred[NewBans]:
        """The bans made (by any process, on the database's clock) at `since` or later
        and in force now; a lobby reads them to end the banned players' connections."""

    def authenticate_device(device_id: str, secret: str, now: float) -> Deferred[Identity]:
        """('device', device_id) if `secret` is that device's (kept, hashed, on its
        first use), else AuthFailed('bad_secret')."""

    def record_match(result: RankedResult, now: float) -> Deferred[dict[str, RatingChange]]:
        """Rate a ranked match (a RankedResult) once per match id: each player's
        RatingChange; a second call changes nothing and answers the same."""

    def ratings_of(
        account_ids: Sequence[str], game: str, queue: str
    ) -> Deferred[dict[str, Rating]]:
        """Each account's Rating in one game's queue (a new player's when it has none)."""

    def top(game: str, queue: str, limit: int, now: float) -> Deferred[list[LeaderboardEntry]]:
        """A leaderboard's first rows (LeaderboardEntry), by conservative rating, without
        the accounts banned at `now`."""

    def around(
        account_id: str, game: str, queue: str, limit: int, now: float
    ) -> Deferred[list[LeaderboardEntry]]:
        """The leaderboard's page around this player (empty without a rating, or banned)."""

    def history(account_id: str, limit: int) -> Deferred[list[HistoryEntry]]:
        """The player's last rated matches (HistoryEntry), newest first."""

    def standings(account_id: str) -> Deferred[list[Standing]]:
        """The account's rating in each game's queue it was rated in, with its wins,
        losses and draws there (Standing), by game and queue."""

    def close() -> None:
        """Release the store's connections."""
