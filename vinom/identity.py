"""Player ids and reconnection secrets: made by the lobby, kept (hashed) by the player store.

A player id is 'p-' and 16 random hex digits; the reconnection secret is 32
random bytes (URL-safe base64). Only a SHA-256 of the secret is stored: the
secret has 256 bits of entropy, so a fast hash is enough to make a leaked
store useless for impersonation, and no salt or slow KDF is needed.

`verify_secret` checks a `reconnect`: it does the same work whether the
player id is known or not (the secret is hashed and compared, with a dummy
hash for an unknown player), so the answer's timing does not tell which ids
exist. The secret itself never appears in a repr or a log line: requests
carrying it hide it (`vinom.lobby.codec.Reconnect`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable


def new_player_id() -> str:
    """'p-' and 16 random hex digits."""
    return "p-" + secrets.token_hex(8)


def new_secret() -> str:
    """A fresh reconnection secret (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The hex SHA-256 the store keeps instead of the secret.

    `surrogatepass`: a secret parsed from JSON may hold a lone surrogate; it must
    hash (and fail to match), not raise.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    """Whether `secret` hashes to `secret_hash`, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret), secret_hash)


# What the secret of an unknown player is compared with: a hash no secret is known to
# have, of the same length as every real one.
UNKNOWN_PLAYER_HASH = hash_secret(new_secret())


def verify_secret(
    secret: str,
    secret_hash: str | None,
    *,
    compare: Callable[[str, str], bool] = hmac.compare_digest,
) -> bool:
    """Whether `secret` is the one whose hash is `secret_hash` (None: an unknown player).

    Both cases hash `secret` and make one `compare` of two hex SHA-256 digests
    (an unknown player's against `UNKNOWN_PLAYER_HASH`), so a wrong secret for
    a known id takes as long as any secret for an unknown one. `compare` must
    take constant time (the default does); it is a parameter so that a test
    can watch the comparisons made.
    """
    expected = UNKNOWN_PLAYER_HASH if secret_hash is None else secret_hash
    matches = compare(hash_secret(secret), expected)
    return matches and secret_hash is not None
