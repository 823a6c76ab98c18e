"""Player ids and reconnection secrets.

A player id is 'p-' and 16 random hex digits; the reconnection secret is 32
random bytes (URL-safe base64). Only a SHA-256 of the secret is stored: the
secret has 256 bits of entropy, so a fast hash is enough to make a leaked
store useless for impersonation, and no salt or slow KDF is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


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
