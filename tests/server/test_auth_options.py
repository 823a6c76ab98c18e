"""`twistd vinom --auth` and its options: each checked before anything listens, one line
for each mistake; the defaults as docs/operations.md gives them; the lobby given the
authenticator the options name."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import TestCase

from tests.support.identity_provider import AUDIENCE, ISSUER, IdentityProvider, public_pem
from vinom.accounts.oidc import JwtAuthenticator
from vinom.accounts.signed import SignedTokenAuthenticator
from vinom.lobby.config import LobbyConfig
from vinom.server.auth import auth_line, authenticator_of
from vinom.server.tap import Options


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class AuthOptionTests(TestCase):
    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        idp = IdentityProvider()
        idp.add_key("k1", "ES256")
        self.jwks = os.path.join(self.directory, "jwks.json")
        with open(self.jwks, "wb") as f:
            f.write(idp.jwks())
        self.pem = os.path.join(self.directory, "key.pem")
        with open(self.pem, "wb") as f:
            f.write(public_pem(idp.keys["k1"][0]))
        self.secret = os.path.join(self.directory, "shared.key")
        with open(self.secret, "w") as f:
            f.write("a" * 64 + "\n")
        self.token_key = os.path.join(self.directory, "token.key")
        with open(self.token_key, "wb") as f:
            f.write(os.urandom(32))

    def test_the_defaults_are_anonymous_guests_and_said_so(self) -> None:
        options = parse()
        self.assertEqual(options["auth"], "guest")
        config = LobbyConfig()
        self.assertEqual((options["auth-timeout"], config.auth_timeout), (5.0, 5.0))
        self.assertEqual((options["auth-failure-rate"], config.auth_failure_rate), (0.2, 0.2))
        self.assertEqual((options["auth-failure-burst"], config.auth_failure_burst), (10, 10))
        self.assertEqual(options["auth-refresh-interval"], 5.0)
        self.assertEqual(auth_line(options),
                         "players are anonymous: any name, a fresh player id each time "
                         "(--auth guest)")  # fmt: skip

    def test_each_mistake_is_one_line_naming_the_option(self) -> None:
        cases = [
            (("--auth", "steam"), "--auth must be one of device, guest, jwt, signed"),
            (("--auth-issuer", ISSUER), "--auth-issuer is for an authenticator"),
            (("--auth", "jwt", "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE),
             "--auth jwt needs the provider's keys"),
            (("--auth", "jwt", "--auth-key-file", self.pem), "needs --auth-issuer and"),
            (("--auth", "jwt", "--auth-key-file", self.pem, "--auth-jwks-url",
              "https://id.test/jwks", "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE),
             "one of them"),
            (("--auth", "jwt", "--auth-jwks-url", "ftp://id.test/jwks", "--auth-issuer", ISSUER,
              "--auth-audience", AUDIENCE), "must be an https://"),
            (("--auth", "jwt", "--auth-key-file", self.secret, "--auth-issuer", ISSUER,
              "--auth-audience", AUDIENCE), "neither a JWKS document nor a PEM public key"),
            (("--auth", "jwt", "--auth-key-file", "/nonexistent"), "no such file"),
            (("--auth", "signed"), "--auth signed needs --auth-secret-file"),
            (("--auth", "signed", "--auth-secret-file", self.pem + "x"), "no such file"),
            (("--limit", "auth-timeout=0"), "--limit auth-timeout must be a number greater than 0"),
            (("--limit", "auth-failure-burst=0"), "--limit auth-failure-burst must be at least 1"),
            (("--auth-option", "nokey"), "--auth-option must look like key=value"),
        ]  # fmt: skip
        for argv, said in cases:
            with self.subTest(argv=argv):
                error = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertIn(said, str(error))
                self.assertNotIn("\n", str(error))

    def test_the_lobby_gets_the_authenticator_the_options_name(self) -> None:
        jwt = parse("--auth", "jwt", "--auth-key-file", self.jwks, "--auth-issuer", ISSUER,
                    "--auth-audience", AUDIENCE, "--auth-option", "region=eu")  # fmt: skip
        self.assertIsInstance(authenticator_of(jwt, Clock(), None), JwtAuthenticator)
        self.assertEqual(jwt["auth-settings"].extra, {"region": "eu"})
        self.assertIn("JWT", auth_line(jwt))
        signed = parse("--auth", "signed", "--auth-secret-file", self.secret)
        self.assertIsInstance(authenticator_of(signed, Clock(), None), SignedTokenAuthenticator)
        # A PEM key file works as well as a JWKS one.
        parse("--auth", "jwt", "--auth-key-file", self.pem, "--auth-issuer", ISSUER,
              "--auth-audience", AUDIENCE)  # fmt: skip
