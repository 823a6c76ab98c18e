"""The WebTransport session's framing and close capsule, byte for byte as
docs/protocol.md section 17 gives them."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import msgpack
from twisted.trial.unittest import TestCase

from vinom.hosting.webtransport import WebTransportConfig, close_capsule, frame


def hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class WireTests(TestCase):
    def test_a_message_on_the_stream(self) -> None:
        self.assertEqual(frame(msgpack.packb({"t": "sync"})),
                         hex_bytes("00 00 00 08 81 a1 74 a4 73 79 6e 63"))  # fmt: skip

    def test_the_close_capsules(self) -> None:
        self.assertEqual(close_capsule(4001, "token_invalid"), hex_bytes(
            "68 43 11 00 00 0f a1 74 6f 6b 65 6e 5f 69 6e 76 61 6c 69 64"))  # fmt: skip
        self.assertEqual(close_capsule(1000, "session closed"), hex_bytes(
            "68 43 12 00 00 03 e8 73 65 73 73 69 6f 6e 20 63 6c 6f 73 65 64"))  # fmt: skip

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
    def test_aioquic_is_required_from_its_path_challenge_fix_and_installed_so(self) -> None:
        setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
        [required] = re.findall(r'"aioquic>=([0-9.]+)"', setup)
        self.assertEqual(required, "1.3")
        installed = tuple(int(part) for part in version("aioquic").split(".")[:2])
        self.assertGreaterEqual(installed, (1, 3))
