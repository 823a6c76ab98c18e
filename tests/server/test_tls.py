"""The lobby's TLS as a client sees it: a returning client resumes its session
(TLS 1.3 session tickets, vinom.server.tls), the dev certificate is ECDSA P-256,
and the client library offers its last session to the same lobby."""

# slow: starts child processes

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.server.test_startup import Twistd
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from vinom.client.lobby import connect_lobby
from vinom.server.certs import make_self_signed


def lobby_visit(port: int, context: ssl.SSLContext, session: ssl.SSLSession | None) -> dict:
    """One player's visit to the lobby with the standard library's TLS: hello, the
    welcome, close. What the client saw of the TLS session."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(b'{"type":"hello","name":"Ann","id":1}\n')
        line = b""
        while not line.endswith(b"\n"):
            chunk = tls.recv(4096)
            if not chunk:
                break
            line += chunk
        certificate = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        return {
            "reply": json.loads(line.split(b"\n")[0]),
            "reused": tls.session_reused,
            "session": tls.session,
            "version": tls.version(),
            "key": certificate.public_key(),
        }


class LobbyResumptionTests(TestCase):
    """A real `twistd vinom` lobby and a real TLS client (Python's ssl module)."""

    timeout = 60

    async def test_a_returning_client_resumes_its_session(self) -> None:
        twistd = Twistd(self)
        await twistd.wait_for(b"vinom: terminal clients:")
        match = re.search(rb"--lobby 127\.0\.0\.1:(\d+) --trust (\S+)", twistd.output)
        assert match is not None, twistd.output.decode()
        port, trust = int(match.group(1)), match.group(2).decode()
        context = ssl.create_default_context(cafile=trust)

        first = await deferToThread(lobby_visit, port, context, None)
        again = await deferToThread(lobby_visit, port, context, first["session"])

        for visit in (first, again):
            self.assertEqual(visit["reply"]["type"], "welcome")
            self.assertEqual(visit["version"], "TLSv1.3")
        self.assertFalse(first["reused"])
        self.assertTrue(again["reused"])
        # The dev certificate: ECDSA on P-256, cheaper to sign with than RSA.
        key = first["key"]
        assert isinstance(key, ec.EllipticCurvePublicKey)
        self.assertIsInstance(key.curve, ec.SECP256R1)


def alpn_visit(port: int, trust: str, offered: list[str], send: bytes) -> tuple[str | None, bytes]:
    """A client offering `offered` over ALPN, as browsers and curl do: the protocol the
    server chose (None: none), and the first bytes it answers `send` with."""
    context = ssl.create_default_context(cafile=trust)
    context.set_alpn_protocols(offered)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(send)
        return tls.selected_alpn_protocol(), tls.recv(4096)


def s_client(port: int, trust: str, alpn: str) -> str:
    """`openssl s_client -alpn ALPN`'s output for one connection that sends nothing."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is not on the PATH"
    done = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-CAfile", trust, "-alpn", alpn],
        input=b"", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return (done.stdout + done.stderr).decode(errors="replace")


class ALPNTests(TestCase):
    """Clients that offer ALPN (browsers, curl, HTTP libraries) on a real `twistd vinom`
    lobby: the line-JSON port goes on with no protocol chosen, the WebSocket port
    chooses http/1.1; neither refuses the handshake."""

    timeout = 60

    async def test_clients_offering_alpn_are_served(self) -> None:
        web = free_tcp_port()
        twistd = Twistd(self, "--websocket", f"ssl:{web}:interface=127.0.0.1")
        await twistd.wait_for(b"vinom: terminal clients:")
        match = re.search(rb"--lobby 127\.0\.0\.1:(\d+) --trust (\S+)", twistd.output)
        assert match is not None, twistd.output.decode()
        port, trust = int(match.group(1)), match.group(2).decode()

        chosen, reply = await deferToThread(
            alpn_visit, port, trust, ["h2", "http/1.1"], b'{"type":"hello","name":"Ann","id":1}\n'
        )
        self.assertIsNone(chosen)
        self.assertEqual(json.loads(reply.split(b"\n")[0])["type"], "welcome")

        chosen, reply = await deferToThread(
            alpn_visit, web, trust, ["h2", "http/1.1"], b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        self.assertEqual(chosen, "http/1.1")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)

        for listener, expected in ((port, "No ALPN negotiated"), (web, "ALPN protocol: http/1.1")):
            said = await deferToThread(s_client, listener, trust, "http/1.1")
            self.assertNotIn("alert", said)
            self.assertIn("Verify return code: 0 (ok)", said)
            self.assertIn(expected, said)


class TicketServer:
    """A TLS 1.3 server of Python's ssl module on a thread: it greets each
    connection with one line and notes whether the client resumed its session."""

    def __init__(self, directory: str) -> None:
        cert_pem, key_pem = make_self_signed("localhost")
        os.makedirs(directory)
        self.cert = os.path.join(directory, "cert.pem")
        key = os.path.join(directory, "key.pem")
        with open(self.cert, "wb") as f:
            f.write(cert_pem)
        with open(key, "wb") as f:
            f.write(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reused: list[bool] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            with raw, self.context.wrap_socket(raw, server_side=True) as tls:
                self.reused.append(tls.session_reused)
                tls.sendall(b'{"type":"ping"}\n')
                while tls.recv(4096):
                    pass

    def close(self) -> None:
        self.listener.close()


class ClientLibraryResumptionTests(TestCase):
    """`connect_lobby` offers the TLS session of its last connection to the same lobby."""

    timeout = 30

    async def test_a_second_connection_resumes(self) -> None:
        server = TicketServer(self.mktemp())
        self.addCleanup(server.close)
        for _ in range(2):
            lobby = await connect_lobby(reactor, "127.0.0.1", server.port, trust=server.cert)
            # The server's greeting comes after its session tickets.
            await until(lambda lobby=lobby: lobby.protocol.frames_received > 0,
                        "the server's greeting")
            await lobby.close()
        await until(lambda: len(server.reused) == 2, "both handshakes told")
        self.assertEqual(server.reused, [False, True])
