"""Signing players in at `hello` and `reconnect`: the lobby's side of authentication.

`LobbyAuth.sign_in` takes the `auth` of a request and answers who the player
is (`SignedIn`), or fails with the `LobbyError` the client is sent:
`auth_failed` with a `reason` (docs/lobby.md, "Authentication") or `banned`.
A guest server (the default authenticator) takes a request without `auth`
at once, with nothing to wait for: today's anonymous players. Every other
sign-in

- is refused unverified (`rate_limited`) while the identity the credentials
  claim has used up its refusals from the client's address
  (`auth_failure_rate`, `auth_failure_burst`), or the address has used up
  `ADDRESS_SHARE` times as many over every identity: only a refusal takes from
  a bucket, and a bucket is keyed by identity first, so one player's wrong
  secret behind a NAT does not lock out the others (`claimed_identity`);
- goes to the server's `IAuthenticator`, bounded by `auth_timeout` (a slow or
  down identity provider makes only this request wait, and then answers
  `unavailable`); anything it fails with besides `AuthFailed` is logged and
  answered `unavailable`;
- is resolved to an account by the `IAccountStore`, when there is one: the
  account's id is the player id, and a banned account is refused; without a
  store the player id is derived from the identity (the same player, the
  same id). An address may make `new_accounts_per_hour` new accounts an hour
  (a token bucket of as many); past it only identities that have an account
  already sign in from it, and a new one is refused `auth_failed`, reason
  `account_limit` (a refusal of the address's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.accounts.interfaces import (
    Account,
    AuthFailed,
    Ban,
    IAccountStore,
    IAuthenticator,
    Identity,
)
from vinom.errors import BackendUnavailable, LobbyError
from vinom.lobby import errors
from vinom.lobby.config import LobbyConfig
from vinom.lobby.names import normalize_name
from vinom.lobby.request_types import Auth, BadAuth
from vinom.net.limits import KeyedTokenBuckets, LogLimiter

GUEST = "guest"

# What a client is told for each reason (the reason itself is the stable part).
_MESSAGES = {
    "required": "this server needs an 'auth' object in hello (and reconnect): sign in",
    "too_large": "the 'auth' object is too large",
    "malformed": "the credentials are not well-formed",
    "wrong_kind": "this server does not take this kind of credentials",
    "rate_limited": "too many refused sign-ins from this address; try again later",
    "unavailable": "the identity provider did not answer in time; try again shortly",
    "expired": "the token has expired: get a fresh one",
    "not_yet_valid": "the token is not valid yet (check the clocks)",
    "wrong_issuer": "the token is not from this server's identity provider",
    "wrong_audience": "the token is not meant for this server",
    "bad_signature": "the token's signature does not verify",
    "bad_algorithm": "the token's algorithm is refused (RS256, ES256 or EdDSA only)",
    "unknown_kid": "the token names a key the identity provider does not have",
    "missing_claim": "the token lacks a claim this server needs",
    "too_long_lived": "the token lives too long for a signed token",
    "bad_secret": "this is not the secret this device signed in with first",
    "account_limit": "too many new accounts from this address; try again later",
    "invalid": "the credentials are not valid",
}
# Refusals whose message adds the authenticator's detail (which claim, which kind).
_DETAILED = frozenset({"malformed", "missing_claim", "wrong_kind", "too_large", "invalid"})
# Refusals that say nothing about the client: not taken from its address's bucket.
_NOT_THE_CLIENTS = frozenset({"unavailable", "rate_limited"})
# An address's refusals over every identity it claims: this many times one identity's.
ADDRESS_SHARE = 10


@frozen
class SignedIn:
    """Who a signed-in player is: their player id (an account's id, or derived from
    their identity), their name, and their identity and account (None: no store)."""

    player_id: str
    name: str
    identity: Identity
    account: Account | None = None


def derived_player_id(identity: Identity) -> str:
    """The player id of an identity when there is no account store: 'p-' and 16 hex
    digits of a hash of its provider and subject, the same at every sign-in."""
    digest = hashlib.sha256(f"{identity.provider}\0{identity.subject}".encode()).hexdigest()
    return "p-" + digest[:16]


def claimed_identity(auth: Mapping[str, Any]) -> str:
    """Whom credentials claim to be, unverified: the key of their refusals' bucket.

    A device's id, or a token's `sub` (read, not verified: a forged token only
    spends its own bucket and its address's); "" when they name nobody this can
    read (one bucket for the address's other refusals)."""
    device = auth.get("device_id")
    if isinstance(device, str):
        return "device\0" + device[:128]
    token = auth.get("token")
    if isinstance(token, str) and token.count(".") == 2 and len(token) <= 8192:
        body = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError):
            return ""
        subject = claims.get("sub") if isinstance(claims, dict) else None
        if isinstance(subject, str):
            return "sub\0" + subject[:256]
    return ""


def auth_failed(reason: str, detail: str = "") -> LobbyError:
    """The `auth_failed` error with `reason`; `detail` (the authenticator's) for people."""
    message = _MESSAGES.get(reason, _MESSAGES["invalid"])
    if detail and reason in _DETAILED:
        message = f"{message}: {detail[:120]}"
    return LobbyError(errors.AUTH_FAILED, message, fields={"reason": reason})


def sign_in_outcome(error: BaseException) -> str:
    """A refused sign-in's outcome in the operators' metrics: the `auth_failed` reason
    (one a plugin made up counts as `invalid`), else the error's code (`banned`,
    `unavailable`): a bounded set of words."""
    if not isinstance(error, LobbyError):
        return "unavailable"
    if error.code == errors.AUTH_FAILED:
        reason = error.fields.get("reason")
        return reason if reason in _MESSAGES else "invalid"
    return error.code


def banned(ban: Ban) -> LobbyError:
    """The `banned` error of a ban: why, and until when (None: for good), at sign-in
    and to a connection whose account is banned meanwhile."""
    until = ban.until if ban.until is None or math.isfinite(ban.until) else None
    when = "for good" if until is None else f"until {until:.0f} (Unix time)"
    return LobbyError(
        errors.BANNED,
        f"this account is banned {when}: {ban.reason}",
        fields={"reason": ban.reason, "until": until},
        final=True,
    )


class LobbyAuth:
    """The lobby's authenticator, account store and per-address limit on refusals."""

    log = Logger()

    def __init__(
        self,
        authenticator: IAuthenticator | None,
        accounts: IAccountStore | None,
        config: LobbyConfig,
        clock: IReactorTime,
    ) -> None:
        self.authenticator = authenticator
        self.accounts = accounts
        self._clock = clock
        self._timeout = config.auth_timeout
        rate, burst = config.auth_failure_rate, config.auth_failure_burst
        # Keyed by address and claimed identity, and by address alone.
        self._refusals = KeyedTokenBuckets(rate, burst, clock)
        self._address_refusals = KeyedTokenBuckets(rate * ADDRESS_SHARE, burst * ADDRESS_SHARE,
                                                   clock)  # fmt: skip
        per_hour = config.new_accounts_per_hour
        self._new_accounts = KeyedTokenBuckets(per_hour / 3600.0, per_hour, clock)
        # Accounts made by sign-ins here, and sign-ins by outcome, for the operators' metrics.
        self.accounts_made = 0
        self.sign_ins: Counter[str] = Counter()
        self._log_limit = LogLimiter(1.0, 10, clock)

    @property
    def kind(self) -> str:
        """The `auth.kind` this lobby takes (`guest` without an authenticator)."""
        return GUEST if self.authenticator is None else str(self.authenticator.name)

    @property
    def required(self) -> bool:
        """Whether a request must carry `auth` (every authenticator but `guest`)."""
        return self.kind != GUEST

    def sign_in(
        self, auth: Auth, name: str, client: str, peer_host: str
    ) -> Deferred[SignedIn] | None:
        """Who the credentials `auth` prove the player is; None for a guest who sent
        none (nothing to wait for). Fails with a `LobbyError` to answer with. Each
        sign-in is counted in `sign_ins` by its outcome (`sign_in_outcome`)."""
        try:
            signing = self._signing_in(auth, name, client, peer_host)
        except LobbyError as error:
            self.sign_ins[sign_in_outcome(error)] += 1
            raise
        if signing is None:
            self.sign_ins["ok"] += 1
            return None

        def counted(result: SignedIn | Failure) -> SignedIn | Failure:
            error = result.value if isinstance(result, Failure) else None
            self.sign_ins["ok" if error is None else sign_in_outcome(error)] += 1
            return result

        return signing.addBoth(counted)

    def _signing_in(
        self, auth: Auth, name: str, client: str, peer_host: str
    ) -> Deferred[SignedIn] | None:
        if auth is None and not self.required:
            return None
        key = client if not isinstance(auth, Mapping) else f"{client}\0{claimed_identity(auth)}"
        if not (self._refusals.ready(key) and self._address_refusals.ready(client)):
            raise auth_failed("rate_limited")
        if isinstance(auth, BadAuth):
            self._refused(client, key, auth.reason)
            raise auth_failed(auth.reason, auth.message)
        if auth is None:
            self._refused(client, key, "required")
            raise auth_failed("required")
        if auth.get("kind") != self.kind:
            self._refused(client, key, "wrong_kind")
            raise auth_failed("wrong_kind", f"this server takes auth of kind {self.kind!r}")
        if not self.required or self.authenticator is None:
            return None  # a guest who said so
        d: Deferred[Any] = maybeDeferred(self.authenticator.authenticate, auth, peer_host)
        if not d.called:
            # Only an answer still to come needs a timer (a token verified in memory, a
            # device remembered, have answered already).
            d.addTimeout(self._timeout, self._clock)
        d.addCallback(self._account_of, name, client)
        d.addErrback(self._failed, client, key, peer_host)
        return cast(Deferred[SignedIn], d)

    def _account_of(
        self, identity: Identity, name: str, client: str
    ) -> Deferred[SignedIn] | SignedIn:
        # A name the provider vouches for, if it is a valid name; the hello's otherwise.
        vouched = identity.display_name
        shown = (normalize_name(vouched) if vouched else None) or name
        if self.accounts is None:
            return SignedIn(derived_player_id(identity), shown, identity)
        accounts = self.accounts
        now = self._clock.seconds()

        def made_here(account: Account) -> Account:
            if account.created >= now:
                self._new_accounts.allow(client)
                self.accounts_made += 1
            return account

        if self._new_accounts.ready(client):
            d = accounts.account_for(identity, shown, now).addCallback(made_here)
        else:
            # The address made its share of accounts: only one it has may sign in (one
            # more read, paid only past the share).
            def existing(account: Account | None) -> Deferred[Account]:
                if account is None:
                    raise AuthFailed("account_limit")
                return accounts.account_for(identity, shown, now)

            d = accounts.find(identity.provider, identity.subject).addCallback(existing)
        return d.addCallback(self._check_ban, identity)

    def _check_ban(self, account: Account, identity: Identity) -> SignedIn:
        ban = account.banned_at(self._clock.seconds())
        if ban is not None:
            raise banned(ban)
        return SignedIn(account.account_id, account.display_name, identity, account)

    def _failed(self, failure: Failure, client: str, key: str, peer_host: str) -> Any:
        if failure.check(LobbyError):
            return failure
        if failure.check(AuthFailed):
            error = failure.value
            assert isinstance(error, AuthFailed)
            self._refused(client, key, error.reason)
            raise auth_failed(error.reason, error.detail)
        if failure.check(TimeoutError, CancelledError):
            raise auth_failed("unavailable")
        if failure.check(BackendUnavailable):
            raise LobbyError(errors.UNAVAILABLE, "the account store did not answer in time; "
                             "try again shortly")  # fmt: skip
        if self._log_limit.allow():
            self.log.failure("signing in a player from {peer} failed", failure, peer=peer_host)
        raise auth_failed("unavailable")

    def _refused(self, client: str, key: str, reason: str) -> None:
        if reason in _NOT_THE_CLIENTS:
            return
        self._refusals.allow(key)
        self._address_refusals.allow(client)

