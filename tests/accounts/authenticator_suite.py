"""The suite every `IAuthenticator` passes: a mixin for a `TestCase` of each one.

A test case mixes `AuthenticatorSuite` in and says how to make its authenticator,
credentials it takes and the identity they prove; a studio's own authenticator
plugin runs the same suite. What every one must do: valid credentials prove
their identity; credentials that are wrong in any way fail with `AuthFailed`
and a reason word (never with another exception, never raised at the call);
and it provides `IAuthenticator` with its `name` as the `kind` it takes.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from vinom.accounts.interfaces import AuthFailed, IAuthenticator, Identity

REASON_CHARACTERS = frozenset(string.ascii_lowercase + "_")


def outcome(d: Deferred[Identity]) -> Identity | AuthFailed | Failure:
    """What a Deferred that has fired holds (the suite's authenticators answer at once,
    or are driven until they do)."""
    results: list[Any] = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError("the authenticator has not answered")
    result = results[0]
    if isinstance(result, Failure) and result.check(AuthFailed):
        return result.value  # type: ignore[return-value]
    return result  # type: ignore[no-any-return]


class AuthenticatorSuite:
    """Mixed into a `TestCase`; the case provides the methods below."""

    def make_authenticator(self) -> IAuthenticator:
        raise NotImplementedError

    def valid_credentials(self) -> tuple[Mapping[str, Any], Identity | None]:
        """Credentials it takes, and the identity they prove (None: any identity of
        this provider, a guest's fresh one)."""
        raise NotImplementedError

    def malformed_credentials(self) -> list[Mapping[str, Any]]:
        """Credentials of its kind that are wrong (beyond the suite's own)."""
        return []

    def answer(self, d: Deferred[Identity]) -> Identity | AuthFailed | Failure:
        """Drive the authenticator until `d` fires (a Clock, a fake fetch)."""
        return outcome(d)

    def test_provides_the_interface(self: Any) -> None:
        authenticator = self.make_authenticator()
        self.assertTrue(verifyObject(IAuthenticator, authenticator))
        self.assertRegex(authenticator.name, r"^[a-z][a-z0-9_-]{0,31}$")

    def test_valid_credentials_prove_an_identity(self: Any) -> None:
        authenticator = self.make_authenticator()
        credentials, expected = self.valid_credentials()
        self.assertEqual(credentials["kind"], authenticator.name)
        identity = self.answer(authenticator.authenticate(credentials, "203.0.113.9"))
        self.assertIsInstance(identity, Identity, identity)
        if expected is not None:
            self.assertEqual((identity.provider, identity.subject),
                             (expected.provider, expected.subject))  # fmt: skip
        self.assertTrue(identity.subject)

    def test_malformed_credentials_fail_with_a_reason(self: Any) -> None:
        authenticator = self.make_authenticator()
        kind = authenticator.name
        other = "not-" + kind
        cases: list[Mapping[str, Any]] = [
            {},
            {"kind": other},
            {"kind": None},
            {"kind": 7},
            *self.malformed_credentials(),
        ]
        for credentials in cases:
            failed = self.answer(authenticator.authenticate(credentials, "203.0.113.9"))
            self.assertIsInstance(failed, AuthFailed, (credentials, failed))
            self.assertTrue(failed.reason, credentials)
            self.assertTrue(set(failed.reason) <= REASON_CHARACTERS, failed.reason)

    def test_never_raises_anything_else(self: Any) -> None:
        authenticator = self.make_authenticator()
        kind = authenticator.name
        rng = random.Random(50)
        values: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * 5000, "a.b.c", "..",
                             "e30.e30.", "\u00e9\u20ac", "eyJhbGciOiJub25lIn0.e30.", [], {}]
        for _ in range(200):
            credentials: dict[str, Any] = {"kind": kind}
            for key in rng.sample(["token", "id", "secret", "ticket", "kind", "x"], 3):
                credentials[key] = rng.choice(values)
            if rng.random() < 0.7:
                credentials["kind"] = kind
            # Never raised at the call: a Deferred, fired with an identity or AuthFailed.
            result = self.answer(authenticator.authenticate(credentials, "203.0.113.9"))
            self.assertIsInstance(result, Identity | AuthFailed, (credentials, result))
