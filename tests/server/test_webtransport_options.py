"""`--webtransport`: its option, its listener's one-line failure, its offer
(`GET /webtransport`) and the development certificate browsers take by hash."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from qh3.tls import load_pem_x509_certificates
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.python import usage
from twisted.trial.unittest import TestCase
from twisted.web.test.requesthelper import DummyRequest

from tests.support.ports import free_udp_range
from tests.support.servers import start_server
from vinom.server import ops
from vinom.server.certs import (
    RENEW_WEBTRANSPORT_BEFORE,
    WEBTRANSPORT_VALIDITY,
    RenewingCertificate,
    make_self_signed,
    make_short_lived,
)
from vinom.server.options import role_options
from vinom.server.startup import StartupError
from vinom.server.tap import Options
from vinom.server.webtransport import (
    WebTransportCredentials,
    WebTransportListener,
    WebTransportOffer,
)

DAY = 86400.0


def parse(*argv: str) -> usage.Options:
    """The options of the role `argv` runs (its subcommand's, else the whole server's)."""
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


class OptionTests(TestCase):
    def test_off_by_default_a_udp_port_when_given(self) -> None:
        key = self.mktemp()
        with open(key, "wb") as f:
            f.write(bytes(range(32)))
        os.chmod(key, 0o600)
        self.assertIsNone(parse()["webtransport"])
        self.assertEqual(parse("--webtransport", "7381")["webtransport"], 7381)
        for argv, why in (
            (("--webtransport", "0"), "--webtransport must be a port from 1 to 65535, not 0"),
            (("--webtransport", "70000"), "--webtransport must be a port from 1 to 65535"),
            (("--webtransport", "udp"), "--webtransport must be a whole number, not 'udp'"),
            (("--webtransport", "7381", "--websocket", "none"), "--webtransport needs --websocket"),
            (("--webtransport", "7401", "--udp-ports", "7400-7401"),
             "--webtransport 7401 is inside --udp-ports 7400-7401, whose ports the game hosts "
             "give to matches: choose a port outside the range"),
        ):
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertIn(why, str(e))

    def test_a_port_in_use_is_one_line(self) -> None:
        port = free_udp_range(1)
        taken = reactor.listenUDP(port, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        listener = WebTransportListener(None, port, reactor, interface="127.0.0.1")  # type: ignore[arg-type]
        with self.assertRaises(StartupError) as raised:
            listener.startService()
        self.assertEqual(
            str(raised.exception),
            f"vinom: cannot listen on udp 127.0.0.1:{port} for --webtransport: address "
            "already in use; choose another with --webtransport",
        )


class InterfaceTests(TestCase):
    async def test_the_listener_is_on_the_game_ports_interface(self) -> None:
        # --udp-interface 127.0.0.1 (start_server's): the game ports, and WebTransport's.
        server = await start_server(self, "--websocket", "tcp:0:interface=127.0.0.1",
                                    "--webtransport", str(free_udp_range(1)), ports=2)  # fmt: skip
        listening = server.service("webtransport").listening
        self.assertEqual(listening.getHost().host, "127.0.0.1")


class DevelopmentCertificateTests(TestCase):
    def test_an_ecdsa_leaf_valid_for_at_most_14_days(self) -> None:
        now = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)
        made = make_short_lived("localhost", now=now)
        cert = made.certificate
        self.assertLessEqual(cert.not_valid_after_utc - cert.not_valid_before_utc,
                             datetime.timedelta(days=14))  # fmt: skip
        self.assertEqual(WEBTRANSPORT_VALIDITY, datetime.timedelta(days=13))
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        self.assertEqual(key.curve.name, "secp256r1")
        digest = hashes.Hash(hashes.SHA256())
        digest.update(cert.public_bytes(serialization.Encoding.DER))
        self.assertEqual(made.sha256, digest.finalize())

    def test_renewed_before_it_lapses(self) -> None:
        clock = [1_790_000_000.0]
        renewing = RenewingCertificate(lambda: clock[0])
        first = renewing.current()
        clock[0] += 9 * DAY  # 4 days left: kept
        self.assertIs(renewing.current(), first)
        clock[0] += 1.01 * DAY  # under 3 days left: a new one
        second = renewing.current()
        self.assertIsNot(second, first)
        self.assertNotEqual(second.sha256, first.sha256)
        now = datetime.datetime.fromtimestamp(clock[0], datetime.UTC)
        self.assertGreater(second.not_after - now, RENEW_WEBTRANSPORT_BEFORE)
        self.assertEqual(renewing.made, 2)


class OfferTests(TestCase):
    def render(self, offer: WebTransportOffer) -> tuple[DummyRequest, dict[str, object]]:
        request = DummyRequest([b""])
        body = offer.render_GET(request)
        return request, json.loads(body)

    def test_the_port_and_the_certificate_hash(self) -> None:
        renewing = RenewingCertificate(lambda: 1_790_000_000.0)
        credentials = WebTransportCredentials(None, None, renewing)
        request, body = self.render(WebTransportOffer(lambda: 7381, credentials))
        self.assertEqual(body, {
            "port": 7381,
            "certificate_hashes": [base64.b64encode(renewing.current().sha256).decode()],
        })  # fmt: skip
        self.assertEqual(request.responseHeaders.getRawHeaders(b"access-control-allow-origin"),
                         [b"*"])  # fmt: skip
        self.assertEqual(request.responseHeaders.getRawHeaders(b"cache-control"), [b"no-store"])

    def test_none_offered(self) -> None:
        _request, body = self.render(WebTransportOffer())
        self.assertEqual(body, {"port": None, "certificate_hashes": []})

    def test_with_the_operators_certificate_no_hash_is_offered(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        # Saved as an editor may: without the final newline. qh3's own reader refuses
        # about one such certificate in four (its base64 then lacks padding): this one.
        for _ in range(200):
            cert_pem, key_pem = make_self_signed("games.example")
            try:
                load_pem_x509_certificates(cert_pem.rstrip(b"\n"))
            except ValueError:
                break
        else:
            self.fail("no certificate qh3 alone refuses without its final newline")
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        with open(cert, "wb") as f:
            f.write(cert_pem.rstrip(b"\n"))
        with open(key, "wb") as f:
            f.write(key_pem.rstrip(b"\n"))
        renewing = RenewingCertificate(lambda: 1_790_000_000.0)
        credentials = WebTransportCredentials(cert, key, renewing)
        presented, chain, _key = credentials()
        # qh3's certificate object, whose bytes are the operator's certificate in DER.
        der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        self.assertEqual(presented.public_bytes(), der)
        self.assertEqual(chain, [])
        _request, body = self.render(WebTransportOffer(lambda: 7381, credentials))
        self.assertEqual(body, {"port": 7381, "certificate_hashes": []})
        self.assertEqual(renewing.made, 0)  # no development certificate was made


class DocumentedTests(TestCase):
    def test_every_webtransport_family_is_in_the_operations_guide(self) -> None:
        families = set(re.findall(r'"(vinom_webtransport_\w+)"', Path(ops.__file__).read_text()))
        self.assertIn("vinom_webtransport_connections_closed", families)
        self.assertIn("vinom_webtransport_retries", families)
        guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
        for name in sorted(families):
            self.assertIn(f"| `{name}", guide)
