"""Signing players in at `hello` and `reconnect`: the lobby's side of authentication.

`LobbyAuth.sign_in` takes the `auth` of a request and answers who the player
is (`SignedIn`), or fails with the `LobbyError` the client is sent:
`auth_failed` with a `reason` (docs/lobby.md, "Authentication") or `banned`.
A guest server (the default authenticator) takes a request without `auth`
at once, with nothing to wait for: today's anonymous players. Every other
sign-in

- is refused unverified (`rate_limited`) while the client's address has used
  up its refusals (`auth_failure_rate`, `auth_failure_burst`: only a refusal
  takes from the bucket, so honest players behind one address are not
  limited by one another's successes);
- goes to the server's `IAuthenticator`, bounded by `auth_timeout` (a slow or
  down identity provider makes only this request wait, and then answers
  `unavailable`); anything it fails with besides `AuthFailed` is logged and
  answered `unavailable`;
- is resolved to an account by the `IAccountStore`, when there is one: the
  account's id is the player id, and a banned account is refused; without a
  store the player id is derived from the identity (the same player, the
  same id).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, cast

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.accounts.interfaces import Account, AuthFailed, IAccountStore, IAuthenticator, Identity
from vinom.errors import BackendUnavailable, LobbyError
from vinom.lobby import errors
from vinom.lobby.codec import Auth, BadAuth
from vinom.lobby.config import LobbyConfig
from vinom.lobby.names import normalize_name
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
    "invalid": "the credentials are not valid",
}
# Refusals whose message adds the authenticator's detail (which claim, which kind).
_DETAILED = frozenset({"malformed", "missing_claim", "wrong_kind", "too_large", "invalid"})
# Refusals that say nothing about the client: not taken from its address's bucket.
_NOT_THE_CLIENTS = frozenset({"unavailable", "rate_limited"})


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


def auth_failed(reason: str, detail: str = "") -> LobbyError:
    """The `auth_failed` error with `reason`; `detail` (the authenticator's) for people."""
    message = _MESSAGES.get(reason, _MESSAGES["invalid"])
    if detail and reason in _DETAILED:
        message = f"{message}: {detail[:120]}"
    return LobbyError(errors.AUTH_FAILED, message, fields={"reason": reason})


def banned(account: Account, until: float | None, reason: str) -> LobbyError:
    """The `banned` error of an account: why, and until when (None: for good)."""
    when = "for good" if until is None else f"until {until:.0f} (Unix time)"
    return LobbyError(
        errors.BANNED,
        f"this account is banned {when}: {reason}",
        fields={"reason": reason, "until": until},
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
        self._refusals = KeyedTokenBuckets(config.auth_failure_rate, config.auth_failure_burst,
                                           clock)  # fmt: skip
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
        none (nothing to wait for). Fails with a `LobbyError` to answer with."""
        if auth is None and not self.required:
            return None
        if not self._refusals.ready(client):
            raise auth_failed("rate_limited")
        if isinstance(auth, BadAuth):
            self._refused(client, peer_host, auth.reason)
            raise auth_failed(auth.reason, auth.message)
        if auth is None:
            self._refused(client, peer_host, "required")
            raise auth_failed("required")
        if auth.get("kind") != self.kind:
            self._refused(client, peer_host, "wrong_kind")
            raise auth_failed("wrong_kind", f"this server takes auth of kind {self.kind!r}")
        if not self.required or self.authenticator is None:
            return None  # a guest who said so
        d: Deferred[Any] = maybeDeferred(self.authenticator.authenticate, auth, peer_host)
        if not d.called:
            # Only an answer still to come needs a timer (a token verified in memory, a
            # device remembered, have answered already).
            d.addTimeout(self._timeout, self._clock)
        d.addCallback(self._account_of, name)
        d.addErrback(self._failed, client, peer_host)
        return cast(Deferred[SignedIn], d)

    def _account_of(self, identity: Identity, name: str) -> Deferred[SignedIn] | SignedIn:
        # A name the provider vouches for, if it is a valid name; the hello's otherwise.
        vouched = identity.display_name
        shown = (normalize_name(vouched) if vouched else None) or name
        if self.accounts is None:
            return SignedIn(derived_player_id(identity), shown, identity)
        d = self.accounts.account_for(identity, shown, self._clock.seconds())
        return d.addCallback(self._check_ban, identity)

    def _check_ban(self, account: Account, identity: Identity) -> SignedIn:
        ban = account.banned_at(self._clock.seconds())
        if ban is not None:
            until = ban.until if ban.until is None or math.isfinite(ban.until) else None
            raise banned(account, until, ban.reason)
        return SignedIn(account.account_id, account.display_name, identity, account)

    def _failed(self, failure: Failure, client: str, peer_host: str) -> Any:
        if failure.check(LobbyError):
            return failure
        if failure.check(AuthFailed):
            error = failure.value
            assert isinstance(error, AuthFailed)
            self._refused(client, peer_host, error.reason)
            raise auth_failed(error.reason, error.detail)
        if failure.check(TimeoutError, CancelledError):
            raise auth_failed("unavailable")
        if failure.check(BackendUnavailable):
            raise LobbyError(errors.UNAVAILABLE, "the account store did not answer in time; "
                             "try again shortly")  # fmt: skip
        if self._log_limit.allow():
            self.log.failure("signing in a player from {peer} failed", failure, peer=peer_host)
        raise auth_failed("unavailable")

    def _refused(self, client: str, peer_host: str, reason: str) -> None:
        if reason in _NOT_THE_CLIENTS:
            return
        self._refusals.allow(client)

