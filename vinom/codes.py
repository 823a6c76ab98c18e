"""Join codes: the short codes players read aloud or off a screen to find an open
room or a party (docs/lobby.md).

At the bottom of the package (rank 0 in tests/test_layers.py): the lobby's
open rooms and the party stores (in memory and in Redis) make and read codes
the same way.
"""

from __future__ import annotations

import secrets

# No 0/O, 1/I/L, so a code read aloud or off a screen is typed right.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6


def new_join_code() -> str:
    """A fresh join code: CODE_LENGTH characters of CODE_ALPHABET."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(code: str) -> str:
    """A join code as typed (any case, spaces around) -> as stored."""
    return code.strip().upper()
