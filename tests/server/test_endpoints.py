"""Listener descriptions: the `vinom-ssl:` and `vinom-proxied:` parser plugins, as
`serverFromString` finds them, and the options' short forms (vinom.server.endpoints)."""

from __future__ import annotations

import os
import socket
import ssl
from ipaddress import ip_network

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.python.reflect import namedAny
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.tls import MemoryClient
from vinom.fleet.relay import Options as RelayOptions
from vinom.gateway.proxy import proxy_v2_header
from vinom.server.certs import make_self_signed
from vinom.server.endpoints import (
    DEFAULT_BACKLOG,
    description_of,
    endpoint_port,
    is_tls,
    listen_interface,
    listening_description,
)


def certificate_files(case: SynchronousTestCase, name: str = "cert.pem") -> tuple[str, str]:
    """A self-signed certificate for localhost and its key, as PEM files (cert, key)."""
    directory = case.mktemp()
    os.makedirs(directory)
    cert_pem, key_pem = make_self_signed("localhost")
    paths = os.path.join(directory, name), os.path.join(directory, "key.pem")
    for path, data in zip(paths, (cert_pem, key_pem), strict=True):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def escaped(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:")


class TLSParserTests(SynchronousTestCase):
    """`vinom-ssl:` takes the fields of Twisted's `ssl:`."""

    def test_its_fields_reach_the_listening_port(self) -> None:
        cert, key = certificate_files(self, "c:ert.pem")
        memory = MemoryReactor()
        endpoint = serverFromString(
            memory, f"vinom-ssl:7350:interface=127.0.0.1:backlog=7:privateKey={escaped(key)}"
            f":certKey={escaped(cert)}",
        )  # fmt: skip
        endpoint.listen(Factory.forProtocol(Protocol))
        [(port, factory, backlog, interface)] = memory.tcpServers
        self.assertEqual((port, backlog, interface), (7350, 7, "127.0.0.1"))
        client = MemoryClient(factory)
        client.handshake()
        served = client.tls.getpeercert(binary_form=True)
        with open(cert, "rb") as f:
            self.assertEqual(served, ssl.PEM_cert_to_DER_cert(f.read().decode()))
        # sslmethod=TLSv1_2_METHOD: TLS 1.2 only.
        memory = MemoryReactor()
        serverFromString(
            memory,
            f"vinom-ssl:7350:privateKey={escaped(key)}"
            f":certKey={escaped(cert)}:sslmethod=TLSv1_2_METHOD",
        ).listen(Factory.forProtocol(Protocol))
        client = MemoryClient(memory.tcpServers[0][1])
        client.handshake()
        self.assertEqual(client.tls.version(), "TLSv1.2")

    def test_each_plugin_names_the_parser_of_its_prefix(self) -> None:
        # The plugin file names its parsers (imported when a description is parsed).
        from twisted.plugins import vinom_endpoints

        for plugin in (vinom_endpoints.vinom_ssl, vinom_endpoints.vinom_proxied):
            self.assertEqual(plugin.prefix, namedAny(plugin.parser).prefix)

    def test_a_bad_field_is_one_line(self) -> None:
        cert, key = certificate_files(self)
        for description, why in (
            ("vinom-ssl:", "vinom-ssl needs a port"),
            ("vinom-ssl:http", "vinom-ssl needs a port"),
            ("vinom-ssl:7350:backlog=many", "backlog must be a number"),
            ("vinom-ssl:7350:sslmethod=TLS_BEST", "sslmethod 'TLS_BEST' is not one it serves"),
            ("vinom-ssl:7350:sslmethod=TLSv1_METHOD", "sslmethod 'TLSv1_METHOD' is not one"),
            ("vinom-ssl:7350:colour=red", "vinom-ssl has no field 'colour'"),
            ("vinom-ssl:7350:privateKey=/nonexistent.pem", "'/nonexistent.pem': no such file"),
            (f"vinom-ssl:7350:privateKey={key}:certKey={key}", "OpenSSL refuses"),
        ):
            with self.subTest(description=description):
                e = self.assertRaises(ValueError, serverFromString, MemoryReactor(), description)
                self.assertIn(why, str(e))
                self.assertNotIn("\n", str(e))
        self.assertTrue(os.path.exists(cert))


class Reporter(Protocol):
    """Says the peer it sees, on a line, and closes."""

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.transport.write(f"{peer.host}:{peer.port}\n".encode())  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


def visit(port: int, cert: str, header: bytes) -> str:
    """What a TLS client that sends `header` first is told (Reporter's line), or
    the error that ends its handshake."""
    context = ssl.create_default_context(cafile=cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(header)
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.makefile("rb").readline().decode().strip()
        except (ssl.SSLError, OSError) as e:
            return f"refused: {type(e).__name__}"


class ProxiedParserTests(TestCase):
    """`vinom-proxied:` over `vinom-ssl:` on real sockets: the PROXY header before TLS."""

    async def test_the_header_comes_before_tls(self) -> None:
        cert, key = certificate_files(self)
        description = (f"vinom-proxied:trusted=127.0.0.0/8:vinom-ssl:0:interface=127.0.0.1"
                       f":privateKey={escaped(key)}:certKey={escaped(cert)}")  # fmt: skip
        listening = await serverFromString(reactor, description).listen(
            Factory.forProtocol(Reporter)
        )  # fmt: skip
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        client = IPv4Address("TCP", "203.0.113.7", 40000)
        header = proxy_v2_header(client, IPv4Address("TCP", "127.0.0.1", port))
        self.assertEqual(await deferToThread(visit, port, cert, header), "203.0.113.7:40000")
        # From a trusted address, TLS without the header first is refused.
        self.assertTrue((await deferToThread(visit, port, cert, b"")).startswith("refused"))

    def test_its_own_fields(self) -> None:
        memory = MemoryReactor()
        for description, why in (
            ("vinom-proxied:tcp:7350", "needs trusted="),
            ("vinom-proxied:trusted=10.0.0.0/33:tcp:7350", "trusted"),
            ("vinom-proxied:trusted=10.0.0.1", "needs the description it wraps"),
        ):
            with self.subTest(description=description):
                e = self.assertRaises(ValueError, serverFromString, memory, description)
                self.assertIn(why, str(e))
        # The fields that are not its own are the wrapped description's.
        endpoint = serverFromString(memory, "vinom-proxied:trusted=10.0.0.1:tcp:7350:backlog=9")
        endpoint.listen(Factory())
        [(port, _factory, backlog, _interface)] = memory.tcpServers
        self.assertEqual((port, backlog), (7350, 9))
        # ... quoted as they were given.
        endpoint = serverFromString(memory, "vinom-proxied:trusted=10.0.0.1:unix:/run/a\\=b\\:c")
        endpoint.listen(Factory())
        self.assertEqual([server[0] for server in memory.unixServers], ["/run/a=b:c"])


class ShortFormTests(SynchronousTestCase):
    """The options' short forms, as docs/operations.md lists them."""

    def test_each_option_reads_its_short_forms(self) -> None:
        for option, value, description in (
            ("lobby", "7350", "vinom-ssl:7350"),
            ("lobby", "ssl:7350:interface=127.0.0.1", "vinom-ssl:7350:interface=127.0.0.1"),
            ("lobby", "tcp:7350", "tcp:7350"),
            ("websocket", " 7380 ", "vinom-ssl:7380"),
            ("websocket", "none", None),
            ("websocket", "unix:/run/vinom/web.sock", "unix:/run/vinom/web.sock"),
            ("gateway", "7300", "tcp:7300"),
            ("gateway", "tcp:7300:interface=10.0.0.2", "tcp:7300:interface=10.0.0.2"),
            ("ops-port", "7391", "tcp:7391:interface=127.0.0.1"),
            ("ops-port", "None", None),
            ("lobby", "vinom-proxied:trusted=10.0.0.5:ssl:7350",
             "vinom-proxied:trusted=10.0.0.5:ssl:7350"),
        ):  # fmt: skip
            with self.subTest(option=option, value=value):
                self.assertEqual(description_of(option, value), description)

    def test_a_bad_description_is_one_line_naming_the_option(self) -> None:
        for option, value, why in (
            ("lobby", "ssl:", "--lobby must be a port or a strports description, not 'ssl:'"),
            ("lobby", "nonsense:1", "Unknown endpoint type: 'nonsense'"),
            ("lobby", " ", "--lobby must be a port or a strports description"),
            ("lobby", "none", "--lobby must be a port or a strports description"),
            ("gateway", "tcp:port=abc", "--gateway must be a port or a strports description"),
            ("lobby", "tcp:99999", "the port must be from 0 to 65535, not 99999"),
            ("ops-port", "bogus:1", "--ops-port must be a port, a strports description or "
                                    "'none', not 'bogus:1'"),
        ):  # fmt: skip
            with self.subTest(option=option, value=value):
                e = self.assertRaises(usage.UsageError, description_of, option, value)
                self.assertIn(why, str(e))
                self.assertNotIn("\n", str(e))

    def test_what_the_running_server_adds(self) -> None:
        certificate = ("/d/c:ert.pem", "/d/key.pem")
        for option, description, trusted, listening in (
            ("lobby", "vinom-ssl:7350", None,
             f"vinom-ssl:7350:privateKey=/d/key.pem:certKey=/d/c\\:ert.pem"
             f":backlog={DEFAULT_BACKLOG}"),
            ("lobby", "tcp:7350:backlog=5", None, "tcp:7350:backlog=5"),
            ("websocket", "vinom-ssl:7380:privateKey=k.pem", None,
             f"vinom-ssl:7380:privateKey=k.pem:backlog={DEFAULT_BACKLOG}"),
            ("websocket", "tcp:7380", {ip_network("10.0.0.0/8"), ip_network("fd00::/8")},
             f"vinom-proxied:trusted=10.0.0.0/8,fd00\\:\\:/8:tcp:7380:backlog={DEFAULT_BACKLOG}"),
            ("gateway", "tcp:7300", None, f"tcp:7300:backlog={DEFAULT_BACKLOG}"),
            ("ops-port", "tcp:7390", None, "tcp:7390"),
            ("lobby", "unix:/run/lobby.sock", None, "unix:/run/lobby.sock"),
        ):  # fmt: skip
            with self.subTest(option=option, description=description):
                self.assertEqual(
                    listening_description(option, description, certificate, trusted), listening
                )

    def test_the_fields_read_through_a_wrapper(self) -> None:
        for description, port, interface, tls in (
            ("vinom-ssl:7380", 7380, "", True),
            ("tcp:port=7380:interface=\\:\\:1", 7380, "::1", False),
            ("vinom-proxied:trusted=10.0.0.5:vinom-ssl:7381:interface=10.0.0.2", 7381,
             "10.0.0.2", True),
            ("haproxy:tcp:7382", 7382, "", False),
            ("unix:/run/web.sock", None, None, False),
        ):  # fmt: skip
            with self.subTest(description=description):
                self.assertEqual(endpoint_port(description), port)
                self.assertEqual(listen_interface(description), interface)
                self.assertEqual(is_tls(description), tls)

    def test_the_relay_reads_its_ops_port_as_a_server_does(self) -> None:
        key = self.mktemp()
        with open(key, "w") as f:
            f.write("11" * 32)
        for value, description in (
            ("9181", "tcp:9181:interface=127.0.0.1"),
            ("none", None),
            ("unix:/run/relay.sock", "unix:/run/relay.sock"),
        ):
            with self.subTest(value=value):
                options = RelayOptions()
                options.parseOptions(["--relay-key-file", key, "--ops-port", value])
                self.assertEqual(options["ops-port"], description)
        e = self.assertRaises(usage.UsageError, RelayOptions().parseOptions,
                              ["--relay-key-file", key, "--ops-port", "bogus:1"])  # fmt: skip
        self.assertIn("--ops-port must be a port, a strports description or 'none'", str(e))
