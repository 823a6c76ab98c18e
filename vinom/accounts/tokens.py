"""Verifying a compact JWT, every refusal a reason word: shared by `jwt` and `signed`.

A token is parsed once (`parse`): three base64url segments, each checked
strictly (the base64url alphabet, at most the padding a segment can have,
no stray bits: one token has one spelling), the header a JSON object. The
signature is checked by PyJWT's algorithm objects (`jwt.algorithms`, on
`cryptography`) with the one algorithm the caller pins, never the token's
own choice; the claims are read only once it verifies. The issuer, the
audience and the required claims are checked here as PyJWT's `decode` checks
them, and the times (`exp`, `nbf`, `iat`) against `now`, the lobby's clock,
with a leeway, so a test drives them with a `Clock` and the refusal says which
one failed. PyJWT's `decode` is not used on the sign-in path: it checks the
segments' alphabet one character at a time and parses the token again for
each step, which cost more than the signature itself (a few hundred
microseconds a sign-in against RS256's tens). Each refusal is an
`AuthFailed` reason sent to the client (docs/lobby.md, "auth_failed").
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen
from jwt.algorithms import Algorithm, get_default_algorithms

from vinom.accounts.interfaces import AuthFailed, Identity

#: Seconds of clock difference allowed on a token's `exp`, `nbf` and `iat` (PyJWT's
#: `leeway`): a constant, wide enough for two machines' clocks kept by NTP.
LEEWAY = 30.0
# Claims kept in `Identity.claims` for the game: the rest of a token stays with the lobby.
KEPT_CLAIMS = ("iss", "aud", "exp", "iat", "name", "preferred_username", "email")
MAX_SUBJECT_LENGTH = 256

# The base64url alphabet (RFC 7515 section 2), unpadded.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# What a segment's last character may be, by the segment's length modulo 4: the bits
# it carries past the data are zero (one token, one spelling).
_LAST = {0: frozenset(_ALPHABET), 2: frozenset(_ALPHABET[::16]), 3: frozenset(_ALPHABET[::4])}
_STANDARD = bytes.maketrans(b"-_", b"+/")
# PyJWT's verifiers by algorithm name: stateless, shared.
_ALGORITHMS: Mapping[str, Algorithm] = get_default_algorithms()


@frozen
class Compact:
    """A compact JWS as parsed, nothing of it verified yet."""

    header: Mapping[str, Any]
    signing_input: bytes
    payload: bytes
    signature: bytes


def _segment(text: str, name: str) -> bytes:
    # Trailing '=' is taken (some issuers pad), but no more than a segment can have;
    # a segment whose last character carries stray bits is refused, as PyJWT does.
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    tail = len(stripped) % 4
    if (padding > 2 or (padding and len(text) % 4) or tail == 1
            or _SEGMENT.fullmatch(stripped) is None
            or (stripped and stripped[-1] not in _LAST[tail])):  # fmt: skip
        raise AuthFailed("malformed", f"the token's {name} is not base64url")
    try:
        data = (stripped + "=" * (-tail % 4)).encode("ascii")
        return binascii.a2b_base64(data.translate(_STANDARD))
    except binascii.Error:
        raise AuthFailed("malformed", f"the token's {name} is not base64url") from None


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    # UTF-8, as RFC 7515 has it (json.loads of bytes would guess UTF-16 and -32 too).
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AuthFailed("malformed", f"the token's {name} is not JSON") from None
    if not isinstance(value, dict):
        raise AuthFailed("malformed", f"the token's {name} is not a JSON object")
    return value


def parse(token: str) -> Compact:
    """The token's parts, its header read; `malformed` if it is not a compact JWS."""
    if not isinstance(token, str) or not token.isascii() or token.count(".") != 2:
        raise AuthFailed("malformed", "not a compact JWT (three base64url parts)")
    header_text, payload_text, signature_text = token.split(".")
    header = _json_object(_segment(header_text, "header"), "header")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AuthFailed("malformed", "the token's 'kid' is not a string")
    if "crit" in header:
        # No JWS extension is understood here, so none may be critical (RFC 7515 4.1.11).
        raise AuthFailed("malformed", "the token names a critical extension")
    if header.get("b64", True) is not True:
        raise AuthFailed("malformed", "the token's payload is not base64url (b64)")
    return Compact(
        header=header,
        signing_input=f"{header_text}.{payload_text}".encode("ascii"),
        payload=_segment(payload_text, "payload"),
        signature=_segment(signature_text, "signature"),
    )


def prepared_key(key: Any, algorithm: str) -> Any:
    """`key` as `algorithm`'s verifier takes it (PyJWT's checks: an HMAC secret that is
    a PEM or DER public key is refused); done once, when the key is loaded."""
    return _ALGORITHMS[algorithm].prepare_key(key)


def verify(
    token: str | Compact,
    key: Any,
    algorithm: str,
    *,
    audience: str | None,
    issuer: str | None,
    now: float,
    leeway: float,
) -> dict[str, Any]:
    """The token's claims, once its signature (by `key`, a `prepared_key` of
    `algorithm`, with `algorithm` only), issuer, audience and times are right;
    `AuthFailed` with the reason otherwise."""
    compact = parse(token) if isinstance(token, str) else token
    alg = compact.header.get("alg")
    if alg != algorithm:
        raise AuthFailed("bad_algorithm", f"the token is signed with {str(alg)[:16]!r}; "
                         f"this key takes {algorithm}")  # fmt: skip
    if algorithm == "HS256":
        # What PyJWT's HMAC verifier does, in one call of the standard library's.
        good = hmac.compare_digest(hmac.digest(key, compact.signing_input, "sha256"),
                                   compact.signature)  # fmt: skip
    else:
        good = _ALGORITHMS[algorithm].verify(compact.signing_input, key, compact.signature)
    if not good:
        raise AuthFailed("bad_signature", "the token's signature does not verify")
    claims = _json_object(compact.payload, "payload")
    required = ["exp", "sub"] + (["iss"] if issuer is not None else [])
    required += ["aud"] if audience is not None else []
    for name in required:
        if claims.get(name) is None:
            raise AuthFailed("missing_claim", f"the token has no {name!r} claim")
    if issuer is not None and claims["iss"] != issuer:
        raise AuthFailed("wrong_issuer", "the token is not from this server's issuer")
    _check_audience(claims.get("aud"), audience)
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise AuthFailed("invalid", f"the token's {name!r} is not a string")
    check_times(claims, now, leeway)
    return claims


def _check_audience(claimed: Any, audience: str | None) -> None:
    # A string or a list of strings, one of them this server's; a token with an
    # audience for a server that names none is refused too.
    if audience is None:
        if claimed:
            raise AuthFailed("wrong_audience", "the token is meant for another server")
        return
    if not claimed:
        raise AuthFailed("missing_claim", "the token has no 'aud' claim")
    audiences = [claimed] if isinstance(claimed, str) else claimed
    if not isinstance(audiences, list) or any(not isinstance(a, str) for a in audiences):
        raise AuthFailed("wrong_audience", "the token's 'aud' is not a string or a list of them")
    if audience not in audiences:
        raise AuthFailed("wrong_audience", "the token is not meant for this server")


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
