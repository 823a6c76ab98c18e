"""The WebTransport session's framing and close capsule, byte for byte as
vectors/protocol.json (docs/protocol.md section 17) gives them."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import msgpack
from twisted.trial.unittest import TestCase

from tests.support.vectors import vectors
from vinom.hosting.webtransport import WebTransportConfig
from vinom.hosting.webtransport_session import close_capsule, frame


def hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class WireTests(TestCase):
    def test_the_vectors(self) -> None:
        found = vectors("webtransport")
        self.assertEqual(sorted(v["kind"] for v in found.values()),
                         ["close_capsule", "close_capsule", "stream"])  # fmt: skip
        for name, v in found.items():
            if v["kind"] == "stream":
                made = frame(msgpack.packb(v["message"]))
            else:
                made = close_capsule(v["code"], v["reason"])
            self.assertEqual(made.hex(), v["hex"], name)

    def test_a_long_reason_is_cut_to_1024_bytes(self) -> None:
        capsule = close_capsule(4001, "x" * 5000)
        self.assertEqual(capsule[:4], hex_bytes("68 43 44 04"))  # length 1028, a 2-byte varint
        self.assertEqual(len(capsule), 4 + 4 + 1024)

    def test_the_documented_timings(self) -> None:
        # docs/protocol.md 17: QUIC's idle timeout 10 s; a closing session's capsule
        # waits at most 1 s for the browser to read to the end of its stream.
        config = WebTransportConfig()
        self.assertEqual((config.idle_timeout, config.close_wait), (10.0, 1.0))

    def test_the_documented_receive_budget(self) -> None:
        # docs/web.md, "Limits and counters": what one connection may make the server
        # hold of what its browser sent and the server has not read.
        config = WebTransportConfig()
        self.assertEqual((config.stream_receive_budget, config.receive_budget),
                         (64 * 1024, 256 * 1024))  # fmt: skip


class DependencyTests(TestCase):
    def test_qh3_is_required_in_its_1_x_line_and_installed_so(self) -> None:
        # vinom.hosting.quic extends qh3 1.x's Python connection (the receive
        # budget); 2.x moved it into native code, which refuses Chromium's handshake.
        setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
        [required] = re.findall(r'"qh3([^"]+)"', setup)
        self.assertEqual(required, ">=1.9.4,<2")
        installed = tuple(int(part) for part in version("qh3").split(".")[:3])
        self.assertTrue((1, 9, 4) <= installed < (2,), installed)
