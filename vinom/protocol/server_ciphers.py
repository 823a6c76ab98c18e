"""The cipher objects a game host's UDP endpoint keeps, and for whom (sans-I/O).

An AES-GCM object costs about 2.5 KB; a host with ten thousand sessions cannot
keep two per session. `SessionCiphers` decides who holds them:

- the objects made for a handshake's steps, by key, the last RECENT_CIPHERS of
  them (a fixed 160 KB for the host, never per session): each of a handshake's
  two keys is needed twice, one round trip apart (`for_handshake`, `recent`);
- the objects of sessions that carry payloads (`keep_rx`, `make_tx`), at most
  `HostConfig.cipher_sessions` sessions at once, in second-chance order;
  everyone else uses a throwaway object per packet (about 2 us) and holds none.

Only keys of valid tokens (sealed by the lobby) and sessions whose packets
authenticated get here, so strangers cannot evict anyone.

Installed builds compile this module with mypyc (setup.py, COMPILED).
"""

from __future__ import annotations

from collections import deque

from vinom.protocol.crypto import Aead, new_aead
from vinom.protocol.server_session import ACTIVE, QUIET, ServerSession

# Cipher objects made for handshakes and a new session's first packets, kept for
# the next step one round trip later (see SessionCiphers.for_handshake): about
# 2.5 KB each, a fixed 160 KB for the host, never per session.
RECENT_CIPHERS = 64


class SessionCiphers:
    """One endpoint's cipher objects: its handshakes' recent ones, and who keeps theirs."""

    __slots__ = ("_limit", "_queue", "_recent", "_sessions")

    def __init__(self, sessions: dict[int, ServerSession], limit: int) -> None:
        # The endpoint's sessions by id (the same dict): those queued may have closed.
        self._sessions = sessions
        # Cipher objects by key, oldest first (see for_handshake).
        self._recent: dict[bytes, Aead] = {}
        # Sessions that may hold cipher objects, oldest first (see _enlist).
        self._queue: deque[int] = deque()
        self._limit = limit

    def for_handshake(self, key: bytes) -> Aead:
        """The cipher object for a token's key in a handshake step, kept for the next.

        A handshake needs each of its two keys twice, one round trip apart: the
        challenge and the welcome under the server-to-client key, the response and
        the session's first packet under the other. The last RECENT_CIPHERS made
        here are kept, by key, so that the next step finds its object made
        (`recent`). Only keys of valid tokens (sealed by the lobby) get
        here, never a stranger's.
        """
        recent = self._recent
        aead = recent.get(key)
        if aead is None:
            aead = new_aead(key)
            if len(recent) >= RECENT_CIPHERS:
                del recent[next(iter(recent))]
            recent[key] = aead
        return aead

    def recent(self, key: bytes) -> Aead:
        """A cipher object for a session's key: one a handshake step made, else a new
        one (not kept: an idle session's keepalives must not churn the table)."""
        aead = self._recent.get(key)
        return aead if aead is not None else new_aead(key)

    def forget(self, s: ServerSession) -> None:
        """`s` closed: its keys' handshake objects go too."""
        recent = self._recent
        if recent:
            recent.pop(s.rx_key, None)
            recent.pop(s.tx_key, None)

    def keep_rx(self, s: ServerSession, rx: Aead) -> None:
        """Keep an authenticated peer's receiving cipher (the tag verified with it)."""
        queued = s.tx is not None
        s.rx = rx
        if not queued:
            self._enlist(s)

    def make_tx(self, s: ServerSession) -> Aead:
        """Build and keep the session's sending cipher (something is being sent)."""
        tx = new_aead(s.tx_key)
        queued = s.rx is not None
        s.tx = tx
        if not queued:
            self._enlist(s)
        return tx

    def _enlist(self, s: ServerSession) -> None:
        """`s` is about to hold cipher objects: list it, evicting others beyond the limit.

        Only sessions carrying payloads keep ciphers (~5 KB a session): keepalives
        and disconnects use throwaway ones, and a session with no payload between
        two wake-ups of its timer (a keepalive interval at most) gives its ciphers
        up, so thousands of idle sessions hold none. At most `cipher_sessions`
        sessions hold theirs; beyond that, the least recently active one gives them
        up (second-chance order: one with payload traffic since it was last looked
        at goes round again) and makes them again on its next packet, about 2 us.
        Only called once a payload from the peer authenticated or a payload to it
        is being sealed, so strangers cannot evict anyone. Each cipher is built
        when first needed.
        """
        if s.in_cipher_queue:
            return  # still queued since it last held ciphers; it keeps its place
        s.in_cipher_queue = True
        queue = self._queue
        queue.append(s.id)
        limit = self._limit
        if len(queue) > limit:
            sessions = self._sessions
            while len(queue) > limit:
                sid = queue.popleft()
                other = sessions.get(sid)
                if other is None:
                    continue  # closed since
                other.in_cipher_queue = False
                if other.rx is None and other.tx is None:
                    continue  # gave them up since (idle)
                if other.activity == ACTIVE:
                    other.activity = QUIET
                    other.in_cipher_queue = True
                    queue.append(sid)
                else:
                    other.rx = other.tx = None
