"""The built-in authenticators (guest, signed, jwt) against the shared suite, and the
JWT checks one by one: each refusal with its exact reason, keys pinned to their
algorithms, the JWKS cache refreshed on an unknown kid at most once per interval."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jwt
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.accounts.authenticator_suite import AuthenticatorSuite, outcome
from tests.support.identity_provider import AUDIENCE, ISSUER, IdentityProvider, public_pem
from vinom.accounts.guest import GuestAuthenticator
from vinom.accounts.interfaces import AuthFailed, Identity
from vinom.accounts.oidc import (
    JwksKeys,
    JwtAuthenticator,
    StaticKeys,
    keys_from_file,
    keys_from_jwks,
)
from vinom.accounts.plugins import AuthSettings, authenticator_plugins
from vinom.accounts.signed import SignedTokenAuthenticator, check_signed
from vinom.accounts.tokens import LEEWAY

SECRET = b"0123456789abcdef" * 4


def now_clock() -> Clock:
    clock = Clock()
    clock.advance(time.time())
    return clock


class GuestSuite(AuthenticatorSuite, TestCase):
    def make_authenticator(self) -> GuestAuthenticator:
        return GuestAuthenticator()

    def valid_credentials(self) -> tuple[Mapping[str, Any], Identity | None]:
        return {"kind": "guest"}, None

    def test_every_guest_is_someone_new(self) -> None:
        guest = GuestAuthenticator()
        first, second = (outcome(guest.authenticate({"kind": "guest"}, "p")) for _ in "ab")
        assert isinstance(first, Identity) and isinstance(second, Identity)
        self.assertNotEqual(first.subject, second.subject)


class SignedSuite(AuthenticatorSuite, TestCase):
    def make_authenticator(self) -> SignedTokenAuthenticator:
        self.clock = now_clock()
        return SignedTokenAuthenticator(SECRET, self.clock)

    def token(self, **claims: Any) -> str:
        body = {"sub": "player-7", "aud": "vinom", "exp": int(self.clock.seconds()) + 300}
        body.update(claims)
        return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, "HS256")

    def valid_credentials(self) -> tuple[Mapping[str, Any], Identity | None]:
        return {"kind": "signed", "token": self.token()}, Identity("signed", "player-7")

    def malformed_credentials(self) -> list[Mapping[str, Any]]:
        return [{"kind": "signed"}, {"kind": "signed", "token": 5},
                {"kind": "signed", "token": "not a token"}]  # fmt: skip

    def reason(self, token: str) -> str:
        failed = outcome(self.make_authenticator().authenticate({"kind": "signed",
                                                                 "token": token}, "p"))  # fmt: skip
        assert isinstance(failed, AuthFailed), failed
        return failed.reason

    def test_each_refusal_has_its_reason(self) -> None:
        self.make_authenticator()
        now = int(self.clock.seconds())
        self.assertEqual(self.reason(self.token(exp=now - 60)), "expired")
        self.assertEqual(self.reason(self.token(aud="another-game")), "wrong_audience")
        self.assertEqual(self.reason(self.token(exp=now + 86400)), "too_long_lived")
        self.assertEqual(self.reason(self.token(sub=None)), "missing_claim")
        self.assertEqual(self.reason(self.token(exp=None)), "missing_claim")
        forged = jwt.encode({"sub": "x", "aud": "vinom", "exp": now + 60}, b"w" * 40, "HS256")
        self.assertEqual(self.reason(forged), "bad_signature")
        # Another algorithm than HS256, even one PyJWT would verify: refused.
        hs512 = jwt.encode({"sub": "x", "aud": "vinom", "exp": now + 60}, SECRET, "HS512")
        self.assertEqual(self.reason(hs512), "bad_algorithm")

    def test_a_short_shared_key_is_refused_at_start(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"short\n")
        error = self.assertRaises(ValueError, check_signed, AuthSettings(secret_file=path))
        self.assertIn("at least 32 bytes", str(error))
        self.assertRaises(ValueError, check_signed, AuthSettings())


class JwtChecks:
    """A provider with an RS256 key (k1), an ES256 one (k2) and an EdDSA one (k3)."""

    def setUp(self) -> None:
        self.idp = IdentityProvider()
        self.idp.add_key("k1", "RS256")
        self.idp.add_key("k2", "ES256")
        self.idp.add_key("k3", "EdDSA")
        self.clock = now_clock()

    def make_authenticator(self) -> JwtAuthenticator:
        keys = StaticKeys(keys_from_jwks(self.idp.jwks()))
        return JwtAuthenticator(keys, self.clock, issuer=ISSUER, audience=AUDIENCE)

    def valid_credentials(self) -> tuple[Mapping[str, Any], Identity | None]:
        return {"kind": "jwt", "token": self.idp.token("ann")}, Identity("jwt", "ann")

    def malformed_credentials(self) -> list[Mapping[str, Any]]:
        return [
            {"kind": "jwt"},
            {"kind": "jwt", "token": ["x"]},
            {"kind": "jwt", "token": "a.b.c"},
            {"kind": "jwt", "token": "x" * 4000},
        ]


class JwtStaticKeysSuite(JwtChecks, AuthenticatorSuite, TestCase):
    def reason(self, token: str) -> str:
        failed = outcome(self.make_authenticator().authenticate({"kind": "jwt",
                                                                 "token": token}, "p"))  # fmt: skip
        assert isinstance(failed, AuthFailed), failed
        return failed.reason

    def test_each_algorithm_verifies_with_its_key(self) -> None:
        authenticator = self.make_authenticator()
        for kid in ("k1", "k2", "k3"):
            token = self.idp.token(f"user-{kid}", kid, name="Ann")
            identity = outcome(authenticator.authenticate({"kind": "jwt", "token": token}, "p"))
            assert isinstance(identity, Identity), identity
            self.assertEqual((identity.subject, identity.display_name), (f"user-{kid}", "Ann"))

    def test_each_refusal_has_its_exact_reason(self) -> None:
        idp, now = self.idp, int(self.clock.seconds())
        self.assertEqual(self.reason(idp.token("a", exp=now - 31)), "expired")
        self.assertEqual(self.reason(idp.token("a", nbf=now + 120)), "not_yet_valid")
        self.assertEqual(self.reason(idp.token("a", iat=now + 120)), "not_yet_valid")
        self.assertEqual(self.reason(idp.token("a", iss="https://evil.test/")), "wrong_issuer")
        self.assertEqual(self.reason(idp.token("a", aud="another-game")), "wrong_audience")
        self.assertEqual(self.reason(idp.token("a", sub=None)), "missing_claim")
        self.assertEqual(self.reason(idp.token("a", exp=None)), "missing_claim")
        # Signed by a key the provider never published, under a published kid.
        idp.add_key("stranger", "RS256", publish=False)
        forged = jwt.encode(idp.claims("a"), idp.keys["stranger"][0], algorithm="RS256",
                            headers={"kid": "k1"})  # fmt: skip
        self.assertEqual(self.reason(forged), "bad_signature")
        self.assertEqual(self.reason(idp.unsigned_token("a")), "bad_algorithm")
        self.assertEqual(self.reason(idp.hmac_with_public_key("a")), "bad_algorithm")
        # An ES256 token naming the RSA key: the key's algorithm is pinned.
        es = jwt.encode(idp.claims("a"), idp.keys["k2"][0], algorithm="ES256",
                        headers={"kid": "k1"})  # fmt: skip
        self.assertEqual(self.reason(es), "bad_algorithm")
        self.assertEqual(self.reason(idp.token("a", "k1", headers={"kid": "k9"})), "unknown_kid")

    def test_a_token_has_one_spelling(self) -> None:
        """The token is parsed once, strictly: padding a segment may have is taken, any
        other change to a segment's spelling is refused, and so are JWS extensions."""
        idp = self.idp
        header, payload, signature = idp.token("a").split(".")
        # A signature padded as some issuers pad it (the signed parts are as signed).
        padded = f"{header}.{payload}.{signature}" + "=" * (-len(signature) % 4)
        self.assertNotEqual(padded[-1], signature[-1])
        authenticator = self.make_authenticator()
        identity = outcome(authenticator.authenticate({"kind": "jwt", "token": padded}, "p"))
        assert isinstance(identity, Identity), identity
        self.assertEqual(identity.subject, "a")
        # The signature's last character with a stray low bit: the same bytes, another
        # spelling.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        stray = alphabet[alphabet.index(signature[-1]) ^ 1]
        for token in (f"{header}.{payload}.{signature[:-1]}{stray}",
                      f"{header}.{payload}.{signature}===",
                      f"{header}.{payload}.{signature}!",
                      f"{header}.{payload}.{signature}.x",
                      f"{header}é.{payload}.{signature}"):  # fmt: skip
            self.assertEqual(self.reason(token), "malformed", token[-12:])
        critical = jwt.encode(idp.claims("a"), idp.keys["k1"][0], algorithm="RS256",
                              headers={"kid": "k1", "crit": ["exp"]})  # fmt: skip
        self.assertEqual(self.reason(critical), "malformed")
        # An audience in a list is taken; one of the wrong type is not.
        listed = outcome(self.make_authenticator().authenticate(
            {"kind": "jwt", "token": idp.token("a", aud=["other", AUDIENCE])}, "p"))  # fmt: skip
        assert isinstance(listed, Identity), listed
        self.assertEqual(self.reason(idp.token("a", aud={"x": AUDIENCE})), "wrong_audience")
        self.assertEqual(self.reason(idp.token("a", sub=7)), "invalid")

    def test_the_leeway_forgives_a_little_clock_difference(self) -> None:
        now = int(self.clock.seconds())
        token = self.idp.token("a", exp=now - 20, nbf=now + 20)
        authenticator = self.make_authenticator()
        identity = outcome(authenticator.authenticate({"kind": "jwt", "token": token}, "p"))
        self.assertIsInstance(identity, Identity)
        # 30 s, as docs/lobby.md says; past it, expired.
        self.assertEqual(LEEWAY, 30.0)
        late = self.idp.token("a", exp=now - 31)
        self.assertEqual(self.reason(late), "expired")

    def test_a_key_file_holds_a_jwks_or_one_pem_key(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        pem = os.path.join(directory, "key.pem")
        with open(pem, "wb") as f:
            f.write(public_pem(self.idp.keys["k2"][0]))
        keys = keys_from_file(pem)
        authenticator = JwtAuthenticator(StaticKeys(keys), self.clock, issuer=ISSUER,
                                         audience=AUDIENCE)  # fmt: skip
        identity = outcome(authenticator.authenticate(
            {"kind": "jwt", "token": self.idp.token("b", "k2")}, "p"))  # fmt: skip
        self.assertIsInstance(identity, Identity)
        # The RSA key's token under the same file: refused, the key is ES256's.
        failed = outcome(authenticator.authenticate(
            {"kind": "jwt", "token": self.idp.token("b", "k1")}, "p"))  # fmt: skip
        assert isinstance(failed, AuthFailed)
        self.assertEqual(failed.reason, "bad_algorithm")
        hmac_only = os.path.join(directory, "oct.json")
        with open(hmac_only, "w") as f:
            json.dump({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, f)
        error = self.assertRaises(ValueError, keys_from_file, hmac_only)
        self.assertIn("holds no RS256", str(error))

    def test_the_plugins_are_found(self) -> None:
        plugins = authenticator_plugins()
        self.assertTrue({"guest", "jwt", "signed"} <= set(plugins))


class FakeJwks:
    """A JWKS endpoint as a fetch function: answers from the provider, or fails, or
    hangs until told; counts the fetches."""

    def __init__(self, idp: IdentityProvider) -> None:
        self.idp = idp
        self.fetches = 0
        self.down = False
        self.hanging: list[Deferred[bytes]] = []
        self.hang = False

    def __call__(self) -> Deferred[bytes]:
        self.fetches += 1
        if self.hang:
            d: Deferred[bytes] = Deferred()
            self.hanging.append(d)
            return d
        if self.down:
            return fail(ConnectionRefusedError("down"))
        return succeed(self.idp.jwks())


class JwtJwksSuite(JwtChecks, AuthenticatorSuite, TestCase):
    def make_authenticator(self) -> JwtAuthenticator:
        self.jwks = FakeJwks(self.idp)
        self.keys = JwksKeys(self.jwks, self.clock, refresh_interval=5.0)
        return JwtAuthenticator(self.keys, self.clock, issuer=ISSUER, audience=AUDIENCE)

    def sign_in(self, authenticator: JwtAuthenticator, token: str) -> Identity | AuthFailed:
        result = outcome(authenticator.authenticate({"kind": "jwt", "token": token}, "p"))
        assert isinstance(result, Identity | AuthFailed), result
        return result

    def test_keys_are_fetched_once_and_cached(self) -> None:
        authenticator = self.make_authenticator()
        for n in range(5):
            self.assertIsInstance(self.sign_in(authenticator, self.idp.token(f"u{n}")), Identity)
        self.assertEqual(self.jwks.fetches, 1)

    def test_a_rotated_key_is_fetched_by_its_kid(self) -> None:
        authenticator = self.make_authenticator()
        self.assertIsInstance(self.sign_in(authenticator, self.idp.token("a", "k1")), Identity)
        self.idp.rotate("k4", "ES256")
        self.clock.advance(5)
        self.assertIsInstance(self.sign_in(authenticator, self.idp.token("a", "k4")), Identity)
        self.assertEqual(self.jwks.fetches, 2)
        # The old key is gone from the provider: its tokens are refused now (its kid is
        # unknown, and no fetch is made within the interval).
        failed = self.sign_in(authenticator, self.idp.token("a", "k1"))
        self.assertEqual((failed.reason, self.jwks.fetches), ("unknown_kid", 2))

    def test_unknown_kids_fetch_at_most_once_per_interval(self) -> None:
        authenticator = self.make_authenticator()
        self.sign_in(authenticator, self.idp.token("a"))
        reasons = set()
        for n in range(100):
            token = self.idp.token("a", headers={"kid": f"made-up-{n}"})
            result = self.sign_in(authenticator, token)
            assert isinstance(result, AuthFailed)
            reasons.add(result.reason)
            self.clock.advance(0.1)  # 10 s in all
        self.assertEqual(reasons, {"unknown_kid"})
        # The first sign-in's fetch, then one for the made-up kids 5 s later; the
        # rest were answered from the cache, the provider not asked.
        self.assertEqual(self.jwks.fetches, 2)

    def test_a_provider_that_is_down_makes_sign_ins_unavailable_until_it_is_back(self) -> None:
        authenticator = self.make_authenticator()
        self.jwks.down = True
        self.assertEqual(self.sign_in(authenticator, self.idp.token("a")).reason, "unavailable")
        self.jwks.down = False
        self.assertEqual(self.sign_in(authenticator, self.idp.token("a")).reason, "unavailable")
        self.clock.advance(5)
        self.assertIsInstance(self.sign_in(authenticator, self.idp.token("a")), Identity)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_sign_ins_waiting_for_keys_share_one_fetch(self) -> None:
        authenticator = self.make_authenticator()
        self.jwks.hang = True
        waiting = [authenticator.authenticate({"kind": "jwt", "token": self.idp.token(f"u{n}")},
                                              "p") for n in range(20)]  # fmt: skip
        self.assertEqual(self.jwks.fetches, 1)
        self.assertFalse(any(d.called for d in waiting))
        self.jwks.hanging[0].callback(self.idp.jwks())
        self.assertEqual([type(outcome(d)) for d in waiting], [Identity] * 20)
