"""The server's TLS (vinom.net.tls) against a peer's own bytes, on a real `twistd -n
vinom` lobby port: a ClientHello that claims 16 MB followed by megabytes of it, a
record longer than TLS allows, and garbage after a finished handshake. Each
connection is closed, the server's resident memory grows by no more than a
connection's worth, and a player who comes next is served."""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import os
import socket
import ssl
import struct
import time

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.hosting.test_webtransport_budget import rss
from tests.support.servers import start_twistd
from vinom.client.lobby import connect_lobby

MiB = 1024 * 1024
# What the server may grow by for one hostile connection: its TLS state and one
# record, its objects, the allocator's rounding.
SLACK = 2 * MiB
# The lobby's own hello timeout, which would close a hostile connection anyway: set
# far beyond WITHIN, so that only the TLS layer can close it in time.
HELLO_TIMEOUT = 120
# How long a hostile connection may stay open: generous for a busy machine (the TLS
# layer closes each in milliseconds).
WITHIN = 30.0


def record(content_type: int, body: bytes) -> bytes:
    """A TLS record (RFC 8446, 5.1) as a client sends it: legacy version 3.1."""
    return struct.pack("!BHH", content_type, 0x0301, len(body)) + body


def push_until_closed(port: int, first: bytes, then: bytes, most: int) -> tuple[int, bool]:
    """Send `first`, then `then` again and again (at most `most` bytes in all) until the
    server closes; the bytes sent and whether it closed within `WITHIN` seconds."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(first)
        sent += len(first)
        raw.settimeout(0.05)
        deadline = time.monotonic() + WITHIN
        while time.monotonic() < deadline:
            try:
                if raw.recv(65536) == b"" and sent > 0:
                    return sent, True
            except TimeoutError:
                pass
            except OSError:  # reset: closed
                return sent, True
            if sent < most:
                try:
                    raw.sendall(then)
                    sent += len(then)
                except OSError:
                    return sent, True
    return sent, False


def garbage_after_handshake(port: int, trust: str) -> bool:
    """A real TLS client that finishes its handshake and then writes bytes that are no
    TLS record: whether the server closed the connection within `WITHIN` seconds."""
    context = ssl.create_default_context(cafile=trust)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.do_handshake()
        tls.settimeout(WITHIN)
        # A record no key sealed, on the socket under TLS (wrap_socket took raw's).
        os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        try:
            while tls.recv(4096):
                pass
        except TimeoutError:
            return False
        except OSError:  # the server's alert (ssl.SSLError), or a reset
            pass
        return True


class HostileTLSPeerTests(TestCase):
    timeout = 180

    async def test_hostile_records_are_closed_within_a_connections_memory(self) -> None:
        server = await start_twistd(self, {}, "--limit", f"lobby-hello-timeout={HELLO_TIMEOUT}")
        port = server.lobby_port
        assert port is not None
        pid = server.process.transport.pid
        # A player first: the server is warm, its memory is what serving costs.
        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=server.cert)
        await lobby.hello("ann")
        await lobby.close()
        before = rss(pid)

        # A ClientHello claiming 16 MB (a handshake message's length is 24 bits):
        # OpenSSL refuses it from its header, whatever follows.
        hello = record(22, b"\x01\xff\xff\xff" + b"\x03\x03" + b"\x00" * 16370)
        more = record(22, b"\x00" * 16384)
        sent, closed = await deferToThread(push_until_closed, port, hello, more, 32 * MiB)
        self.assertTrue(closed, f"still open after {sent} bytes")
        # A record longer than TLS allows (at most 2**14 + 256 bytes of ciphertext).
        oversized = struct.pack("!BHH", 22, 0x0301, 0xFFFF)
        sent, closed = await deferToThread(push_until_closed, port, oversized, b"\x00" * 65536,
                                           32 * MiB)  # fmt: skip
        self.assertTrue(closed, f"still open after {sent} bytes")
        # Garbage where a sealed record belongs, after a finished handshake.
        self.assertTrue(await deferToThread(garbage_after_handshake, port, server.cert))
        self.assertLess(rss(pid) - before, SLACK, f"RSS {before} -> {rss(pid)}")

        # The next player is served.
        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=server.cert)
        welcome = await lobby.hello("bob")
        self.assertTrue(welcome.player_id.startswith("p-"))
        await lobby.close()
