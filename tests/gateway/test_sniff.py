"""The gateway's sniffing core: real ClientHellos, HTTP requests and lobby lines, whole and cut."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.sniff import Refused, Sniffed, sniff


def client_hello(sni: str | None = None, alpn: list[bytes] | None = None) -> bytes:
    """The first flight of a real TLS client (OpenSSL), as the gateway receives it."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if alpn:
        context.set_alpn_protos(alpn)
    connection = SSL.Connection(context, None)
    if sni is not None:
        connection.set_tlsext_host_name(sni.encode())
    connection.set_connect_state()
    with contextlib.suppress(SSL.WantReadError):  # it waits for the server's answer
        connection.do_handshake()
    return connection.bio_read(65536)


class TLSTests(SynchronousTestCase):
    def test_server_name_and_alpn_are_read_without_decrypting(self) -> None:
        hello = client_hello("eu.play.example.com", [b"h2", b"vinom/1"])
        self.assertEqual(sniff(hello), Sniffed("tls", sni="eu.play.example.com",
                                               alpn=("h2", "vinom/1")))  # fmt: skip

    def test_a_hello_without_extensions_of_interest(self) -> None:
        self.assertEqual(sniff(client_hello()), Sniffed("tls"))

    def test_every_cut_of_a_hello_needs_more(self) -> None:
        hello = client_hello("localhost")
        for cut in range(1, len(hello)):
            self.assertIsNone(sniff(hello[:cut]), cut)

    def test_a_hello_split_over_two_records(self) -> None:
        hello = client_hello("split.example.com")
        body = hello[5:]
        records = b"".join(
            b"\x16\x03\x01" + len(part).to_bytes(2) + part for part in (body[:40], body[40:])
        )
        self.assertEqual(sniff(records).sni, "split.example.com")  # type: ignore[union-attr]

    def test_a_record_that_is_not_a_client_hello_is_refused(self) -> None:
        self.assertEqual(sniff(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"), Refused("bad_tls"))
        self.assertEqual(sniff(b"\x16\x09\x01\x00\x04"), Refused("bad_tls"))

    def test_a_garbled_hello_is_refused(self) -> None:
        hello = bytearray(client_hello("localhost"))
        hello[5 + 4 + 34] = 0xFF  # the session id's length, past the message's end
        self.assertEqual(sniff(bytes(hello)), Refused("bad_tls"))

    @settings(deadline=None, max_examples=300)
    @given(st.data())
    def test_a_hello_with_any_bytes_changed_is_read_or_refused_never_a_crash(
        self, data: st.DataObject
    ) -> None:
        hello = bytearray(HELLO)
        # Any byte of the handshake message (its lengths and vectors included) set to
        # anything: the gateway decides, or waits for more, or counts a refusal.
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(5, len(hello) - 1))
            hello[at] = data.draw(st.integers(0, 255))
        decision = sniff(bytes(hello))
        self.assertIsInstance(decision, (Sniffed, Refused, type(None)))
        if isinstance(decision, Refused):
            self.assertEqual(decision.reason, "bad_tls")


HELLO = client_hello("fuzz.example.com", [b"h2", b"vinom/1"])


class HTTPTests(SynchronousTestCase):
    def test_an_upgrade_request_is_routed_on_path_and_query(self) -> None:
        request = (b"GET /lobby?realm=eu&player=p-1 HTTP/1.1\r\nHost: x\r\n"
                   b"Upgrade: websocket\r\n\r\n")  # fmt: skip
        expected = Sniffed("http", path="/lobby", realm="eu", player_id="p-1",
                           query={"realm": "eu", "player": "p-1"})  # fmt: skip
        self.assertEqual(sniff(request), expected)

    def test_until_the_blank_line_more_is_needed(self) -> None:
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        for cut in range(1, len(request)):
            self.assertIsNone(sniff(request[:cut]), cut)
        self.assertEqual(sniff(request).path, "/")  # type: ignore[union-attr]

    def test_a_broken_request_line_is_refused(self) -> None:
        self.assertEqual(sniff(b"GET /\r\n\r\n"), Refused("bad_http"))
        self.assertEqual(sniff(b"GET / SPDY/3\r\n\r\n"), Refused("bad_http"))


class LobbyLineTests(SynchronousTestCase):
    def line(self, frame: object) -> bytes:
        return json.dumps(frame).encode() + b"\n"

    def test_hello_gives_its_realm_and_previous_player_id(self) -> None:
        frame = {"type": "hello", "name": "Ann", "realm": "eu",
                 "previous": {"player_id": "p-3f9c", "secret": "s"}}  # fmt: skip
        self.assertEqual(sniff(self.line(frame)), Sniffed("lobby", realm="eu", player_id="p-3f9c"))

    def test_reconnect_gives_its_player_id(self) -> None:
        frame = {"type": "reconnect", "player_id": "p-1", "secret": "s"}
        self.assertEqual(sniff(self.line(frame)), Sniffed("lobby", player_id="p-1"))

    def test_fields_that_are_not_short_strings_are_not_routed_on(self) -> None:
        frame = {"type": "hello", "name": "Ann", "realm": ["eu"],
                 "previous": {"player_id": "p" * 65}}  # fmt: skip
        self.assertEqual(sniff(self.line(frame)), Sniffed("lobby"))

    def test_a_line_is_needed_whole(self) -> None:
        line = self.line({"type": "hello", "name": "Ann"})
        for cut in range(1, len(line)):
            self.assertIsNone(sniff(line[:cut]), cut)

    def test_a_line_that_is_not_a_json_object_is_refused(self) -> None:
        self.assertEqual(sniff(b"{nope\n"), Refused("bad_lobby_frame"))
        self.assertEqual(sniff(b" [1]\n"), Refused("bad_lobby_frame"))


class LimitTests(SynchronousTestCase):
    def test_too_many_bytes_without_a_decision_are_refused(self) -> None:
        self.assertIsNone(sniff(b"{" + b" " * 100, limit=200))
        self.assertEqual(sniff(b"{" + b" " * 200, limit=200), Refused("too_large"))
        self.assertEqual(sniff(b"GET /" + b"a" * 300, limit=200), Refused("too_large"))

    def test_a_proxy_header_from_a_client_is_refused(self) -> None:
        self.assertEqual(sniff(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), Refused("proxy_header"))
        self.assertEqual(sniff(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11"), Refused("proxy_header"))
        self.assertIsNone(sniff(b"PROX"))

    def test_other_first_bytes_are_refused_at_once(self) -> None:
        self.assertEqual(sniff(b"\x00\x01"), Refused("unknown_protocol"))
        self.assertEqual(sniff(b"SSH-2.0-OpenSSH"), Refused("unknown_protocol"))
        self.assertIsNone(sniff(b""))
