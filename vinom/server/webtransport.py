"""`--webtransport PORT`: the WebTransport listener of a process that serves `/game`.

Three parts, wired by vinom.server.roles.build_web:

- `WebTransportCredentials`: the certificate each new QUIC connection presents.
  With `--certificate` it is the operator's (browsers check it as any site's);
  without, a development certificate (vinom.server.certs.RenewingCertificate:
  ECDSA P-256, 13 days, renewed 3 days before it lapses) that browsers accept
  by its SHA-256, which `hashes()` gives.
- `WebTransportOffer`: `GET /webtransport` on the web server, JSON saying where
  the session is (`port`, null where there is none) and the certificate hashes
  the page passes as `serverCertificateHashes` (empty with an operator's
  certificate). The web
  client fetches it from the game's web server (match_found's `game_url`)
  before it opens a session; it is public, so any origin may read it.
- `WebTransportListener`: a service that listens on the UDP port while it runs;
  a port it cannot listen on ends the start in one line naming the option.

qh3 (vinom's webtransport extra) is imported only by the credentials and the
listener, which exist only with `--webtransport` (whose check says to install
the extra where it is missing): the offer, which every web server has, needs none.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import Request

from vinom.server.certs import RenewingCertificate, as_pem
from vinom.server.startup import StartupError

if TYPE_CHECKING:
    from vinom.hosting.webtransport import Credentials, WebTransportServer


class WebTransportCredentials:
    """The operator's certificate (PEM files), or the renewing development one."""

    def __init__(self, certificate: str | None, private_key: str | None,
                 development: RenewingCertificate) -> None:  # fmt: skip
        self._development = development
        self._fixed: Credentials | None = None
        if certificate is not None and private_key is not None:
            # Read by cryptography, as the TLS listeners' are (its errors are theirs),
            # then given to qh3 in the one PEM form it reads.
            with open(certificate, "rb") as cert_file, open(private_key, "rb") as key_file:
                chain = x509.load_pem_x509_certificates(cert_file.read())
                key = serialization.load_pem_private_key(key_file.read(), password=None)
            self._fixed = _for_qh3(chain, key)
        # The development certificate as qh3 takes it, and the SHA-256 it was made from.
        self._loaded: tuple[bytes, Credentials] | None = None

    def __call__(self) -> Credentials:
        if self._fixed is not None:
            return self._fixed
        current = self._development.current()
        if self._loaded is None or self._loaded[0] != current.sha256:
            self._loaded = (current.sha256, _for_qh3([current.certificate], current.private_key))
        return self._loaded[1]

    def hashes(self) -> list[bytes]:
        """The SHA-256 of the certificate browsers should accept without a CA (none for
        the operator's certificate)."""
        if self._fixed is not None:
            return []
        return [self._development.current().sha256]


def _for_qh3(chain: list[x509.Certificate], key: Any) -> Credentials:
    """cryptography's certificate chain and key as qh3 takes them."""
    from vinom.hosting.webtransport import load_credentials

    return load_credentials(*as_pem(chain, key))


class WebTransportOffer(Resource):
    """`GET /webtransport`: `{"port": N, "certificate_hashes": ["<base64 SHA-256>", ...]}`;
    `{"port": null, "certificate_hashes": []}` where none is offered (no
    `--webtransport`, or not listening): a page asks every game server, and an
    answer of 404 would be an error in its console."""

    isLeaf = True

    def __init__(self, port: Callable[[], int | None] = lambda: None,
                 credentials: WebTransportCredentials | None = None) -> None:  # fmt: skip
        super().__init__()
        self._port = port
        self._credentials = credentials

    def render_GET(self, request: Request) -> bytes:
        port = self._port()
        credentials = self._credentials
        hashes = [] if port is None or credentials is None else credentials.hashes()
        body = {
            "port": port,
            "certificate_hashes": [base64.b64encode(h).decode("ascii") for h in hashes],
        }
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        # The page may come from another web server (the lobby's) than the game's.
        request.setHeader(b"access-control-allow-origin", b"*")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return json.dumps(body).encode()


class WebTransportListener(service.Service):
    """Listens on UDP `port` with `server` while running (`--webtransport`).

    It stops last (`stops_last`, vinom.server.logs.ServerRoot), once the game
    hosts have stopped: the final messages of the matches they end reach the
    browsers on this port, as they reach the WebSockets, whose connections
    outlive their listener. Then it closes every connection, so that each
    browser knows at once, and the port.
    """

    stops_last = True

    def __init__(self, server: WebTransportServer, port: int, reactor: Any,
                 interface: str = "") -> None:  # fmt: skip
        self.server = server
        self.port_number = port
        self._reactor = reactor
        self._interface = interface
        self._listening: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def _listen(self) -> None:
        if self._listening is not None:
            return
        from vinom.hosting.webtransport import listen_webtransport

        try:
            self._listening = listen_webtransport(self._reactor, self.port_number, self.server,
                                                  self._interface)  # fmt: skip
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
            raise StartupError(
                f"cannot listen on udp {e.interface or '*'}:{e.port} for --webtransport: "
                f"{reason.lower()}; choose another with --webtransport"
            ) from None

    def stopService(self) -> Any:
        super().stopService()
        listening, self._listening = self._listening, None
        if listening is None:
            return None
        self.server.close_all()
        return listening.stopListening()

    @property
    def listening(self) -> IListeningPort | None:
        """The UDP port while it listens."""
        return self._listening

    def listening_port(self) -> int | None:
        """The UDP port it listens on (the one asked for, or the OS's pick for 0)."""
        if self._listening is None:
            return None
        return int(self._listening.getHost().port)  # type: ignore[attr-defined]
