"""Device authentication: a device id and a secret the client keeps (Nakama's
device authentication, with a secret).

The client makes both once, a device id (10 to 128 printable characters) and
a secret of 32 random bytes (URL-safe base64), keeps them (a browser in its
storage) and sends them in every `hello`:

    {"kind": "device", "device_id": "...", "secret": "..."}

On a device's first use the store keeps a SHA-256 of its secret
(`IAccountStore.authenticate_device`); afterwards only that secret signs in
as the device (`bad_secret`), so a device id seen in a log or over a shoulder
is not enough. The identity is ('device', device_id); the lobby's
`account_for` makes its account with the `hello` name on first use, and
further identities (a JWT's, a studio's) can be linked to the same account.
Guessing is bounded by the lobby's limit on refusals per address, and by the
secret's 256 bits.

Refusals, as every authenticator's (docs/lobby.md): `wrong_kind`,
`malformed` (a missing field, or one of the wrong form), `too_large`,
`bad_secret`, and `unavailable` when the account database does not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.accounts.interfaces import AuthFailed, IAccountStore, IAuthenticator, Identity
from vinom.errors import BackendUnavailable

DEVICE = "device"
# Longer fields are refused before the store is asked (its own limits are 128).
MAX_FIELD = 128


@implementer(IAuthenticator)
class DeviceAuthenticator:
    """`--auth device`: credentials {kind, device_id, secret} checked by the account store."""

    name = DEVICE

    def __init__(self, store: IAccountStore, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        if credentials.get("kind") != DEVICE:
            return fail(AuthFailed("wrong_kind", f"this server takes auth of kind {DEVICE!r}"))
        fields = []
        for key in ("device_id", "secret"):
            value = credentials.get(key)
            if not isinstance(value, str) or not value:
                return fail(AuthFailed("malformed", f"device auth needs a {key!r}: a string"))
            if len(value) > MAX_FIELD:
                return fail(AuthFailed("too_large", f"a device's {key!r} is at most {MAX_FIELD}"))
            fields.append(value)
        device_id, secret = fields
        d = self._store.authenticate_device(device_id, secret, self._clock.seconds())
        d.addErrback(_unavailable)
        return d


def _unavailable(failure: Failure) -> Failure:
    if failure.check(AuthFailed):
        return failure
    if failure.check(BackendUnavailable):
        return Failure(AuthFailed("unavailable", "the account database did not answer"))
    return Failure(AuthFailed("invalid", f"{failure.type.__name__ if failure.type else ''}"))


def make_device(settings: Any, reactor: Any, store: IAccountStore | None) -> DeviceAuthenticator:
    """The maker an authenticator plugin calls (`--auth device`): it needs the account
    store, ValueError (one line) without one."""
    if store is None:
        raise ValueError("--auth device needs an account database: give --database")
    return DeviceAuthenticator(store, reactor)
