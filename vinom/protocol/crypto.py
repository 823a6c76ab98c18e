"""The AEAD vinom's UDP protocol uses, and the measurement that chose it.

AES-256-GCM won on this project's reference machine (AMD EPYC with AES-NI and
VAES): faster than ChaCha20-Poly1305 for 100-byte packets, with the same
memory per cipher object. Figures and method are in docs/protocol.md; rerun
them with ``python -m vinom.protocol.crypto``.

The cipher is cryptography's `AESGCM`, nothing of our own in C: the security
path stays in a library that is reviewed, fuzzed and patched by others.
One cipher object per key, made once: building one costs about as much as a
whole packet's encryption, so never build them per packet. `encrypt_into`
and `decrypt_into` save nothing here, since the socket wants `bytes` anyway.
"""

from __future__ import annotations

import json
import os
import sys
import timeit
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


# Which implementation seals and opens packets (reported by `vinom.server.build.build_info`).
AEAD_IMPLEMENTATION = "cryptography"


def new_aead(key: bytes) -> Aead:
    """The cipher object for one key."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"keys are {KEY_SIZE} bytes, got {len(key)}")
    return AESGCM(key)


def random_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _candidates() -> list[tuple[str, Callable[[bytes], Aead]]]:
    return [("AES-256-GCM", AESGCM), ("ChaCha20-Poly1305", ChaCha20Poly1305)]


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
