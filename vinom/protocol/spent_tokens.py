"""The connect tokens that opened a session, until they expire: one token, one session.

A connect token's keys belong to one session: a second session opened with the
same token would reuse them. So a game host remembers the nonce of every token
that opened a session (over UDP, or a stream: `ServerEndpoint.spend_request`)
until the token expires, after which the token is refused for being expired
anyway. Nonces are filed by the unix second their tokens expire: tokens issued
together share one, so a crowd's nonces cost a list slot each, not a (time,
nonce) record each. Sans-I/O: the caller passes unix time.

Installed builds compile this module with mypyc (setup.py, COMPILED).
"""

from __future__ import annotations

import heapq


class SpentTokens:
    """Nonces of tokens that opened a session, each kept until its token expires."""

    __slots__ = ("_by_expiry", "_expiries", "_nonces")

    def __init__(self) -> None:
        self._nonces: set[bytes] = set()
        # Unix second -> the nonces of tokens expiring then; the seconds in a heap.
        self._by_expiry: dict[int, list[bytes]] = {}
        self._expiries: list[int] = []

    def __contains__(self, token_nonce: bytes) -> bool:
        return token_nonce in self._nonces

    def entries(self) -> int:
        """Nonces and expiry seconds held (for the endpoint's `held_entries`)."""
        return len(self._nonces) + len(self._expiries)

    def spend(self, token_nonce: bytes, expires_at: int) -> None:
        """The token with this nonce opened a session: it opens none again until it
        expires (unix seconds; and is refused for being expired from then on)."""
        self._nonces.add(token_nonce)
        spent = self._by_expiry.get(expires_at)
        if spent is None:
            spent = self._by_expiry[expires_at] = []
            heapq.heappush(self._expiries, expires_at)
        spent.append(token_nonce)

    def forget_expired(self, wall: float) -> None:
        """Forget the tokens expired by unix time `wall`."""
        heap = self._expiries
        nonces = self._nonces
        while heap and heap[0] <= wall:
            for nonce in self._by_expiry.pop(heapq.heappop(heap)):
                nonces.discard(nonce)
