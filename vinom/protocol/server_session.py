"""One session of a game host's UDP endpoint: `ServerSession` (sans-I/O).

What `vinom.protocol.server.ServerEndpoint` keeps per authenticated peer: its
address, identity and keys (from the cookie it echoed), its cipher objects
while it is warm (vinom.protocol.server_ciphers), its reliability layer, its
replay window (the session is one), its timers' inputs (last packet each way,
keepalive interval, wake-up; vinom.protocol.server_timers) and its activity,
which decides what an idle session gives back. A plain record: the endpoint
and its parts change it; nothing here sends or decides.

Installed builds compile this module with mypyc (setup.py, COMPILED).
"""

from __future__ import annotations

from typing import Any, Final

from vinom.protocol.cookies import CookieContents
from vinom.protocol.crypto import Aead
from vinom.protocol.layer import ReliabilityLayer
from vinom.protocol.replay import ReplayWindow
from vinom.protocol.wire import PAYLOAD

Address = Any  # what the transport hands us: (host, port) or an IPv6 4-tuple
INF = float("inf")

# A peer hears from us at least this many times per session timeout, so one or
# two lost keepalives never end a session (whatever timeout the token sets).
KEEPALIVES_PER_TIMEOUT = 3
# Malformed bodies a session may send (an honest client's reliability layer
# never makes one, and an AEAD-sealed packet cannot be damaged on the way): the
# next ends it (docs/protocol.md §7.3).
MALFORMED_BODIES = 100
# Payload packets (both ways) since a session was last idle after which it is
# worth keeping cipher objects for (see ServerSession).
WARM_PAYLOADS = 8
# A session's activity, as the timer last saw it (see ServerSession.activity).
ACTIVE: Final = 2  # payload traffic since the timer last looked
QUIET: Final = 1  # none since the last look
IDLE: Final = 0  # none for two looks: it gave up its ciphers and grown tables
ACTIVITY_NAMES: Final = {ACTIVE: "active", QUIET: "quiet", IDLE: "idle"}


# `ServerSession.opening`: no unreliable message sent yet; the opening is over.
OPENING: Final = -1
OPEN: Final = -2


class ServerSession(ReplayWindow):
    """One authenticated peer (mutable, one per session: not per packet).

    It is its own replay window (`is_replay`, `mark`: the sequences accepted from
    the peer), which saves an idle session an object of its own.
    """

    __slots__ = (
        "activity",
        "address",
        "closed",
        "dirty",
        "grid",
        "id",
        "in_cipher_queue",
        "keepalive",
        "last_recv",
        "last_sent",
        "malformed",
        "match_id",
        "opening",
        "payloads",
        "player_id",
        "reliability",
        "rx",
        "rx_key",
        "sends",
        "timeout",
        "token_nonce",
        "tx",
        "tx_key",
        "tx_seq",
        "wake",
    )

    def __init__(self, session_id: int, address: Address, player_id: str, match_id: str,
                 cookie: CookieContents, reliability: ReliabilityLayer, tx_seq: int,
                 now: float) -> None:
        self.id = session_id
        self.address = address
        self.player_id = player_id
        self.match_id = match_id
        self.token_nonce = cookie.token_nonce
        self.rx_key = cookie.client_to_server_key
        self.tx_key = cookie.server_to_client_key
        # Cipher objects (about 2.5 KB each): made once per key, kept while the
        # session carries payloads and is among the endpoint's recently active
        # ones (see SessionCiphers). `activity`: ACTIVE, QUIET or IDLE (above).
        # `payloads`: payload packets (both ways) since the session was last
        # idle; only a warm session (WARM_PAYLOADS of them) keeps cipher objects,
        # so sessions that exchange a first state and go quiet (a crowd
        # connecting at once, say) never hold any.
        self.rx: Aead | None = None
        self.tx: Aead | None = None
        self.activity = ACTIVE
        self.payloads = 0
        self.in_cipher_queue = False  # in the endpoint's queue of cipher holders
        self.tx_seq = tx_seq
        # The packet type its payloads go in: PAYLOAD, or what its keepalive said
        # the client reads (SHORT_PAYLOAD, SLIM_PAYLOAD: docs/protocol.md §5.9, §5.10).
        self.sends = PAYLOAD
        ReplayWindow.__init__(self)
        self.reliability = reliability
        self.timeout = cookie.timeout_ms / 1000.0
        # Set by the endpoint: its keepalive interval, shortened for a short timeout,
        # and the timer grid (0: exact timers, for intervals too short to round).
        self.keepalive = self.timeout / KEEPALIVES_PER_TIMEOUT
        self.grid = 0.0
        self.last_recv = now
        self.last_sent = now
        self.wake = INF
        self.dirty = False
        self.closed = False
        # Malformed bodies received so far (`MALFORMED_BODIES`).
        self.malformed = 0
        # The session's opening (see `ServerEndpoint.send_message`): OPENING
        # until its first unreliable message, then the reliable mark the peer must
        # acknowledge before unreliable messages go unreliably; _OPEN after that.
        self.opening = OPENING

    @property
    def warm(self) -> bool:
        """Carried enough payloads since it was last idle to keep cipher objects."""
        return self.payloads >= WARM_PAYLOADS
