"""`jwt`: a bearer JWT from the studio's OpenID Connect provider, its `sub` the account.

The client sends `{"kind": "jwt", "token": "<JWT>"}`. The token must name
this server's issuer (`iss`) and audience (`aud`), be within its times (`exp`,
`nbf`, `iat`, with a small leeway) and be signed by one of the provider's
keys with that key's algorithm. The keys come from the provider's JWKS URL
(`JwksKeys`: fetched with twisted.web's client, never blocking the reactor,
cached, fetched again when a token names an unknown `kid` but at most once
every few seconds, so a flood of made-up `kid`s costs the provider one
request per interval) or from a key file (`StaticKeys`: a JWKS document or
one PEM public key).

Only RS256, ES256 (P-256) and EdDSA (Ed25519) are taken, and each key is
pinned to the one algorithm its type signs with: `alg: none`, HS256 (the
public key used as an HMAC secret) and a token that names another algorithm
than its key's are all refused as `bad_algorithm` before any signature is
checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from attrs import frozen
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, platformTrust
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    BrowserLikePolicyForHTTPS,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from zope.interface import Interface, implementer

from vinom.accounts.interfaces import AuthFailed, IAccountStore, IAuthenticator, Identity
from vinom.accounts.plugins import AuthSettings, as_auth_failure, check_kind, credential
from vinom.accounts.tokens import LEEWAY, Compact, identity_of, parse, verify
from vinom.net.http import quiet_agent
from vinom.net.limits import LogLimiter

JWT = "jwt"
ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
# A JWKS document larger than this is refused (a provider's holds a few keys).
MAX_JWKS_BYTES = 256 * 1024
# Cached keys are fetched again after this many seconds (on the next sign-in).
MAX_KEY_AGE = 3600.0
MIN_RSA_BITS = 2048


@frozen
class SigningKey:
    """A provider's public key and the one algorithm it verifies."""

    key: Any
    algorithm: str


def algorithm_of(key: Any) -> str | None:
    """The algorithm a public key is pinned to, or None for a key vinom does not take."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256" if key.key_size >= MIN_RSA_BITS else None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ES256" if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    return None


def keys_from_jwks(data: bytes) -> dict[str | None, SigningKey]:
    """The usable signing keys of a JWKS document, by `kid`; ValueError if it is not one.

    Keys of other types (HMAC `oct` keys above all), other curves, short RSA keys,
    encryption keys and keys whose `alg` disagrees with their type are left out.
    """
    document = json.loads(data)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (an object with a 'keys' list)")
    keys: dict[str | None, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        if hasattr(key, "public_key"):
            key = key.public_key()  # a private JWK: keep only its public half
        algorithm = algorithm_of(key)
        if algorithm is None or jwk.get("alg", algorithm) != algorithm:
            continue
        kid = jwk.get("kid")
        keys[kid if isinstance(kid, str) else None] = SigningKey(key, algorithm)
    return keys


def keys_from_file(path: str) -> dict[str | None, SigningKey]:
    """The keys of a key file: a JWKS document, or one PEM public key (under no `kid`:
    it verifies any token). ValueError with a line for the operator if unusable."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"--auth-key-file {path!r}: {e.strerror}") from None
    if data.lstrip().startswith(b"{"):
        try:
            keys = keys_from_jwks(data)
        except ValueError as e:
            raise ValueError(f"--auth-key-file {path!r}: {e}") from None
    else:
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise ValueError(f"--auth-key-file {path!r} holds neither a JWKS document nor a "
                             "PEM public key") from None  # fmt: skip
        algorithm = algorithm_of(key)
        keys = {} if algorithm is None else {None: SigningKey(key, algorithm)}
    if not keys:
        raise ValueError(f"--auth-key-file {path!r} holds no RS256 (2048 bits or more), "
                         "ES256 (P-256) or EdDSA (Ed25519) public key")  # fmt: skip
    return keys


class IKeySource(Interface):
    """Where a `JwtAuthenticator` finds the key a token's `kid` names."""

    def key_for(kid: str | None) -> Deferred[SigningKey]:
        """The key, or `AuthFailed` (`unknown_kid`, `unavailable`)."""


def _pick(keys: Mapping[str | None, SigningKey], kid: str | None) -> SigningKey | None:
    key = keys.get(kid)
    if key is None and None in keys:
        key = keys[None]  # a key without a kid verifies any token
    if key is None and kid is None and len(keys) == 1:
        key = next(iter(keys.values()))  # a token without a kid, one key to try
    return key


@implementer(IKeySource)
class StaticKeys:
    """Keys from a file, read once at start."""

    def __init__(self, keys: Mapping[str | None, SigningKey]) -> None:
        self._keys = dict(keys)

    def key_for(self, kid: str | None) -> Deferred[SigningKey]:
        key = _pick(self._keys, kid)
        if key is None:
            return fail(AuthFailed("unknown_kid", "no key of this server has the token's kid"))
        return succeed(key)


