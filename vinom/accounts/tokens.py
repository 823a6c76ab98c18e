"""Verifying a compact JWT with PyJWT, every refusal a reason word: shared by `jwt` and `signed`.

PyJWT checks the signature, the algorithm (one, pinned by the caller: never
the token's own choice), the issuer and the audience. The times (`exp`,
`nbf`, `iat`) are checked here against `now`, the lobby's clock, with a
leeway, so a test drives them with a `Clock` and the refusal says which one
failed. Each PyJWT error becomes an `AuthFailed` reason sent to the client
(docs/lobby.md, "auth_failed").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from vinom.accounts.interfaces import AuthFailed, Identity

# Claims kept in `Identity.claims` for the game: the rest of a token stays with the lobby.
KEPT_CLAIMS = ("iss", "aud", "exp", "iat", "name", "preferred_username", "email")
MAX_SUBJECT_LENGTH = 256


def unverified_header(token: str) -> Mapping[str, Any]:
    """The token's header (alg, kid), read before any key is chosen; `malformed`
    if the token is not a compact JWS."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt_errors.PyJWTError as e:
        raise AuthFailed("malformed", f"not a compact JWT: {e}") from None
    if not isinstance(header, dict):
        raise AuthFailed("malformed", "the token's header is not a JSON object")
    return header


def verify(
    token: str,
    key: Any,
    algorithm: str,
    *,
    audience: str | None,
    issuer: str | None,
    now: float,
    leeway: float,
) -> dict[str, Any]:
    """The token's claims, once its signature (by `key`, with `algorithm` only), issuer,
    audience and times are right; `AuthFailed` with the reason otherwise."""
    header = unverified_header(token)
    alg = header.get("alg")
    if alg != algorithm:
        raise AuthFailed(
            "bad_algorithm", f"the token is signed with {alg!r}; this key takes {algorithm}"
        )
    required = ["exp", "sub"] + (["iss"] if issuer is not None else [])
    required += ["aud"] if audience is not None else []
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={
                "require": required,
                # Times are checked below, on the lobby's clock.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt_errors.InvalidSignatureError:
        raise AuthFailed("bad_signature", "the token's signature does not verify") from None
    except jwt_errors.MissingRequiredClaimError as e:
        raise AuthFailed("missing_claim", f"the token has no {e.claim!r} claim") from None
    except jwt_errors.InvalidIssuerError:
        raise AuthFailed("wrong_issuer", "the token is not from this server's issuer") from None
    except jwt_errors.InvalidAudienceError:
        raise AuthFailed("wrong_audience", "the token is not meant for this server") from None
    except jwt_errors.InvalidAlgorithmError as e:
        raise AuthFailed("bad_algorithm", str(e)) from None
    except jwt_errors.DecodeError as e:
        raise AuthFailed("malformed", str(e)) from None
    except jwt_errors.PyJWTError as e:
        raise AuthFailed("invalid", str(e)) from None
    check_times(claims, now, leeway)
    return claims


def _time(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise AuthFailed("malformed", f"the token's {name!r} is not a number")
    return float(value)


def check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    """`expired` past `exp` (+ leeway); `not_yet_valid` before `nbf` or `iat` (- leeway)."""
    expires = _time(claims, "exp")
    if expires is not None and now > expires + leeway:
        raise AuthFailed("expired", "the token has expired")
    for name in ("nbf", "iat"):
        start = _time(claims, name)
        if start is not None and now < start - leeway:
            raise AuthFailed("not_yet_valid", f"the token is not valid yet ({name})")


def identity_of(provider: str, claims: Mapping[str, Any]) -> Identity:
    """The identity a verified token names: its `sub`, within `provider`."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise AuthFailed(
            "missing_claim", f"the token's 'sub' must be a string of 1 to {MAX_SUBJECT_LENGTH}"
        )
    name = claims.get("name") or claims.get("preferred_username")
    kept = {k: claims[k] for k in KEPT_CLAIMS if k in claims}
    return Identity(provider, subject, name if isinstance(name, str) else None, kept)
