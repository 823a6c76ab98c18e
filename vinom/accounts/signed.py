"""`signed`: a short-lived token the studio's own backend signs with a key it shares
with vinom, the simplest server-to-server path.

The token is a compact JWT signed with HS256 (HMAC-SHA256) under the shared
key: `base64url(header) "." base64url(claims) "." base64url(mac)`, the
header `{"alg": "HS256", "typ": "JWT"}`, the claims `sub` (the player, within
the studio), `aud` (`--auth-audience`, "vinom" by default), `exp` (Unix
seconds; at most `MAX_LIFETIME` ahead) and optionally `name`. Any JWT library
makes one, and so do ten lines of any language's standard library
(docs/operations.md, "Signed tokens", in Python and Node.js). The algorithm is
pinned: a token that says anything but HS256 is refused, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from vinom.accounts.interfaces import AuthFailed, IAccountStore, IAuthenticator, Identity
from vinom.accounts.plugins import AuthSettings, check_kind, credential
from vinom.accounts.tokens import LEEWAY, identity_of, prepared_key, verify

SIGNED = "signed"
DEFAULT_AUDIENCE = "vinom"
# A signed token may live at most this long (seconds from now to its `exp`).
MAX_LIFETIME = 3600.0
# HMAC-SHA256 keys shorter than this are refused at start.
MIN_SECRET_BYTES = 32


@implementer(IAuthenticator)
class SignedTokenAuthenticator:
    """Verifies `{"kind": "signed", "token": "..."}` against the shared key."""

    name = SIGNED

    def __init__(
        self, secret: bytes, clock: IReactorTime, *, audience: str = DEFAULT_AUDIENCE,
        leeway: float = LEEWAY,
    ) -> None:  # fmt: skip
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the shared key must be at least {MIN_SECRET_BYTES} bytes")
        try:
            self._secret = prepared_key(secret, "HS256")
        except Exception as e:  # PyJWT's InvalidKeyError: a public key is no shared key
            raise ValueError(f"the shared key is refused: {e}") from None
        self._clock = clock
        self._audience = audience
        self._leeway = leeway

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        try:
            return succeed(self._identity(credentials))
        except AuthFailed as e:
            return fail(e)

    def _identity(self, credentials: Mapping[str, Any]) -> Identity:
        check_kind(credentials, SIGNED)
        token = credential(credentials, "token")
        now = self._clock.seconds()
        claims = verify(token, self._secret, "HS256", audience=self._audience, issuer=None,
                        now=now, leeway=self._leeway)  # fmt: skip
        if float(claims["exp"]) > now + MAX_LIFETIME + self._leeway:
            raise AuthFailed(
                "too_long_lived", f"a signed token may live at most {MAX_LIFETIME:g} seconds"
            )
        return identity_of(SIGNED, claims)


def read_shared_key(path: str) -> bytes:
    """The shared key in `path` (surrounding white space dropped); ValueError if it is
    unreadable or too short."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as e:
        raise ValueError(f"--auth-secret-file {path!r}: {e.strerror}") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"--auth-secret-file {path!r} must hold a key of at least {MIN_SECRET_BYTES} bytes"
            " (e.g. `openssl rand -hex 32`)"
        )
    try:
        prepared_key(key, "HS256")
    except Exception:  # PyJWT's InvalidKeyError
        raise ValueError(f"--auth-secret-file {path!r} holds a public key or certificate, not "
                         "a shared secret") from None  # fmt: skip
    return key


def check_signed(settings: AuthSettings) -> None:
    if settings.secret_file is None:
        raise ValueError("--auth signed needs --auth-secret-file (the key shared with the "
                         "studio's backend)")  # fmt: skip
    read_shared_key(settings.secret_file)


def make_signed(
    settings: AuthSettings, reactor: Any, store: IAccountStore | None
) -> SignedTokenAuthenticator:
    assert settings.secret_file is not None
    return SignedTokenAuthenticator(
        read_shared_key(settings.secret_file), reactor,
        audience=settings.audience or DEFAULT_AUDIENCE, leeway=settings.leeway,
    )  # fmt: skip
