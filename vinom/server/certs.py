"""The self-signed development certificate the lobby uses when none is configured.

On first start the server makes an ECDSA P-256 certificate for `localhost`
(and 127.0.0.1 / ::1) in its data directory and reuses it afterwards, so a
client can trust it once (`--trust data/dev-cert.pem`). ECDSA rather than RSA
because signing is what a TLS server does per handshake, and P-256 signs an
order of magnitude faster than RSA-2048.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "dev-cert.pem"
KEY_FILE = "dev-key.pem"
# Renew a dev certificate this long before it expires, so a running server never
# starts with one that lapses mid-session.
RENEW_BEFORE = datetime.timedelta(days=7)
VALIDITY = datetime.timedelta(days=365)


@frozen
class CertificatePaths:
    """Where a certificate and its private key live, and whether we just made them."""

    certificate: Path
    private_key: Path
    created: bool


def ensure_dev_certificate(
    data_dir: str | os.PathLike[str], *, now: datetime.datetime | None = None
) -> CertificatePaths:
    """Return the dev certificate in `data_dir`, creating (or renewing) it if needed."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / CERT_FILE
    key_path = directory / KEY_FILE
    moment = now or datetime.datetime.now(datetime.UTC)
    if cert_path.exists() and key_path.exists() and _still_valid(cert_path, moment):
        return CertificatePaths(cert_path, key_path, created=False)
    cert_pem, key_pem = make_self_signed("localhost", now=moment)
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert_pem)
    return CertificatePaths(cert_path, key_path, created=True)


def make_self_signed(
    hostname: str, *, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """A self-signed certificate for `hostname` (plus loopback IPs), and its key, as PEM."""
    moment = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(hostname, key, moment - datetime.timedelta(minutes=5), moment + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return as_pem([cert], key)


def as_pem(chain: Sequence[x509.Certificate], key: Any) -> tuple[bytes, bytes]:
    """A certificate chain (the leaf first) and its private key as PEM: the chain's
    certificates one after another, the key as unencrypted PKCS #8."""
    chain_pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain_pem, key_pem


def _builder(
    hostname: str, key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime, not_after: datetime.datetime,
) -> x509.CertificateBuilder:  # fmt: skip
    """A self-signed certificate for `hostname` and the loopback addresses, to sign."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(hostname),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    )


def _still_valid(cert_path: Path, moment: datetime.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > moment


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start: the key must never be world-readable, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def dev_certificate_in(data_dir: str) -> CertificatePaths:
    """`ensure_dev_certificate`, a directory that cannot be used ending the start in one
    line (vinom.server.startup.StartupError) naming --data-dir."""
    from vinom.server.startup import StartupError

    try:
        return ensure_dev_certificate(data_dir)
    except OSError as e:
        raise StartupError(
            f"--data-dir {data_dir!r} is not usable ({e.strerror or e}); "
            "name a directory this user may write with --data-dir"
        ) from None


# The certificate of the WebTransport listener when no operator certificate is
# configured (docs/web.md, "WebTransport"). Browsers accept a certificate no CA
# signed by its SHA-256 (`serverCertificateHashes`) only if it is valid for at
# most 14 days and its key is ECDSA: made here for 13 days, in memory only, and
# replaced once fewer than RENEW_WEBTRANSPORT_BEFORE remain.
WEBTRANSPORT_VALIDITY = datetime.timedelta(days=13)
RENEW_WEBTRANSPORT_BEFORE = datetime.timedelta(days=3)


@frozen
class ShortLivedCertificate:
    """A WebTransport development certificate: the certificate and key (cryptography's
    objects, given to qh3 as PEM), its DER encoding's SHA-256, and when it lapses."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    sha256: bytes
    not_after: datetime.datetime


def make_short_lived(
    hostname: str, *, now: datetime.datetime | None = None,
    validity: datetime.timedelta = WEBTRANSPORT_VALIDITY,
) -> ShortLivedCertificate:  # fmt: skip
    """A leaf ECDSA P-256 certificate for `hostname` and loopback, valid from `now`
    for `validity` (at most 14 days for browsers to take it by hash)."""
    moment = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = moment + validity
    # Browsers count the validity from not_before: no backdating past the limit.
    cert = _builder(
        hostname, key, moment - datetime.timedelta(minutes=1),
        not_after - datetime.timedelta(minutes=1),
    ).sign(key, hashes.SHA256())  # fmt: skip
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return ShortLivedCertificate(cert, key, digest.finalize(), cert.not_valid_after_utc)


class RenewingCertificate:
    """The current WebTransport development certificate, made on first use and replaced
    by a new one when fewer than `renew_before` of its validity remain (read at each
    new connection and each offer, so a server running for weeks never serves a
    lapsed one). `wall_clock` gives unix time."""

    def __init__(
        self, wall_clock: Callable[[], float], hostname: str = "localhost",
        renew_before: datetime.timedelta = RENEW_WEBTRANSPORT_BEFORE,
    ) -> None:  # fmt: skip
        self._wall_clock = wall_clock
        self._hostname = hostname
        self._renew_before = renew_before
        self._current: ShortLivedCertificate | None = None
        # How many certificates were made (the first included).
        self.made = 0

    def current(self) -> ShortLivedCertificate:
        now = datetime.datetime.fromtimestamp(self._wall_clock(), datetime.UTC)
        current = self._current
        if current is None or current.not_after - self._renew_before <= now:
            current = self._current = make_short_lived(self._hostname, now=now)
            self.made += 1
        return current
