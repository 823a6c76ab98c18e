"""What an account store read lately, kept for a few seconds: the memory that lets a
returning player's sign-in be answered without a trip to the database.

`Recent` is a map whose values live `ttl` seconds from when they were read, at
most `size` of them (the oldest put goes first), on the caller's clock (`now`
in, as the store's calls take it). It knows nothing of accounts: the store
decides what goes in and when all of it must go (docs/accounts.md, "Recent
sign-ins").
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most `size` values, each answered for `ttl` seconds from its `at`."""

    def __init__(self, ttl: float, size: int) -> None:
        if ttl < 0 or size < 0:
            raise ValueError("a recent map's ttl and size are at least 0")
        self._ttl = ttl
        self._size = size
        self._entries: dict[K, tuple[float, V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> V | None:
        """The value put under `key` less than `ttl` seconds before `now`, or None (a
        clock that went back counts as too old: the value is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        at, value = entry
        if not 0.0 <= now - at < self._ttl:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V, at: float) -> None:
        """Keep `value` under `key` as read at `at`; the oldest entry goes past `size`."""
        self._entries.pop(key, None)
        if self._size == 0:
            return
        self._entries[key] = (at, value)
        if len(self._entries) > self._size:
            del self._entries[next(iter(self._entries))]

    def clear(self) -> None:
        self._entries.clear()