@implementer(IKeySource)
class JwksKeys:
    """The provider's keys from its JWKS URL, cached.

    A `kid` not in the cache starts a fetch, unless one started less than
    `refresh_interval` seconds ago: then it is `unknown_kid` at once (or
    `unavailable` if no fetch has ever succeeded). Every sign-in waiting for
    a key waits on the one fetch in flight. Keys older than `max_age` are
    used while a fetch replaces them. A failed fetch keeps the keys there were.
    """

    log = Logger()

    def __init__(
        self,
        fetch: Callable[[], Deferred[bytes]],
        clock: IReactorTime,
        *,
        refresh_interval: float = 5.0,
        max_age: float = MAX_KEY_AGE,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._keys: dict[str | None, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._waiting: list[Deferred[bool]] | None = None
        self._log_limit = LogLimiter(1.0 / 60, 3, clock)
        # Fetches made, and failed: for tests and the log.
        self.fetches = 0
        self.failures = 0

    def key_for(self, kid: str | None) -> Deferred[SigningKey]:
        now = self._clock.seconds()
        key = _pick(self._keys, kid)
        if key is not None:
            stale = self._fetched_at is not None and now - self._fetched_at > self._max_age
            if stale and self._may_fetch(now):
                self.refresh()  # in the background: this key is good meanwhile
            return succeed(key)
        if self._waiting is None and not self._may_fetch(now):
            return fail(self._missing(kid, fetched=self._fetched_at is not None))
        return self.refresh().addCallback(self._after, kid)

    def _may_fetch(self, now: float) -> bool:
        if self._waiting is not None:
            return False
        return self._attempted_at is None or now - self._attempted_at >= self._refresh_interval

    def _after(self, fetched: bool, kid: str | None) -> SigningKey:
        key = _pick(self._keys, kid)
        if key is None:
            raise self._missing(kid, fetched=fetched)
        return key

    def _missing(self, kid: str | None, *, fetched: bool) -> AuthFailed:
        if not fetched:
            return AuthFailed("unavailable", "the identity provider's keys could not be fetched")
        return AuthFailed("unknown_kid", "the identity provider has no key with the token's kid")

    def refresh(self) -> Deferred[bool]:
        """Fetch the keys now (at start, and when a `kid` is unknown), or join the fetch
        in flight; fires with whether it succeeded."""
        waiter: Deferred[bool] = Deferred()
        if self._waiting is not None:
            self._waiting.append(waiter)
            return waiter
        self._attempted_at = self._clock.seconds()
        self._waiting = [waiter]
        self.fetches += 1
        d = Deferred.fromCoroutine(self._fetched())
        d.addErrback(self._fetch_failed)
        d.addCallback(self._done)
        return waiter

    async def _fetched(self) -> bool:
        data = await self._fetch()
        keys = keys_from_jwks(data)
        if not keys:
            raise ValueError("the JWKS document holds no usable signing key")
        self._keys = keys
        self._fetched_at = self._clock.seconds()
        return True

    def _fetch_failed(self, failure: Failure) -> bool:
        self.failures += 1
        if self._log_limit.allow():
            error = failure.getErrorMessage() or type(failure.value).__name__
            self.log.warn("vinom: fetching the identity provider's keys failed: {error}",
                          error=error)  # fmt: skip
        return False

    def _done(self, fetched: bool) -> None:
        waiting, self._waiting = self._waiting or [], None
        for d in waiting:
            d.callback(fetched)


_DONE = Failure(ResponseDone())


class _BoundedBody(Protocol):
    """A response body, refused past `limit` bytes."""

    def __init__(self, limit: int, done: Deferred[bytes]) -> None:
        self._limit = limit
        self._done = done
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._done.errback(ValueError(f"the JWKS document is over {self._limit} bytes"))
            self.transport.stopProducing()  # type: ignore[union-attr]
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        if self._done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(reason)


def read_body(response: IResponse, limit: int) -> Deferred[bytes]:
    """The body of `response`, at most `limit` bytes."""
    done: Deferred[bytes] = Deferred()
    response.deliverBody(_BoundedBody(limit, done))
    return done


def http_fetcher(
    agent: IAgent, url: str, clock: IReactorTime, timeout: float
) -> Callable[[], Deferred[bytes]]:
    """A JWKS fetch: GET `url` with `agent`, the body if the answer is 200, all within
    `timeout` seconds; else KeysUnavailable, naming the URL and why in one line."""

    async def get() -> bytes:
        headers = Headers({b"accept": [b"application/json"], b"user-agent": [b"vinom"]})
        response = await agent.request(b"GET", url.encode("ascii"), headers)
        body = await read_body(response, MAX_JWKS_BYTES)
        if response.code != 200:
            raise ValueError(f"answered HTTP {response.code}")
        return body

    def failed(failure: Failure) -> Failure:
        # One line for the log: where, and why (a refusal, a name not found, a bad answer).
        if failure.check(KeysUnavailable):
            return failure
        error = failure.value
        while isinstance(error, ResponseFailed | ResponseNeverReceived) and error.reasons:
            error = error.reasons[0].value
        why = str(error).strip().rstrip(".") or type(error).__name__
        return Failure(KeysUnavailable(f"{url}: {why}"))

    def timed_out(result: object, seconds: float) -> Failure:
        # Whatever the cancelled request failed with (twisted.web wraps the cancellation).
        return Failure(KeysUnavailable(f"{url}: no answer within {seconds:g} s"))

    def fetch() -> Deferred[bytes]:
        d = Deferred.fromCoroutine(get()).addTimeout(timeout, clock, onTimeoutCancel=timed_out)
        return d.addErrback(failed)

    return fetch


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched: its message names the URL and why."""


@implementer(IAuthenticator)
class JwtAuthenticator:
    """Verifies `{"kind": "jwt", "token": "..."}` against the provider's keys."""

    name = JWT

    def __init__(
        self, keys: IKeySource, clock: IReactorTime, *, issuer: str, audience: str,
        leeway: float = LEEWAY,
    ) -> None:  # fmt: skip
        self.keys = keys
        self._clock = clock
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        try:
            check_kind(credentials, JWT)
            token = parse(credential(credentials, "token"))
            header = token.header
            alg = header.get("alg")
            if alg not in ALGORITHMS:
                raise AuthFailed("bad_algorithm", f"tokens signed with {str(alg)[:16]!r} are "
                                 "refused: RS256, ES256 or EdDSA only")  # fmt: skip
            kid = header.get("kid")  # a string or None (parse checked)
        except AuthFailed as e:
            return fail(e)
        d: Deferred[Any] = self.keys.key_for(kid)
        d.addCallback(self._verified, token)
        return d.addErrback(as_auth_failure)

    def _verified(self, key: SigningKey, token: Compact) -> Identity:
        claims = verify(token, key.key, key.algorithm, audience=self._audience,
                        issuer=self._issuer, now=self._clock.seconds(),
                        leeway=self._leeway)  # fmt: skip
        return identity_of(JWT, claims)


def check_jwt(settings: AuthSettings) -> None:
    if (settings.jwks_url is None) == (settings.key_file is None):
        raise ValueError("--auth jwt needs the provider's keys: --auth-jwks-url or "
                         "--auth-key-file (one of them)")  # fmt: skip
    if settings.issuer is None or settings.audience is None:
        raise ValueError("--auth jwt needs --auth-issuer and --auth-audience (the 'iss' and "
                         "'aud' the provider puts in tokens for this game)")  # fmt: skip
    if settings.jwks_url is not None:
        if not settings.jwks_url.startswith(("https://", "http://")):
            raise ValueError(f"--auth-jwks-url {settings.jwks_url!r} must be an https:// "
                             "(or http://) URL")  # fmt: skip
        if settings.jwks_ca is not None and not settings.jwks_url.startswith("https://"):
            raise ValueError("--auth-jwks-ca is for an https:// --auth-jwks-url")
        if settings.jwks_ca is not None:
            _trust_root(settings.jwks_ca)
    if settings.key_file is not None:
        keys_from_file(settings.key_file)


def _trust_root(path: str) -> Any:
    try:
        return Certificate.loadPEM(Path(path).read_bytes())
    except OSError as e:
        raise ValueError(f"--auth-jwks-ca {path!r}: {e.strerror}") from None
    except Exception:
        raise ValueError(f"--auth-jwks-ca {path!r} holds no PEM certificate") from None


def make_jwt(
    settings: AuthSettings, reactor: Any, store: IAccountStore | None
) -> JwtAuthenticator:
    assert settings.issuer is not None and settings.audience is not None
    keys: IKeySource
    if settings.key_file is not None:
        keys = StaticKeys(keys_from_file(settings.key_file))
    else:
        assert settings.jwks_url is not None
        trust = platformTrust() if settings.jwks_ca is None else _trust_root(settings.jwks_ca)
        agent = quiet_agent(reactor, settings.timeout, BrowserLikePolicyForHTTPS(trust))
        fetch = http_fetcher(agent, settings.jwks_url, reactor, settings.timeout)
        jwks = JwksKeys(fetch, reactor, refresh_interval=settings.refresh_interval)
        # The keys are fetched once the reactor runs, before the first player needs them.
        reactor.callWhenRunning(jwks.refresh)  # (its outcome: logged if it fails)
        keys = jwks
    return JwtAuthenticator(keys, reactor, issuer=settings.issuer, audience=settings.audience,
                            leeway=settings.leeway)  # fmt: skip
