"""Replay protection: a sliding window over 64-bit packet sequence numbers.

The window is the newest sequence seen plus a 256-bit bitmap of the 256
sequences at and below it (an int, so a session pays ~60 bytes, not a list of
256 slots). Packets older than the window are refused: with one packet per
sequence number and at most a few hundred packets in flight, nothing genuine is
that late. Check before decrypting (cheap refusal), mark only after the AEAD
succeeded, so forged packets cannot move the window.

Installed builds compile this module with mypyc (setup.py, COMPILED): there its
declared types are checked at run time and its classes' methods cannot be
replaced on an instance. tox runs the suite on both builds.
"""

from __future__ import annotations

from typing import Final

WINDOW_SIZE: Final = 256
_MASK: Final = (1 << WINDOW_SIZE) - 1


class ReplayWindow:
    """The sequences one receiver has accepted from one sender."""

    __slots__ = ("bits", "latest")

    def __init__(self) -> None:
        self.latest = -1
        self.bits = 0  # bit i set: sequence latest - i was accepted

    def is_replay(self, sequence: int) -> bool:
        """True if `sequence` was accepted already or is too old to judge."""
        offset = self.latest - sequence
        if offset < 0:
            return False
        if offset >= WINDOW_SIZE:
            return True
        return bool((self.bits >> offset) & 1)

    def mark(self, sequence: int) -> None:
        """Record that an authenticated packet with `sequence` was accepted."""
        offset = self.latest - sequence
        if offset < 0:
            shift = -offset
            self.bits = ((self.bits << shift) | 1) & _MASK if shift < WINDOW_SIZE else 1
            self.latest = sequence
        elif offset < WINDOW_SIZE:
            self.bits |= 1 << offset
