"""The game host's side of the UDP session protocol, sans-I/O: `ServerEndpoint`.

One endpoint serves one UDP port and any number of peers. Feed it datagrams
with `receive_datagram(data, addr, now)`; collect what to transmit with
`datagrams_to_send()`, what happened with `next_event()`, and drive its timers
with `get_timer()` / `handle_timer(now)`. It never does I/O, never raises on
bad input (bad packets are dropped and counted in `drops`) and never answers a
stranger with more bytes than the stranger sent.

Until a client echoes a valid cookie, the endpoint keeps nothing about it: the
cookie carries the session's keys and identity, sealed under a host-local key.
Wire format: docs/protocol.md.

Its parts, one module each: `ServerSession`, what it keeps per peer
(server_session.py); `SessionCiphers`, who keeps cipher objects
(server_ciphers.py); `SessionTimers`, when each session wakes (server_timers.py);
`SpentTokens`, the tokens that opened a session (spent_tokens.py).
This module is the endpoint itself: the datagram path, the handshake and the
sessions' flushes.

Installed builds compile these modules with mypyc (setup.py, COMPILED): there their
declared types are checked at run time and their classes' methods cannot be
replaced on an instance. tox runs the suite on both builds.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from functools import partial

from attrs import evolve

from vinom.protocol.address import HostAddress
from vinom.protocol.config import HostConfig
from vinom.protocol.cookies import MAX_COOKIE, MIN_COOKIE, CookieContents, CookieJar
from vinom.protocol.crypto import Aead, InvalidTag, new_aead
from vinom.protocol.events import (
    RELIABLE,
    UNRELIABLE,
    MessageReceived,
    SessionClosed,
    SessionConnected,
    SessionInfo,
)
from vinom.protocol.interfaces import Admission, Admit
from vinom.protocol.layer import ReliabilityFactory, ReliabilityLayer, host_reliability
from vinom.protocol.reliability import SendQueueFull
from vinom.protocol.reliability_wire import body_of_slim, slim_body
from vinom.protocol.server_ciphers import RECENT_CIPHERS, SessionCiphers
from vinom.protocol.server_session import (
    ACTIVE,
    ACTIVITY_NAMES,
    IDLE,
    KEEPALIVES_PER_TIMEOUT,
    MALFORMED_BODIES,
    OPEN,
    OPENING,
    QUIET,
    WARM_PAYLOADS,
    Address,
    ServerSession,
)
from vinom.protocol.server_timers import TIMER_GRID, SessionTimers
from vinom.protocol.spent_tokens import SpentTokens
from vinom.protocol.tokens import PrivateToken
from vinom.protocol.wire import (
    CHALLENGE,
    DENIED,
    DISCONNECT,
    DROP_ALREADY_CONNECTED,
    DROP_COOKIE_INVALID,
    DROP_DECRYPT_FAILED,
    DROP_FLOOD,
    DROP_HOST_FULL,
    DROP_MALFORMED_BODY,
    DROP_NO_SESSION,
    DROP_NOT_ADMITTED,
    DROP_REPLAYED,
    DROP_REQUEST_PADDING,
    DROP_REQUEST_SIZE,
    DROP_RESPONSE_INVALID,
    DROP_TOKEN_EXPIRED,
    DROP_TOKEN_INVALID,
    DROP_TOKEN_MALFORMED,
    DROP_TOKEN_REUSED,
    DROP_TOO_SHORT,
    DROP_UNKNOWN_TYPE,
    DROP_WRONG_APPLICATION,
    DROP_WRONG_DIRECTION,
    DROP_WRONG_HOST,
    DROP_WRONG_VERSION,
    HEADER,
    HEADER_SIZE,
    KEEPALIVE,
    MIN_SEALED_PACKET,
    MIN_SHORT_PAYLOAD,
    NONCE,
    NONCE_DOMAIN_SESSION,
    NONCE_DOMAIN_STATELESS,
    PADDING_START,
    PAYLOAD,
    READS_SHORT,
    READS_SLIM,
    REQUEST,
    REQUEST_PREFIX,
    REQUEST_PREFIX_SIZE,
    REQUEST_SIZE,
    RESPONSE,
    SEQUENCE,
    SHORT_HEADER,
    SHORT_HEADER_SIZE,
    SHORT_PAYLOAD,
    SLIM_PAYLOAD,
    TAG_SIZE,
    WELCOME,
    WELCOME_BODY,
    address_bytes,
    full_sequence,
)

# Names other modules and the tests import from here.
__all__ = [
    "KEEPALIVES_PER_TIMEOUT",
    "RECENT_CIPHERS",
    "WARM_PAYLOADS",
    "Address",
    "Event",
    "ServerEndpoint",
]

Event = SessionConnected | SessionClosed | MessageReceived

_INF = float("inf")
_new_tuple = tuple.__new__
_pack_header = HEADER.pack
_pack_short = SHORT_HEADER.pack
_pack_nonce = NONCE.pack
_EMPTY_PLAIN = (b"",)  # a keepalive's one empty plaintext
_MIN_RESPONSE = HEADER_SIZE + MIN_COOKIE + TAG_SIZE
_MAX_RESPONSE = HEADER_SIZE + MAX_COOKIE + TAG_SIZE
_ZERO_PADDING = bytes(REQUEST_SIZE - PADDING_START)
class ServerEndpoint:
    """Serves one game host port: handshakes, sessions, timers (see module docstring).

    `admit(player_id, match_id, now)` decides, synchronously, whether a
    token's player may connect (the endpoint's owner supplies it). `wall_clock`
    gives unix time for token expiry (timers use the `now` arguments instead).
    `random_bytes` seeds keys and counters; inject it only for test vectors.
    `reliability_factory` makes each session's reliability layer (default: one
    with the config's receive limits).
    """

    def __init__(
        self,
        config: HostConfig,
        admit: Admit,
        *,
        wall_clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
        reliability_factory: ReliabilityFactory | None = None,
    ) -> None:
        self.config = config
        self._admit = admit
        self._wall_clock = wall_clock
        self._random_bytes = random_bytes
        self._reliability_factory = reliability_factory or partial(
            host_reliability, config.max_receive_message, config.max_receive_buffer
        )
        protocol = config.protocol
        self._version = protocol.protocol_version
        self._application_id = protocol.application_id
        self._token_aead = new_aead(protocol.token_key)
        self._addresses = frozenset((a.host, a.port) for a in config.addresses)
        self._keepalive = config.keepalive_interval
        self._cookies = CookieJar(config.cookie_rotation, random_bytes)
        # Host-wide sequence of stateless replies (challenge, denied) and cookies;
        # a random start keeps nonces unique across restarts of the host.
        self._stateless_seq = _random_u48(random_bytes)
        self._next_session_id = 1
        self._sessions: dict[int, ServerSession] = {}
        # Who keeps cipher objects (vinom.protocol.server_ciphers).
        self._ciphers = SessionCiphers(self._sessions, config.cipher_sessions)
        self._by_address: dict[Address, ServerSession] = {}
        self._by_player: dict[str, ServerSession] = {}
        # Nonces of tokens that opened a session, until they expire (one token,
        # one session: vinom.protocol.spent_tokens).
        self._spent_tokens = SpentTokens()
        # Sessions' wake-ups (vinom.protocol.server_timers).
        self._timers = SessionTimers(self._sessions)
        self._dirty: list[ServerSession] = []
        self._out: list[tuple[bytes, Address]] = []
        # What happened, oldest first: next_event() pops it; an adapter draining
        # many may pop this deque itself (one call fewer per event).
        self.events: deque[Event] = deque()
        self._now = 0.0
        self.drops: Counter[str] = Counter()
        self.datagrams_received = 0
        self.datagrams_sent = 0
        # Traffic before a session is authenticated: replies must never exceed
        # what strangers sent (anti-amplification), so both sides are counted.
        self.unauthenticated_bytes_received = 0
        self.unauthenticated_bytes_sent = 0
        self.challenges_sent = 0
        self.denials_sent = 0
        self.welcomes_sent = 0

    # -- public API -------------------------------------------------------

    def set_addresses(self, addresses: tuple[HostAddress, ...]) -> None:
        """Change the addresses tokens must name (e.g. once a port-0 socket is bound)."""
        self.config = evolve(self.config, addresses=addresses)
        self._addresses = frozenset((a.host, a.port) for a in self.config.addresses)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def session_ids(self) -> list[int]:
        return list(self._sessions)

    def held_entries(self) -> int:
        """Entries the endpoint keeps for peers: sessions and their indexes, spent
        token nonces and the seconds they expire at, timers. Strangers' datagrams
        must never grow it (for monitoring, and the adversarial tests)."""
        return (len(self._sessions) + len(self._by_address) + len(self._by_player)
                + self._spent_tokens.entries()
                + self._timers.entries() + len(self._dirty))

    def session_address(self, session_id: int) -> Address | None:
        s = self._sessions.get(session_id)
        return None if s is None else s.address

    def session_info(self, session_id: int) -> SessionInfo | None:
        """What the endpoint knows of one session now (for monitoring and tests)."""
        s = self._sessions.get(session_id)
        if s is None:
            return None
        return SessionInfo(
            session_id=s.id, player_id=s.player_id, match_id=s.match_id,
            address=(s.address[0], s.address[1]), activity=ACTIVITY_NAMES[s.activity],
            warm=s.warm, receive_cipher=s.rx is not None, send_cipher=s.tx is not None,
            last_received=s.last_recv, next_look=s.wake, latest_sequence=s.latest,
        )

    def reliability(self, session_id: int) -> ReliabilityLayer | None:
        """The session's reliability layer (RTT, loss and resend statistics)."""
        s = self._sessions.get(session_id)
        return None if s is None else s.reliability

    def set_ack_delays(self, session_id: int, own_s: float, peer_s: float) -> bool:
        """Set a session's ack delays (docs/protocol.md section 13.8); False if it is gone.

        `own_s`: how long the host holds an ack it owes this client, hoping to
        piggyback it on a message it will send anyway (a ticking room: one snapshot
        interval, so the ack rides on the next state). `peer_s`: how long the
        client may hold its acks (a ticking room: one tick interval); the resend
        timer allows for it. Each in [0, 0.1] s, else ValueError.
        """
        s = self._sessions.get(session_id)
        if s is None:
            return False
        s.reliability.set_ack_delays(own_s, peer_s)
        # A shorter own delay may bring an owed ack forward: look again.
        self._timers.schedule(s, self._now, s.reliability.next_timer())
        return True

    def next_event(self) -> Event | None:
        events = self.events
        return events.popleft() if events else None

    def send_message(self, session_id: int, channel: int, data: bytes) -> bool:
        """Queue `data` for the session on `channel`; False if there is no such session.

        ValueError for an unknown channel or a message over the channel's size
        limit. A session whose peer has left too many reliable bytes unacked is
        closed (SessionClosed reason `overflow`) and False returned.

        Channel 0 carries states, where the newest wins: a message queued on it
        replaces any channel-0 message of the session still queued unsent (a
        state superseded before it left is not sent).

        The opening of a session is delivered first: until the peer has
        acknowledged every reliable message queued before the session's first
        unreliable one (a game host's `welcome`), unreliable messages go on the
        reliable channel, in order behind them. So no unreliable message
        overtakes the opening, neither in one body (where unreliable messages
        come first) nor past a lost packet. The mark is set once: on a link
        whose round trip is longer than the gap between states, a mark that
        moved with each state would keep the channel reliable for good. After
        the opening, a state sent this way may still arrive after a newer one
        sent unreliably; clients drop a state not newer than the one they hold.
        """
        s = self._sessions.get(session_id)
        if s is None:
            return False
        try:
            if channel == UNRELIABLE:
                if s.opening != OPEN and self._opening(s):
                    s.reliability.send_reliable(data)
                else:
                    s.reliability.replace_unreliable(data)
            elif channel == RELIABLE:
                s.reliability.send_reliable(data)
            else:
                raise ValueError(f"no channel {channel}")
        except SendQueueFull:
            # The peer stopped acking while we kept sending: it can no longer get
            # every reliable message, so the session is over.
            self._remove(s, "overflow")
            return False
        if not s.dirty:
            s.dirty = True
            self._dirty.append(s)
        return True

    @staticmethod
    def _opening(s: ServerSession) -> bool:
        """True while `s`'s opening is not acknowledged (see `send_message`)."""
        reliability = s.reliability
        if s.opening == OPENING:
            s.opening = reliability.reliable_mark()
        if reliability.reliable_acked(s.opening):
            s.opening = OPEN
            return False
        return True

    def close_session(self, session_id: int) -> None:
        """End a session: `disconnect` sent redundantly, then a SessionClosed('closed')."""
        s = self._sessions.get(session_id)
        if s is not None:
            self._remove(s, "closed")

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Address]]:
        """Everything due for transmission now, as (datagram, address) pairs."""
        if now is None:
            now = self._now
        else:
            self._now = now
        if self._dirty:
            dirty = self._dirty
            self._dirty = []
            for s in dirty:
                s.dirty = False
                if not s.closed:
                    self._flush_session(s, now)
        out = self._out
        self._out = []
        self.datagrams_sent += len(out)
        return out

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None if nothing is pending."""
        return self._timers.next_wake()

    def handle_timer(self, now: float) -> None:
        """Timeouts, keepalives and the reliability layers' resends due at `now`."""
        self._now = now
        timers = self._timers
        sessions = self._sessions
        while True:
            due = timers.pop_due(now)
            if due is None:
                return
            when, sids = due
            for sid in sids:
                s = sessions.get(sid)
                if s is None or s.wake != when:
                    continue
                self._wake(s, now)

    def _wake(self, s: ServerSession, now: float) -> None:
        """A session's wake-up: its timeout, keepalive, resends, and giving back
        what an idle session need not hold."""
        s.wake = _INF
        if now - s.last_recv >= s.timeout:
            self._remove(s, "timeout")
            return
        activity = s.activity
        if activity == ACTIVE:
            s.activity = QUIET
            if s.reliability.next_timer() is None:
                # Nothing in flight: give back what the last burst grew now,
                # not an idle round later, so that a crowd that connects,
                # takes its first state and waits never holds it all at once
                # (resident memory keeps its peak). The peer may still ack
                # our last bodies: their records stay, for the statistics.
                s.reliability.compact(forget_records=False)
        elif activity == QUIET:
            # No payload since the timer last looked (a keepalive interval at
            # most): idle sessions hold no cipher objects, nor grown tables.
            s.activity = IDLE
            s.payloads = 0
            s.rx = s.tx = None
            s.reliability.compact()
        layer_due = s.reliability.next_timer()
        if layer_due is not None and layer_due <= now:
            s.reliability.handle_timer(now)
        self._flush_session(s, now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Take one datagram from `addr`; never raises on what is in it."""
        self._now = now
        self.datagrams_received += 1
        size = len(data)
        if size < 1:
            self._drop(DROP_TOO_SHORT, size)
            return
        kind = data[0]
        if kind >= PAYLOAD:
            # The hot path: one dict lookup, one replay check, one AEAD open.
            s = self._by_address.get(addr)
            if s is None or kind > SLIM_PAYLOAD:
                self._drop(DROP_NO_SESSION if kind <= SLIM_PAYLOAD else DROP_UNKNOWN_TYPE, size)
                return
            slim = kind == SLIM_PAYLOAD
            if slim or kind == SHORT_PAYLOAD:
                if size < MIN_SHORT_PAYLOAD:
                    self._drop(DROP_TOO_SHORT, size)
                    return
                seq = full_sequence(data[1] | data[2] << 8, s.latest)
                if seq < 0:  # none
                    self._drop(DROP_REPLAYED, size)
                    return
                sealed, associated = data[SHORT_HEADER_SIZE:], _pack_header(kind, seq)
                kind = PAYLOAD
            else:
                if size < MIN_SEALED_PACKET:
                    self._drop(DROP_TOO_SHORT, size)
                    return
                seq = SEQUENCE.unpack_from(data, 1)[0]
                sealed, associated = data[HEADER_SIZE:], data[:HEADER_SIZE]
            if s.is_replay(seq):
                self._drop(DROP_REPLAYED, size)
                return
            kept = s.rx
            # Without a kept cipher, a throwaway one, kept only if the tag verifies
            # and the packet is a payload of a warm session: a forged packet must not
            # evict another session's ciphers, and keepalives alone must not make an
            # idle session keep any.
            rx = kept if kept is not None else self._ciphers.recent(s.rx_key)
            try:
                plain = rx.decrypt(NONCE.pack(NONCE_DOMAIN_SESSION, seq), sealed, associated)
            except InvalidTag:
                self._drop(DROP_DECRYPT_FAILED, size)
                return
            if kept is None and kind == PAYLOAD:
                s.activity = ACTIVE  # first, so that keeping it does not evict it
                if s.payloads >= WARM_PAYLOADS:
                    self._ciphers.keep_rx(s, rx)
            s.mark(seq)  # only now: a forged packet must not move the window
            s.last_recv = now
            if kind == PAYLOAD:
                s.activity = ACTIVE
                s.payloads += 1
                body = body_of_slim(plain) if slim else plain
                messages = None if body is None else s.reliability.receive_body(body, now)
                if messages is None:
                    s.malformed += 1
                    if s.malformed > MALFORMED_BODIES:
                        # Its datagrams find no session from now on.
                        self.drops[DROP_FLOOD] += 1
                        self._remove(s, "flood")
                    else:
                        self.drops[DROP_MALFORMED_BODY] += 1
                    return
                if messages:
                    sid = s.id
                    append = self.events.append
                    for channel, message in messages:
                        # MessageReceived(...) without the Python-level __new__ frame.
                        append(_new_tuple(MessageReceived, (sid, channel, message)))
                if not s.dirty:
                    s.dirty = True
                    self._dirty.append(s)
            elif kind == DISCONNECT:
                self._remove(s, "disconnect")
            elif plain and s.sends == PAYLOAD:
                # A keepalive saying what the client reads: slim payloads before
                # short ones (its first offer decides).
                offer = plain[0]
                if offer & READS_SLIM:
                    s.sends = SLIM_PAYLOAD
                elif offer & READS_SHORT:
                    s.sends = SHORT_PAYLOAD
            return
        self.unauthenticated_bytes_received += size
        if kind == REQUEST:
            self._on_request(data, addr, now)
        elif kind == RESPONSE:
            self._on_response(data, addr, now)
        elif kind <= DENIED:
            self.drops[DROP_WRONG_DIRECTION] += 1
        else:  # pragma: no cover - every byte value is handled above
            self.drops[DROP_UNKNOWN_TYPE] += 1

    # -- handshake --------------------------------------------------------

    def check_request(self, data: bytes) -> PrivateToken | str:
        """The token of a `request` packet, or the drop reason why it opens nothing here.

        The checks of a UDP handshake's first step (size, version, application,
        expiry, padding, seal, host address, a player connected already, a token
        spent already), without admission. A game host core also uses it for a
        request presented over a reliable stream (a WebSocket), then
        `spend_request` once it opened a session with it.
        """
        if len(data) != REQUEST_SIZE or data[0] != REQUEST:
            return DROP_REQUEST_SIZE
        _, version, application_id, expires_at, token_nonce = REQUEST_PREFIX.unpack_from(data)
        if version != self._version:
            return DROP_WRONG_VERSION
        if application_id != self._application_id:
            return DROP_WRONG_APPLICATION
        if expires_at <= self._wall_clock():
            return DROP_TOKEN_EXPIRED
        if not data.endswith(_ZERO_PADDING):  # its length is REQUEST_SIZE: the padding
            return DROP_REQUEST_PADDING
        try:
            plain = self._token_aead.decrypt(
                token_nonce, data[REQUEST_PREFIX_SIZE:PADDING_START], data[1:21]
            )
        except InvalidTag:
            return DROP_TOKEN_INVALID
        token = PrivateToken.unpack(plain)
        if token is None:
            return DROP_TOKEN_MALFORMED
        addresses = self._addresses
        for h in token.hosts:
            if (h.host, h.port) in addresses:
                break
        else:
            return DROP_WRONG_HOST
        if token.player_id in self._by_player:
            return DROP_ALREADY_CONNECTED
        if token_nonce in self._spent_tokens:
            # One token, one session: a second session would reuse its keys.
            return DROP_TOKEN_REUSED
        return token

    def spend_request(self, data: bytes) -> None:
        """Mark the token of a checked `request` spent (until it expires): it opened a
        session elsewhere (a stream), so it opens none here, nor another stream."""
        _, _, _, expires_at, token_nonce = REQUEST_PREFIX.unpack_from(data)
        spent = self._spent_tokens
        spent.forget_expired(self._wall_clock())
        if token_nonce not in spent:
            spent.spend(token_nonce, expires_at)

    def _on_request(self, data: bytes, addr: Address, now: float) -> None:
        checked = self.check_request(data)
        if isinstance(checked, str):
            self.drops[checked] += 1
            return
        token = checked
        _, _, _, expires_at, token_nonce = REQUEST_PREFIX.unpack_from(data)
        verdict = self._admit(token.player_id, token.match_id, now)
        if verdict is not Admission.ACCEPT and verdict is not Admission.FULL:
            self.drops[DROP_NOT_ADMITTED] += 1
            return
        if len(self._sessions) >= self.config.max_sessions:
            self.drops[DROP_HOST_FULL] += 1
            return
        s2c = self._ciphers.for_handshake(token.server_to_client_key)
        if verdict is Admission.FULL:
            self._send_denied(s2c, addr)
            return
        seq = self._stateless_seq
        self._stateless_seq = seq + 1
        cookie = self._cookies.seal(
            CookieContents(expires_at, token_nonce, token.timeout_ms,
                           token.client_to_server_key, token.server_to_client_key,
                           token.player_id.encode("ascii"), token.match_id.encode("ascii"),
                           token.user_data),
            seq, address_bytes(addr), now,
        )
        header = HEADER.pack(CHALLENGE, seq)
        packet = header + s2c.encrypt(NONCE.pack(NONCE_DOMAIN_STATELESS, seq), cookie, header)
        self._send_unauthenticated(packet, addr)
        self.challenges_sent += 1

    def _send_denied(self, s2c: Aead, addr: Address) -> None:
        seq = self._stateless_seq
        self._stateless_seq = seq + 1
        header = HEADER.pack(DENIED, seq)
        packet = header + s2c.encrypt(NONCE.pack(NONCE_DOMAIN_STATELESS, seq), b"", header)
        self._send_unauthenticated(packet, addr)
        self.denials_sent += 1

    def _send_unauthenticated(self, packet: bytes, addr: Address) -> None:
        self.unauthenticated_bytes_sent += len(packet)
        self._out.append((packet, addr))

    def _on_response(self, data: bytes, addr: Address, now: float) -> None:
        size = len(data)
        if not _MIN_RESPONSE <= size <= _MAX_RESPONSE:
            self.drops[DROP_COOKIE_INVALID] += 1
            return
        cookie = self._cookies.open(data[HEADER_SIZE:-TAG_SIZE], address_bytes(addr), now)
        if cookie is None:
            self.drops[DROP_COOKIE_INVALID] += 1
            return
        seq = SEQUENCE.unpack_from(data, 1)[0]
        existing = self._by_address.get(addr)
        if existing is not None and existing.token_nonce == cookie.token_nonce:
            # Not kept: a resent response only earns the welcome again.
            rx = existing.rx or self._ciphers.for_handshake(existing.rx_key)
        else:
            rx = self._ciphers.for_handshake(cookie.client_to_server_key)
        try:
            rx.decrypt(NONCE.pack(NONCE_DOMAIN_SESSION, seq), data[-TAG_SIZE:], data[:-TAG_SIZE])
        except InvalidTag:
            self.drops[DROP_RESPONSE_INVALID] += 1
            return
        if existing is not None:
            if existing.token_nonce == cookie.token_nonce:
                # Our welcome was lost: say it again (smaller than the response).
                self._send_welcome(existing, now)
            else:
                self.drops[DROP_ALREADY_CONNECTED] += 1
            return
        if cookie.token_expires_at <= self._wall_clock():
            self.drops[DROP_TOKEN_EXPIRED] += 1
            return
        player_id = cookie.player_id.decode("ascii")
        match_id = cookie.match_id.decode("ascii")
        if player_id in self._by_player:
            self.drops[DROP_ALREADY_CONNECTED] += 1
            return
        if cookie.token_nonce in self._spent_tokens:
            self.drops[DROP_TOKEN_REUSED] += 1
            return
        verdict = self._admit(player_id, match_id, now)
        if verdict is Admission.FULL:
            self._send_denied(self._ciphers.for_handshake(cookie.server_to_client_key), addr)
            return
        if verdict is not Admission.ACCEPT:
            self.drops[DROP_NOT_ADMITTED] += 1
            return
        if len(self._sessions) >= self.config.max_sessions:
            self.drops[DROP_HOST_FULL] += 1
            return
        self._create_session(cookie, player_id, match_id, seq, addr, now)

    def _create_session(self, cookie: CookieContents, player_id: str, match_id: str,
                        response_seq: int, addr: Address, now: float) -> None:
        self._spent_tokens.forget_expired(self._wall_clock())
        sid = self._next_session_id
        self._next_session_id = sid + 1
        s = ServerSession(sid, addr, player_id, match_id, cookie, self._reliability_factory(now),
                     _random_u48(self._random_bytes), now)
        s.keepalive = min(self._keepalive, s.keepalive)
        if s.keepalive >= 8 * TIMER_GRID:
            s.grid = TIMER_GRID
        s.mark(response_seq)
        self._sessions[sid] = s
        self._by_address[addr] = s
        self._by_player[player_id] = s
        self._spent_tokens.spend(cookie.token_nonce, cookie.token_expires_at)
        self.events.append(
            SessionConnected(sid, player_id, match_id, (addr[0], addr[1]), bytes(cookie.user_data))
        )
        self._send_welcome(s, now)
        self._timers.schedule(s, now, s.reliability.next_timer())

    def _send_welcome(self, s: ServerSession, now: float) -> None:
        seq = s.tx_seq
        s.tx_seq = seq + 1
        header = HEADER.pack(WELCOME, seq)
        tx = s.tx or self._ciphers.for_handshake(s.tx_key)
        packet = header + tx.encrypt(NONCE.pack(NONCE_DOMAIN_SESSION, seq),
                                       WELCOME_BODY.pack(s.id, now), header)
        s.last_sent = now
        self._send_unauthenticated(packet, s.address)
        self.welcomes_sent += 1

    # -- sessions ---------------------------------------------------------

    def _seal_packets(self, s: ServerSession, kind: int, plains: Sequence[bytes], tx: Aead) -> None:
        """Seal one session packet of `kind` per plaintext, in order, with `tx`.

        The sequences are taken first, so that none is ever sealed twice; one call
        for all of a flush's bodies (the host's hot path), not one per body.
        """
        seq = s.tx_seq
        s.tx_seq = seq + len(plains)
        out = self._out  # (compiled, `out.append` is a C call; a bound `append` is not)
        address = s.address
        if kind == PAYLOAD and s.sends != PAYLOAD:
            kind = s.sends
            slim = kind == SLIM_PAYLOAD
            for plain in plains:
                associated = _pack_header(kind, seq)
                if slim:
                    plain = slim_body(plain)
                out.append((_pack_short(kind, seq & 0xFFFF)
                            + tx.encrypt(_pack_nonce(NONCE_DOMAIN_SESSION, seq), plain, associated),
                            address))  # fmt: skip
                seq += 1
            return
        for plain in plains:
            header = _pack_header(kind, seq)
            sealed = header + tx.encrypt(_pack_nonce(NONCE_DOMAIN_SESSION, seq), plain, header)
            out.append((sealed, address))
            seq += 1

    def _flush_session(self, s: ServerSession, now: float) -> None:
        bodies = s.reliability.build_bodies(now)
        if bodies:
            s.activity = ACTIVE
            s.payloads += len(bodies)
            tx = s.tx
            if tx is None:
                # Kept once the session is warm, else one throwaway for all of them.
                if s.payloads >= WARM_PAYLOADS:
                    tx = self._ciphers.make_tx(s)
                else:
                    tx = self._ciphers.recent(s.tx_key)
            self._seal_packets(s, PAYLOAD, bodies, tx)
            s.last_sent = now
        elif now - s.last_sent >= s.keepalive - s.grid:
            # Keepalives alone never make a session keep a cipher.
            self._seal_packets(s, KEEPALIVE, _EMPTY_PLAIN, s.tx or self._ciphers.recent(s.tx_key))
            s.last_sent = now
        due = s.reliability.next_timer()
        # Else the wake-up already set comes first: the keepalive and timeout times
        # only move later (last_sent and last_recv only grow), so only the
        # reliability layer can want an earlier one.
        if s.wake == _INF or (due is not None and due < s.wake):
            self._timers.schedule(s, now, due)

    def _remove(self, s: ServerSession, reason: str) -> None:
        if s.closed:
            return
        if reason != "disconnect":
            # The peer may still be listening; tell it, more than once in case of loss.
            tx = s.tx or self._ciphers.recent(s.tx_key)
            if reason == "closed" and s.dirty:
                # What the session was given last (a room's final phase, say) goes out
                # once, before the disconnects: nothing is sent after they are.
                bodies = s.reliability.build_bodies(self._now)
                if bodies:
                    self._seal_packets(s, PAYLOAD, bodies, tx)
            self._seal_packets(s, DISCONNECT, [b""] * self.config.disconnect_redundancy, tx)
        s.closed = True
        s.rx = s.tx = None
        self._ciphers.forget(s)
        del self._sessions[s.id]
        if self._by_address.get(s.address) is s:
            del self._by_address[s.address]
        if self._by_player.get(s.player_id) is s:
            del self._by_player[s.player_id]
        self.events.append(SessionClosed(s.id, reason))

    def _drop(self, reason: str, size: int) -> None:
        self.drops[reason] += 1
        self.unauthenticated_bytes_received += size


def _random_u48(random_bytes: Callable[[int], bytes]) -> int:
    return int.from_bytes(random_bytes(6), "little")
