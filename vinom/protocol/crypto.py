"""The AEAD vinom's UDP protocol uses, and the measurement that chose it.

AES-256-GCM won on this project's reference machine (AMD EPYC with AES-NI and
VAES): about 1.7x faster than ChaCha20-Poly1305 for 100-byte packets, with the
same memory per cipher object. Figures and method are in docs/protocol.md;
rerun them with ``python -m vinom.protocol.crypto``.

One cipher object per key, made once: building one costs about as much as a
whole packet's encryption, so never build them per packet.

Where the optional extension `vinom.protocol._aesgcm` was built (a C compiler
and OpenSSL's headers at install time), `new_aead` returns its `AesGcm`, which
reuses one keyed OpenSSL context per direction: about half of what
cryptography's `AESGCM` spends per packet, which copies its keyed context into
a fresh one for every call. Both give the same bytes and raise the same
`InvalidTag` (the tests hold them to each other); the extension is checked
against `AESGCM` once at import and left aside, with a warning, if it
disagrees. `VINOM_NO_EXTENSIONS=1` in the environment makes vinom use `AESGCM`
alone. `AEAD_IMPLEMENTATION` says which one runs.
"""

from __future__ import annotations

import json
import os
import sys
import timeit
import warnings
from collections.abc import Callable
from functools import partial
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from vinom.protocol.wire import KEY_SIZE

CIPHER_NAME = "AES-256-GCM"

__all__ = [
    "AEAD_IMPLEMENTATION",
    "CIPHER_NAME",
    "Aead",
    "InvalidTag",
    "measure",
    "new_aead",
    "random_key",
]


class Aead(Protocol):
    """What vinom asks of a cipher object: `AESGCM`'s two calls, arguments by position."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None, /) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None, /) -> bytes: ...


def _agrees_with_aesgcm(cipher: Callable[[bytes], Aead]) -> bool:
    """Does `cipher` seal, open and refuse exactly as `AESGCM` does? (A few packets.)"""
    key = bytes(range(KEY_SIZE))
    try:
        ours, theirs = cipher(key), AESGCM(key)
        for size in (0, 1, 15, 16, 17, 100, 1200):
            nonce = size.to_bytes(12, "little")
            plain = bytes((i * 7 + size) & 0xFF for i in range(size))
            header = bytes([size & 0xFF]) * 9
            sealed = theirs.encrypt(nonce, plain, header)
            if ours.encrypt(nonce, plain, header) != sealed:
                return False
            if ours.decrypt(nonce, sealed, header) != plain:
                return False
            try:
                ours.decrypt(nonce, sealed[:-1] + bytes([sealed[-1] ^ 1]), header)
            except InvalidTag:
                continue
            return False
    except Exception:  # refusing a genuine packet, or failing: not a drop-in either
        return False
    return True


def _choose_cipher() -> tuple[Callable[[bytes], Aead], str]:
    if os.environ.get("VINOM_NO_EXTENSIONS"):
        return AESGCM, "cryptography"
    try:
        from vinom.protocol._aesgcm import AesGcm
    except ImportError:
        return AESGCM, "cryptography"
    if not _agrees_with_aesgcm(AesGcm):
        warnings.warn(
            "vinom.protocol._aesgcm disagrees with cryptography's AESGCM; using AESGCM",
            RuntimeWarning,
            stacklevel=2,
        )
        return AESGCM, "cryptography"
    return AesGcm, "vinom._aesgcm"


_cipher, AEAD_IMPLEMENTATION = _choose_cipher()


def new_aead(key: bytes) -> Aead:
    """The cipher object for one key."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"keys are {KEY_SIZE} bytes, got {len(key)}")
    return _cipher(key)


def random_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _candidates() -> list[tuple[str, Callable[[bytes], Aead]]]:
    found: list[tuple[str, Callable[[bytes], Aead]]] = [
        ("AES-256-GCM", AESGCM),
        ("ChaCha20-Poly1305", ChaCha20Poly1305),
    ]
    if AEAD_IMPLEMENTATION != "cryptography":
        found.append((f"AES-256-GCM ({AEAD_IMPLEMENTATION})", _cipher))
    return found


def measure(
    sizes: tuple[int, ...] = (32, 100, 1200), number: int = 100_000
) -> list[dict[str, object]]:
    """Time seal and open of one packet for each candidate AEAD.

    Best of 5 runs of `number` operations each, with a 9-byte header as
    associated data, as the session packets have; microseconds per operation.
    `throwaway_us` is a new object sealing one packet of the first size (what a
    host pays for a session that keeps no cipher object).
    """
    rows: list[dict[str, object]] = []
    header = b"\x05" + bytes(8)
    nonce = bytes(12)
    for name, cls in _candidates():
        key = os.urandom(KEY_SIZE)
        aead = cls(key)

        def best(stmt: Callable[[], object]) -> float:
            return min(timeit.repeat(stmt, number=number, repeat=5))

        def throwaway(cls: Callable[[bytes], Aead] = cls, key: bytes = key) -> bytes:
            return cls(key).encrypt(nonce, bytes(sizes[0]), header)

        build = best(partial(cls, key))
        first = best(throwaway)
        for size in sizes:
            plain = os.urandom(size)
            sealed = aead.encrypt(nonce, plain, header)
            seal = best(partial(aead.encrypt, nonce, plain, header))
            open_ = best(partial(aead.decrypt, nonce, sealed, header))
            rows.append(
                {
                    "cipher": name,
                    "bytes": size,
                    "seal_us": round(seal / number * 1e6, 3),
                    "open_us": round(open_ / number * 1e6, 3),
                    "new_object_us": round(build / number * 1e6, 3),
                    "throwaway_us": round(first / number * 1e6, 3),
                }
            )
    return rows


def main() -> None:
    rows = measure()
    print(f"in use: {AEAD_IMPLEMENTATION}")
    print(
        f"{'cipher':30} {'bytes':>6} {'seal us':>8} {'open us':>8} {'new obj us':>10}"
        f" {'throwaway us':>12}"
    )
    for row in rows:
        print(
            f"{row['cipher']!s:30} {row['bytes']!s:>6} {row['seal_us']!s:>8} "
            f"{row['open_us']!s:>8} {row['new_object_us']!s:>10} {row['throwaway_us']!s:>12}"
        )
    json.dump(rows, sys.stdout)
    print()


if __name__ == "__main__":
    main()
