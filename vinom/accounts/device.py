"""Device authentication: a device id and a secret the client keeps (Nakama's
device authentication, with a secret).

The client makes both once, a device id (10 to 128 printable characters) and
a secret of 32 random bytes (URL-safe base64), keeps them (a browser in its
storage) and sends them in every `hello`:

    {"kind": "device", "device_id": "...", "secret": "..."}

On a device's first use the store keeps a SHA-256 of its secret; afterwards
only that secret signs in as the device (AuthFailed('bad_secret')), so a
device id seen in a log or over a shoulder is not enough. The identity is
('device', device_id); the lobby's `account_for` makes its account with the
`hello` name on first use, and further identities (a JWT's, a studio's) can be
linked to the same account. Guessing is bounded by the lobby's limit on
failed sign-ins per address, and by the secret's 256 bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from vinom.accounts.interfaces import AuthFailed, IAccountStore, IAuthenticator, Identity


@implementer(IAuthenticator)
class DeviceAuthenticator:
    """`--auth device`: credentials {kind, device_id, secret} checked by the account store."""

    name = "device"

    def __init__(self, store: IAccountStore, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        device_id = credentials.get("device_id")
        secret = credentials.get("secret")
        if not isinstance(device_id, str) or not isinstance(secret, str):
            failed: Deferred[Identity] = Deferred()
            failed.errback(AuthFailed("invalid", "device auth needs a device_id and a secret"))
            return failed
        return self._store.authenticate_device(device_id, secret, self._clock.seconds())
