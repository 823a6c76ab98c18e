"""The optional AES-GCM extension against cryptography's AESGCM, and how vinom picks one.

`vinom.protocol._aesgcm.AesGcm` must be a drop-in for `AESGCM`: the same bytes
out, the same plaintext back, `InvalidTag` for anything forged, the same errors
for bad arguments. tox says which build each of its runs must be using
(`VINOM_EXPECT_BUILD`: `compiled` on the installed wheel, `pure` on the
sources), so that a build that quietly lost its compiled parts, or a run that
imported the wrong copy of vinom, fails here instead of going unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from vinom.build import build_info
from vinom.protocol import crypto, server
from vinom.protocol.crypto import AEAD_IMPLEMENTATION, Aead, InvalidTag, new_aead

try:
    from vinom.protocol._aesgcm import AesGcm
except ImportError:  # not built here: the tests below say so, or fail under tox
    AesGcm = None  # type: ignore[assignment,misc]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
keys = st.sampled_from((16, 24, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n))
nonces = st.binary(min_size=12, max_size=12)
plains = st.binary(max_size=2000)
associated = st.one_of(st.none(), st.binary(max_size=64))


def run_python(*args: str, **env: str) -> str:
    """Python with `args` in a fresh process (from the checkout's root); its output."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        raise AssertionError(done.stdout[-3000:] + done.stderr[-3000:])
    return done.stdout.strip()


def skip_in_the_pure_run() -> None:
    if os.environ.get("VINOM_NO_EXTENSIONS"):
        # tox's tests-pure twin switches the extensions off on purpose; tox's
        # tests environment runs these on the built extension.
        raise SkipTest("VINOM_NO_EXTENSIONS is set: the pure-Python run")


class ChoiceTests(SynchronousTestCase):
    def test_the_extension_is_in_use_where_it_was_built(self) -> None:
        if os.environ.get("VINOM_EXPECT_BUILD") == "compiled":
            self.assertIsNotNone(AesGcm, "vinom.protocol._aesgcm was not built")
        if AesGcm is None or os.environ.get("VINOM_NO_EXTENSIONS"):
            self.assertEqual(AEAD_IMPLEMENTATION, "cryptography")
            self.assertIsInstance(new_aead(bytes(32)), AESGCM)
        else:
            self.assertEqual(AEAD_IMPLEMENTATION, "vinom._aesgcm")
            self.assertIsInstance(new_aead(bytes(32)), AesGcm)

    def test_the_build_is_the_one_this_run_asks_for(self) -> None:
        """tox's tests env must run the compiled build, tests-pure the sources."""
        info = build_info()
        expected = os.environ.get("VINOM_EXPECT_BUILD")
        if expected == "compiled":
            self.assertEqual(info, {"code": "compiled", "aead": "vinom._aesgcm"})
        elif expected == "pure":
            self.assertEqual(info, {"code": "pure", "aead": "cryptography"})
        self.assertIn(info["code"], ("compiled", "pure"))
        self.assertEqual(info["code"] == "compiled", not server.__file__.endswith(".py"))

    def test_no_extensions_in_the_environment_means_aesgcm(self) -> None:
        out = run_python(
            "-c",
            "from vinom.protocol.crypto import AEAD_IMPLEMENTATION, new_aead;"
            "print(AEAD_IMPLEMENTATION, type(new_aead(bytes(32))).__name__)",
            VINOM_NO_EXTENSIONS="1",
        )
        self.assertEqual(out, "cryptography AESGCM")

    def test_the_fallback_passes_the_protocol_test_vectors(self) -> None:
        """The documented bytes hold with either implementation (here: AESGCM alone)."""
        out = run_python(
            "-m", "twisted.trial", "--temp-directory", os.path.abspath(self.mktemp()),
            "tests.test_protocol_vectors", VINOM_NO_EXTENSIONS="1",
        )
        self.assertIn("PASSED", out)

    def test_new_aead_refuses_other_key_sizes(self) -> None:
        for size in (0, 16, 31, 33):
            self.assertRaises(ValueError, new_aead, bytes(size))

    def test_the_import_check_tells_a_different_cipher_apart(self) -> None:
        self.assertTrue(crypto._agrees_with_aesgcm(AESGCM))
        self.assertFalse(crypto._agrees_with_aesgcm(ChaCha20Poly1305))

        class AcceptsForgeries:
            def __init__(self, key: bytes) -> None:
                self._inner = AESGCM(key)

            def encrypt(self, nonce: bytes, data: bytes, ad: bytes | None) -> bytes:
                return self._inner.encrypt(nonce, data, ad)

            def decrypt(self, nonce: bytes, data: bytes, ad: bytes | None) -> bytes:
                return data[:-16]

        self.assertFalse(crypto._agrees_with_aesgcm(AcceptsForgeries))

        class RefusesEmptyBodies(AcceptsForgeries):
            def decrypt(self, nonce: bytes, data: bytes, ad: bytes | None) -> bytes:
                if len(data) <= 16:
                    raise InvalidTag()
                return self._inner.decrypt(nonce, data, ad)

        class Fails(AcceptsForgeries):
            def encrypt(self, nonce: bytes, data: bytes, ad: bytes | None) -> bytes:
                raise RuntimeError("OpenSSL failed")

        # A cipher that raises where AESGCM would not is told apart, not let through.
        self.assertFalse(crypto._agrees_with_aesgcm(RefusesEmptyBodies))
        self.assertFalse(crypto._agrees_with_aesgcm(Fails))

    def test_a_disagreeing_extension_is_set_aside_with_a_warning(self) -> None:
        skip_in_the_pure_run()
        self.patch(crypto, "_agrees_with_aesgcm", lambda cipher: False)
        cipher, name = crypto._choose_cipher()
        self.assertIs(cipher, AESGCM)
        self.assertEqual(name, "cryptography")
        warnings = self.flushWarnings()
        self.assertEqual(len(warnings), 1)
        self.assertIn("disagrees", warnings[0]["message"])


class ExtensionTests(SynchronousTestCase):
    """AesGcm and AESGCM side by side: these need the extension built."""

    def setUp(self) -> None:
        skip_in_the_pure_run()
        if AesGcm is None:
            raise AssertionError(
                "vinom.protocol._aesgcm was not built (it needs a C compiler and OpenSSL's "
                "headers at install time); vinom runs on AESGCM without it"
            )
        self.ours: Callable[[bytes], Aead] = AesGcm

    @settings(max_examples=300, deadline=None)
    @given(keys, nonces, plains, associated)
    def test_same_bytes_both_ways(
        self, key: bytes, nonce: bytes, plain: bytes, ad: bytes | None
    ) -> None:
        ours, theirs = self.ours(key), AESGCM(key)
        sealed = theirs.encrypt(nonce, plain, ad)
        self.assertEqual(ours.encrypt(nonce, plain, ad), sealed)
        self.assertEqual(ours.decrypt(nonce, sealed, ad), plain)
        self.assertEqual(theirs.decrypt(nonce, ours.encrypt(nonce, plain, ad), ad), plain)

    @settings(max_examples=200, deadline=None)
    @given(keys, nonces, st.binary(max_size=200), st.binary(max_size=32), st.data())
    def test_any_flipped_bit_is_an_invalid_tag(
        self, key: bytes, nonce: bytes, plain: bytes, ad: bytes, data: st.DataObject
    ) -> None:
        ours = self.ours(key)
        sealed = ours.encrypt(nonce, plain, ad)
        where = data.draw(st.sampled_from(("nonce", "sealed", "ad") if ad else ("nonce", "sealed")))
        original = {"nonce": nonce, "sealed": sealed, "ad": ad}[where]
        bit = data.draw(st.integers(0, len(original) * 8 - 1))
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        args = {"nonce": nonce, "sealed": sealed, "ad": ad, where: bytes(flipped)}
        self.assertRaises(InvalidTag, ours.decrypt, args["nonce"], args["sealed"], args["ad"])
        # A refusal leaves the object working.
        self.assertEqual(ours.decrypt(nonce, sealed, ad), plain)

    def test_every_truncation_is_an_invalid_tag(self) -> None:
        ours = self.ours(bytes(range(32)))
        sealed = ours.encrypt(bytes(12), bytes(range(40)), b"header")
        for length in range(len(sealed)):
            self.assertRaises(InvalidTag, ours.decrypt, bytes(12), sealed[:length], b"header")
        self.assertRaises(InvalidTag, ours.decrypt, bytes(12), sealed + b"\0", b"header")

    def test_missing_associated_data_is_not_empty_associated_data_of_another_packet(self) -> None:
        ours = self.ours(bytes(32))
        sealed = ours.encrypt(bytes(12), b"body", None)
        self.assertEqual(ours.decrypt(bytes(12), sealed, b""), b"body")  # as AESGCM
        self.assertRaises(InvalidTag, ours.decrypt, bytes(12), sealed, b"x")

    def test_bytes_like_arguments(self) -> None:
        key = bytes(range(32))
        ours, theirs = self.ours(key), AESGCM(key)
        expected = theirs.encrypt(bytes(12), b"payload", b"header")
        for wrap in (bytearray, memoryview):
            self.assertEqual(
                ours.encrypt(wrap(bytes(12)), wrap(b"payload"), wrap(b"header")), expected
            )
            self.assertEqual(ours.decrypt(bytes(12), wrap(expected), wrap(b"header")), b"payload")
        self.assertEqual(self.ours(bytearray(key)).encrypt(bytes(12), b"payload", b"header"),
                         expected)

    def test_every_call_lets_go_of_its_arguments(self) -> None:
        """A bytearray can be resized after every kind of call: no buffer is kept."""
        ours = self.ours(bytes(32))
        nonce, data, ad = bytearray(12), bytearray(b"payload"), bytearray(b"header")
        sealed = bytearray(ours.encrypt(nonce, data, ad))
        self.assertEqual(ours.decrypt(nonce, sealed, ad), b"payload")
        self.assertRaises(InvalidTag, ours.decrypt, nonce, sealed + b"x", ad)
        self.assertRaises(InvalidTag, ours.decrypt, nonce, bytearray(3), ad)
        self.assertRaises(ValueError, ours.encrypt, bytearray(11), data, ad)
        self.assertRaises(TypeError, ours.encrypt, nonce, data, 5)  # type: ignore[arg-type]
        self.assertRaises(TypeError, ours.encrypt, nonce, "text", ad)  # type: ignore[arg-type]
        for buffer in (nonce, data, ad, sealed):
            buffer.append(0)  # BufferError if an export were left open
            del buffer[-1]

    def test_bad_arguments_raise_as_aesgcm_does(self) -> None:
        for size in (0, 15, 31, 33, 64):
            self.assertRaises(ValueError, self.ours, bytes(size))
        ours = self.ours(bytes(32))
        for method in (ours.encrypt, ours.decrypt):
            for size in (0, 8, 11, 13, 16):
                self.assertRaises(ValueError, method, bytes(size), bytes(32), b"")
            self.assertRaises(TypeError, method, bytes(12), "text", b"")  # type: ignore[arg-type]
            self.assertRaises(TypeError, method, bytes(12), bytes(32), 5)  # type: ignore[arg-type]
            self.assertRaises(TypeError, method, bytes(12), bytes(32))  # type: ignore[call-arg]
            self.assertRaises(TypeError, self.ours, "text")  # type: ignore[arg-type]

    def test_one_object_seals_and_opens_many_packets_in_any_order(self) -> None:
        key = os.urandom(32)
        ours, theirs = self.ours(key), AESGCM(key)
        sealed = []
        for seq in range(200):
            nonce = seq.to_bytes(12, "little")
            plain = os.urandom(seq % 150)
            sealed.append((nonce, ours.encrypt(nonce, plain, b"h"), plain))
            if seq % 3 == 0:  # opens between seals, as a session does
                n, s, p = sealed[seq // 2]
                self.assertEqual(ours.decrypt(n, s, b"h"), p)
        for nonce, packet, plain in reversed(sealed):
            self.assertEqual(theirs.decrypt(nonce, packet, b"h"), plain)
            self.assertEqual(ours.decrypt(nonce, packet, b"h"), plain)

    def test_a_large_message(self) -> None:
        key = os.urandom(32)
        plain = os.urandom(1 << 20)
        sealed = self.ours(key).encrypt(bytes(12), plain, b"")
        self.assertEqual(sealed, AESGCM(key).encrypt(bytes(12), plain, b""))
        self.assertEqual(self.ours(key).decrypt(bytes(12), sealed, b""), plain)

    def test_objects_are_freed(self) -> None:
        """Many keyed objects come and go without the process growing (contexts freed)."""
        out = run_python(
            "-c",
            "import os, resource\n"
            "from vinom.protocol._aesgcm import AesGcm\n"
            "def churn():\n"
            "    for _ in range(20000):\n"
            "        a = AesGcm(os.urandom(32)); s = a.encrypt(bytes(12), b'x' * 100, b'h')\n"
            "        a.decrypt(bytes(12), s, b'h')\n"
            "churn(); before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "for _ in range(10): churn()\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
        )
        # 200,000 more objects with two keyed contexts each (~2.5 KB) would be ~500 MB.
        self.assertLess(int(out), 20_000)  # KiB
