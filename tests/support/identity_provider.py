"""A local OpenID Connect identity provider for tests: signing keys, the JWKS it serves
over HTTPS (a real twisted.web server with a self-signed certificate the server is told
to trust), and the tokens it issues, good ones and bad ones.

`mode` makes the JWKS endpoint misbehave: "up" answers, "down" answers 503, "slow"
never answers (the request hangs until the client gives up).
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.internet import reactor
from twisted.internet.ssl import PrivateCertificate
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from tests.support.http import SilentSite
from vinom.server.certs import make_self_signed

ISSUER = "https://idp.vinom.test/"
AUDIENCE = "vinom-test-game"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(alg: str) -> Any:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def public_jwk(kid: str, key: Any, alg: str) -> dict[str, Any]:
    """The public JWK of a private key, as a provider publishes it."""
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": alg}


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class _Jwks(Resource):
    isLeaf = True

    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__()
        self.provider = provider
        self.hanging: list[Request] = []

    def render_GET(self, request: Request) -> bytes | int:
        self.provider.requests += 1
        if self.provider.mode == "slow":
            self.hanging.append(request)
            return NOT_DONE_YET
        if self.provider.mode == "down":
            request.setResponseCode(503)
            return b"down for maintenance"
        request.setHeader(b"content-type", b"application/json")
        return self.provider.jwks()


class IdentityProvider:
    """Keys by kid (those `published` are in the JWKS), and tokens signed with them."""

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys: dict[str, tuple[Any, str]] = {}
        self.published: list[str] = []
        self.requests = 0
        self.mode = "up"
        self._resource = _Jwks(self)

    def add_key(self, kid: str, alg: str = "RS256", *, publish: bool = True) -> Any:
        key = new_key(alg)
        self.keys[kid] = (key, alg)
        if publish:
            self.published.append(kid)
        return key

    def rotate(self, kid: str, alg: str = "RS256") -> None:
        """A new key, published alone: tokens of the old keys no longer verify."""
        self.add_key(kid, alg, publish=False)
        self.published = [kid]

    def jwks(self) -> bytes:
        keys = [public_jwk(kid, *self.keys[kid]) for kid in self.published]
        return json.dumps({"keys": keys}).encode()

    def claims(self, subject: str, *, lifetime: float = 300.0, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "aud": self.audience, "sub": subject,
                                  "iat": now, "exp": now + int(lifetime)}  # fmt: skip
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(self, subject: str, kid: str = "k1", *, lifetime: float = 300.0,
              headers: dict[str, Any] | None = None, **changes: Any) -> str:  # fmt: skip
        """A token for `subject` signed by key `kid` with its algorithm; `changes` replace
        claims (None removes one)."""
        key, alg = self.keys[kid]
        return jwt.encode(self.claims(subject, lifetime=lifetime, **changes), key, algorithm=alg,
                          headers={"kid": kid, **(headers or {})})  # fmt: skip

    def unsigned_token(self, sub: str, kid: str = "k1") -> str:
        """`alg: none`: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
        body = _b64(json.dumps(self.claims(sub)).encode())
        return f"{header}.{body}."

    def hmac_with_public_key(self, sub: str, kid: str = "k1") -> str:
        """HS256 with the public key (PEM, as the server holds it) as the HMAC secret: the
        RSA/HMAC confusion attack. Made by hand: PyJWT refuses to sign with a PEM key."""
        import hashlib
        import hmac

        secret = public_pem(self.keys[kid][0])
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        body = _b64(json.dumps(self.claims(sub)).encode())
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(mac)}"

    def serve(self, case: TestCase) -> tuple[str, str]:
        """Serve the JWKS over HTTPS on a free loopback port for the test's length; its
        URL and the CA file (the self-signed certificate) to trust."""
        cert_pem, key_pem = make_self_signed("localhost")
        directory = case.mktemp()
        os.makedirs(directory)
        ca = os.path.join(directory, "idp-ca.pem")
        with open(ca, "wb") as f:
            f.write(cert_pem)
        tls = PrivateCertificate.loadPEM(cert_pem + key_pem).options()
        root = Resource()
        well_known = Resource()
        root.putChild(b".well-known", well_known)
        well_known.putChild(b"jwks.json", self._resource)
        port = reactor.listenSSL(0, SilentSite(root), tls, interface="127.0.0.1")

        async def stop() -> None:
            for request in self._resource.hanging:
                if not request.finished and request.channel is not None:
                    request.channel.transport.abortConnection()  # type: ignore[union-attr]
            await port.stopListening()

        case.addCleanup(stop)
        return f"https://localhost:{port.getHost().port}/.well-known/jwks.json", ca
