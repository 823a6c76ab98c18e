"""The signed-in bench clients' credentials (benchmarks.auth): made before the load's
window, and accepted by the server's own authenticators."""

from __future__ import annotations

import os
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from benchmarks.auth import AUDIENCE, ISSUER, credentials, prepare
from vinom.accounts.oidc import make_jwt
from vinom.accounts.plugins import AuthSettings
from vinom.accounts.signed import make_signed


class CredentialsTests(TestCase):
    def setUp(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())

    def options(self, kind: str) -> tuple[dict[str, str], dict[str, object]]:
        args, settings = prepare(kind, self.data_dir)
        return dict(zip(args[::2], args[1::2], strict=True)), settings

    async def test_jwt_tokens_are_made_before_the_window_and_verify(self) -> None:
        options, settings = self.options("jwt")
        auth = credentials(settings, 3)
        # Made once, up front: the load's window signs nothing.
        self.assertIs(auth(2), auth(2))
        self.assertNotEqual(auth(0), auth(1))
        clock = Clock()
        clock.advance(time.time())
        server = make_jwt(AuthSettings(key_file=options["--auth-key-file"], issuer=ISSUER,
                                       audience=AUDIENCE), clock, None)  # fmt: skip
        first = await server.authenticate(auth(0), "127.0.0.1")
        self.assertNotEqual(first, await server.authenticate(auth(1), "127.0.0.1"))
        # A player past those made is made on demand.
        self.assertEqual((await server.authenticate(auth(7), "127.0.0.1")).provider, "jwt")

    async def test_signed_tokens_are_made_before_the_window_and_verify(self) -> None:
        options, settings = self.options("signed")
        auth = credentials(settings, 2)
        self.assertIs(auth(1), auth(1))
        clock = Clock()
        clock.advance(time.time())
        server = make_signed(AuthSettings(secret_file=options["--auth-secret-file"]), clock, None)
        self.assertEqual((await server.authenticate(auth(1), "127.0.0.1")).provider, "signed")
