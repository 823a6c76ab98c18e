"""The player's side of the UDP session protocol, sans-I/O: `ClientConnection`.

A connection presents one public connect token to the host address(es) named
in it, in order: `request` at 10 Hz until a `challenge`, then `response` at
10 Hz until the `welcome`. A `denied` or a silent host after `attempt_timeout`
moves on to the next address; when none is left the connection fails. Once
connected it carries the reliability layer's bodies in `payload` packets,
sends keepalives when idle, and ends on timeout, on the host's `disconnect`,
or on `disconnect()`. Same shape as the server endpoint: bytes and `now` in,
datagrams and events out. Wire format: docs/protocol.md.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from vinom.protocol.config import ClientConfig
from vinom.protocol.crypto import InvalidTag, new_aead
from vinom.protocol.events import (
    RELIABLE,
    UNRELIABLE,
    ConnectFailed,
    MessageReceived,
    SessionClosed,
    SessionConnected,
)
from vinom.protocol.handover import SessionHandover
from vinom.protocol.layer import ReliabilityFactory, default_reliability
from vinom.protocol.reliability import Reliability
from vinom.protocol.reliability_wire import body_of_slim, slim_body
from vinom.protocol.replay import ReplayWindow
from vinom.protocol.tokens import PublicToken
from vinom.protocol.wire import (
    CHALLENGE,
    DENIED,
    DISCONNECT,
    DROP_DECRYPT_FAILED,
    DROP_MALFORMED_BODY,
    DROP_REPLAYED,
    DROP_TOO_SHORT,
    DROP_UNEXPECTED,
    DROP_UNKNOWN_TYPE,
    DROP_WRONG_DIRECTION,
    DROP_WRONG_SOURCE,
    HEADER,
    HEADER_SIZE,
    KEEPALIVE,
    MIN_SEALED_PACKET,
    MIN_SHORT_PAYLOAD,
    NONCE,
    NONCE_DOMAIN_SESSION,
    NONCE_DOMAIN_STATELESS,
    PAYLOAD,
    READS_SHORT,
    READS_SLIM,
    REQUEST,
    RESPONSE,
    SEQUENCE,
    SHORT_HEADER,
    SHORT_HEADER_SIZE,
    SHORT_PAYLOAD,
    SLIM_PAYLOAD,
    TAG_SIZE,
    WELCOME,
    WELCOME_BODY,
    full_sequence,
)

Address = Any
Event = SessionConnected | ConnectFailed | MessageReceived | SessionClosed

# Connection states.
REQUESTING = "requesting"
RESPONDING = "responding"
CONNECTED = "connected"
CLOSED = "closed"  # was connected, session over
FAILED = "failed"  # never connected

_MIN_TIMER_DELAY = 0.001
# Keepalives offering short and slim payloads (docs/protocol.md §5.9, §5.10): one
# at the welcome, then one a second until a short or slim payload comes; a host
# that never sends one (before them) costs a session these few.
SHORT_OFFERS = 4
SHORT_OFFER_INTERVAL = 1.0
_new_tuple = tuple.__new__
_INF = float("inf")


class ClientConnection:
    """One client's session with one game host (see module docstring).

    `addresses` overrides the token's hosts (the Twisted adapter passes them
    resolved to IP addresses, in the token's order). `wall_clock` is unix time
    for the token's expiry; `random_bytes` seeds the first sequence number
    (inject it only for test vectors).
    """

    def __init__(
        self,
        token: PublicToken,
        now: float,
        *,
        config: ClientConfig | None = None,
        addresses: Sequence[Address] | None = None,
        wall_clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
        reliability_factory: ReliabilityFactory = default_reliability,
    ) -> None:
        self.token = token
        self.config = config or ClientConfig()
        self._wall_clock = wall_clock
        if addresses is None:
            addresses = [(h.host, h.port) for h in token.hosts]
        if not addresses:
            raise ValueError("no host address to connect to")
        self._addresses = list(addresses)
        self._index = 0
        self.state = REQUESTING
        self.session_id: int | None = None
        self.server_time: float | None = None
        self._tx = new_aead(token.client_to_server_key)
        self._rx = new_aead(token.server_to_client_key)
        # A random first sequence: a second attempt with the same token never
        # reuses a (key, nonce) pair even though it starts afresh.
        self._tx_seq = int.from_bytes(random_bytes(6), "little")
        self._window = ReplayWindow()
        # Short and slim payloads (docs/protocol.md §5.9, §5.10): what we offer, offers
        # left to make, when the next is due (from the welcome), and the type our
        # payloads go in (that of the first short or slim one that came).
        config = self.config
        offer = (READS_SHORT if config.short_payloads else 0) | (
            READS_SLIM if config.slim_payloads else 0
        )
        self._offer = bytes((offer,))
        self._offers = SHORT_OFFERS if offer else 0
        self._offer_due = _INF
        self._sends = PAYLOAD
        self._challenge_seq = -1
        self.reliability = reliability_factory(now)
        self._request = token.request_packet()
        self._response: bytes | None = None
        self._timeout = token.timeout_ms / 1000.0
        # Heard at least three times per timeout, so a lost keepalive or two never
        # ends the session, whatever timeout the token sets.
        self._keepalive = min(self.config.keepalive_interval, self._timeout / 3)
        self._attempt_timeout = self.config.attempt_timeout_for(self._timeout)
        self._attempt_deadline = now + self._attempt_timeout
        self._next_handshake = now
        self._last_recv = now
        self._last_sent = now
        self._dirty = False
        self._now = now
        self._out: list[tuple[bytes, Address]] = []
        self._events: deque[Event] = deque()
        self.drops: Counter[str] = Counter()
        self._handshake(now)

    # -- public API -------------------------------------------------------

    @property
    def server_address(self) -> Address:
        """The host address currently tried, or connected to."""
        return self._addresses[self._index]

    @property
    def is_connected(self) -> bool:
        return self.state == CONNECTED

    def next_event(self) -> Event | None:
        events = self._events
        return events.popleft() if events else None

    def send_message(self, channel: int, data: bytes) -> None:
        """Queue a message (sent once connected, if not yet); ValueError when closed."""
        if self.state in (CLOSED, FAILED):
            raise ValueError("the connection is closed")
        if channel == UNRELIABLE:
            self.reliability.send_unreliable(data)
        elif channel == RELIABLE:
            self.reliability.send_reliable(data)
        else:
            raise ValueError(f"no channel {channel}")
        self._dirty = True

    def set_ack_delays(self, own_s: float, peer_s: float) -> None:
        """Set this session's ack delays (docs/protocol.md section 13.8).

        `own_s`: how long the client holds an ack it owes, hoping to piggyback it
        on a message it will send anyway (in a ticking room: one tick interval, so
        the ack rides on its next input); `peer_s`: how long the host may hold its
        acks (one snapshot interval there). Each in [0, 0.1] s, else ValueError.
        Kept across the hosts a multi-host token tries (one layer per connection).
        """
        self.reliability.set_ack_delays(own_s, peer_s)

    def disconnect(self) -> None:
        """End the session: `disconnect` sent redundantly; abandon a handshake in progress."""
        if self.state == CONNECTED:
            if self._dirty:
                # Messages queued just before (a game's "leave") go out first, once.
                self._flush(self._now)
            for _ in range(self.config.disconnect_redundancy):
                self._seal(DISCONNECT, b"")
            self._close("closed")
        elif self.state in (REQUESTING, RESPONDING):
            self._fail("cancelled")

    def hand_over(self) -> SessionHandover:
        """Give this connected session to another driver (vinom.protocol.handover).

        For load generators that speak a subset of the protocol more cheaply.
        Raises ValueError unless connected, with vinom's `Reliability` layer at
        rest. The connection is closed afterwards without telling the host and
        sends nothing more.
        """
        reliability = self.reliability
        if self.state != CONNECTED:
            raise ValueError("the connection has not completed its handshake")
        if not isinstance(reliability, Reliability):
            raise ValueError("the connection does not use vinom's Reliability layer")
        handover = SessionHandover(
            send_aead=self._tx,
            receive_aead=self._rx,
            next_packet_sequence=self._tx_seq,
            replay_window=self._window,
            reliability=reliability.hand_over(),
            sends_short=self._sends != PAYLOAD,
            sends_slim=self._sends == SLIM_PAYLOAD,
        )
        self.state = CLOSED
        self._window = ReplayWindow()
        self._out = []
        self._dirty = False
        return handover

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Address]]:
        if now is None:
            now = self._now
        else:
            self._now = now
        if self._dirty and self.state == CONNECTED:
            self._flush(now)
        out = self._out
        self._out = []
        return out

    def get_timer(self) -> float | None:
        state = self.state
        if state == CONNECTED:
            when = self._last_sent + self._keepalive
            deadline = self._last_recv + self._timeout
            if deadline < when:
                when = deadline
            due = self.reliability.next_timer()
            if due is not None and due < when:
                when = due
            if self._offers and self._offer_due < when:
                when = self._offer_due
            floor = self._now + _MIN_TIMER_DELAY
            return when if when > floor else floor
        if state in (REQUESTING, RESPONDING):
            return min(self._next_handshake, self._attempt_deadline)
        return None

    def handle_timer(self, now: float) -> None:
        self._now = now
        state = self.state
        if state == CONNECTED:
            if now - self._last_recv >= self._timeout:
                self._close("timeout")
                return
            due = self.reliability.next_timer()
            if due is not None and due <= now:
                self.reliability.handle_timer(now)
            self._flush(now)
        elif state in (REQUESTING, RESPONDING):
            if now >= self._attempt_deadline:
                self._next_address(now, "timeout")
            elif now >= self._next_handshake:
                self._handshake(now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Take one datagram; anything not from the host, or not authentic, is dropped."""
        self._now = now
        target = self._addresses[self._index]
        if addr != target and (addr[0], addr[1]) != (target[0], target[1]):
            self.drops[DROP_WRONG_SOURCE] += 1
            return
        size = len(data)
        kind = data[0] if data else -1
        if size < (MIN_SHORT_PAYLOAD if kind >= SHORT_PAYLOAD else MIN_SEALED_PACKET):
            self.drops[DROP_TOO_SHORT] += 1
            return
        state = self.state
        if kind >= PAYLOAD:
            # A slim payload unasked for is unknown too: this side may not read it.
            if kind > SHORT_PAYLOAD and (kind > SLIM_PAYLOAD or not self.config.slim_payloads):
                self.drops[DROP_UNKNOWN_TYPE] += 1
                return
            if state != CONNECTED:
                self.drops[DROP_UNEXPECTED] += 1
                return
            slim = kind == SLIM_PAYLOAD
            if kind >= SHORT_PAYLOAD:
                seq = full_sequence(SHORT_HEADER.unpack_from(data)[1], self._window.latest)
                if seq < 0 or self._window.is_replay(seq):
                    self.drops[DROP_REPLAYED] += 1
                    return
                plain = self._open(NONCE_DOMAIN_SESSION, seq, data[SHORT_HEADER_SIZE:],
                                   HEADER.pack(kind, seq))  # fmt: skip
                if plain is None:
                    return
                if self._sends == PAYLOAD:
                    self._sends = kind
                    self._offers = 0
                kind = PAYLOAD
            else:
                seq = SEQUENCE.unpack_from(data, 1)[0]
                if self._window.is_replay(seq):
                    self.drops[DROP_REPLAYED] += 1
                    return
                plain = self._open(NONCE_DOMAIN_SESSION, seq, data[HEADER_SIZE:],
                                   data[:HEADER_SIZE])  # fmt: skip
                if plain is None:
                    return
            self._window.mark(seq)  # only now: a forged packet must not move the window
            self._last_recv = now
            if kind == PAYLOAD:
                body = body_of_slim(plain) if slim else plain
                messages = None if body is None else self.reliability.receive_body(body, now)
                if messages is None:
                    self.drops[DROP_MALFORMED_BODY] += 1
                    return
                sid = self.session_id or 0
                append = self._events.append
                for channel, message in messages:
                    # MessageReceived(...) without the Python-level __new__ frame.
                    append(_new_tuple(MessageReceived, (sid, channel, message)))
                self._dirty = True
            elif kind == DISCONNECT:
                self._close("disconnect")
            return
        if kind == CHALLENGE:
            self._on_challenge(data)
        elif kind == WELCOME:
            self._on_welcome(data, now)
        elif kind == DENIED:
            self._on_denied(data, now)
        elif kind in (REQUEST, RESPONSE):
            self.drops[DROP_WRONG_DIRECTION] += 1
        else:  # pragma: no cover - every byte value is handled above
            self.drops[DROP_UNKNOWN_TYPE] += 1

    # -- handshake --------------------------------------------------------

    def _handshake(self, now: float) -> None:
        if self.state == REQUESTING:
            if self._wall_clock() >= self.token.expires_at:
                self._fail("token_expired")
                return
            self._out.append((self._request, self._addresses[self._index]))
        elif self._response is not None:
            self._out.append((self._response, self._addresses[self._index]))
        self._last_sent = now
        self._next_handshake = now + self.config.handshake_interval

    def _open_stateless(self, data: bytes) -> bytes | None:
        seq = SEQUENCE.unpack_from(data, 1)[0]
        if seq <= self._challenge_seq:
            self.drops[DROP_REPLAYED] += 1
            return None
        plain = self._open(NONCE_DOMAIN_STATELESS, seq, data[HEADER_SIZE:], data[:HEADER_SIZE])
        if plain is not None:
            self._challenge_seq = seq
        return plain

    def _open(self, domain: int, seq: int, sealed: bytes, header: bytes) -> bytes | None:
        """A packet from the host opened (`header` authenticated), or None: counted."""
        try:
            return self._rx.decrypt(NONCE.pack(domain, seq), sealed, header)
        except InvalidTag:
            self.drops[DROP_DECRYPT_FAILED] += 1
            return None

    def _on_challenge(self, data: bytes) -> None:
        if self.state not in (REQUESTING, RESPONDING):
            self.drops[DROP_UNEXPECTED] += 1
            return
        cookie = self._open_stateless(data)
        if cookie is None:
            return
        seq = self._tx_seq
        self._tx_seq = seq + 1
        header = HEADER.pack(RESPONSE, seq)
        authenticated = header + cookie
        # The cookie travels as sealed by the host (only the host can open it);
        # the tag proves that this client holds the client-to-server key.
        tag = self._tx.encrypt(NONCE.pack(NONCE_DOMAIN_SESSION, seq), b"", authenticated)
        assert len(tag) == TAG_SIZE
        self._response = authenticated + tag
        self.state = RESPONDING
        self._handshake(self._now)

    def _on_denied(self, data: bytes, now: float) -> None:
        if self.state not in (REQUESTING, RESPONDING):
            self.drops[DROP_UNEXPECTED] += 1
            return
        if self._open_stateless(data) is None:
            return
        self._next_address(now, "denied")

    def _on_welcome(self, data: bytes, now: float) -> None:
        if self.state != RESPONDING:
            self.drops[DROP_UNEXPECTED] += 1
            return
        seq = SEQUENCE.unpack_from(data, 1)[0]
        plain = self._open(NONCE_DOMAIN_SESSION, seq, data[HEADER_SIZE:], data[:HEADER_SIZE])
        if plain is None:
            return
        if len(plain) != WELCOME_BODY.size:
            self.drops[DROP_MALFORMED_BODY] += 1
            return
        self.session_id, self.server_time = WELCOME_BODY.unpack(plain)
        self._window.mark(seq)
        self._offer_due = now
        self.state = CONNECTED
        self._response = None
        self._last_recv = now
        self._events.append(
            SessionConnected(self.session_id, self.token.player_id, self.token.match_id,
                             (self.server_address[0], self.server_address[1]))
        )
        # Anything queued before the welcome goes out now.
        self._dirty = True

    def _next_address(self, now: float, reason: str) -> None:
        if self._index + 1 >= len(self._addresses):
            self._fail(reason)
            return
        self._index += 1
        self.state = REQUESTING
        self._response = None
        self._challenge_seq = -1
        self._attempt_deadline = now + self._attempt_timeout
        self._handshake(now)

    def _fail(self, reason: str) -> None:
        self.state = FAILED
        self._response = None
        self._events.append(ConnectFailed(reason))

    # -- session ----------------------------------------------------------

    def _seal(self, kind: int, plain: bytes) -> None:
        seq = self._tx_seq
        self._tx_seq = seq + 1
        if kind == PAYLOAD and self._sends != PAYLOAD:
            kind = self._sends
            if kind == SLIM_PAYLOAD:
                plain = slim_body(plain)
            sealed = self._tx.encrypt(NONCE.pack(NONCE_DOMAIN_SESSION, seq), plain,
                                      HEADER.pack(kind, seq))  # fmt: skip
            packet = SHORT_HEADER.pack(kind, seq & 0xFFFF) + sealed
        else:
            header = HEADER.pack(kind, seq)
            packet = header + self._tx.encrypt(NONCE.pack(NONCE_DOMAIN_SESSION, seq), plain,
                                               header)  # fmt: skip
        self._out.append((packet, self._addresses[self._index]))

    def _flush(self, now: float) -> None:
        self._dirty = False
        bodies = self.reliability.build_bodies(now)
        if bodies:
            for body in bodies:
                self._seal(PAYLOAD, body)
            self._last_sent = now
        elif now - self._last_sent >= self._keepalive:
            self._seal(KEEPALIVE, b"")
            self._last_sent = now
        if self._offers and now >= self._offer_due:
            self._offers -= 1
            self._offer_due = now + SHORT_OFFER_INTERVAL
            self._seal(KEEPALIVE, self._offer)
            self._last_sent = now

    def _close(self, reason: str) -> None:
        self.state = CLOSED
        self._events.append(SessionClosed(self.session_id or 0, reason))
