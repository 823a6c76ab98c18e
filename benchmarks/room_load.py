"""Load side of the room scenarios (play, sessions): lean duel players over vinom sessions.

Each player is a `ClientConnection` in a `session_load.Driver` with the
connect token of one seat of the bench's duel rooms (see
`benchmarks.server_worker`). Messages are the rooms' msgpack schema
(vinom/rooms/messages.py): actions go on the reliable channel, states come
on the unreliable one.

play: a player sends `{"seq": n}` as soon as it sees a state in which its
own counter is n - 1 (so exactly one move in flight per player), and times
each move from sending it to the first state that includes it. Once every
player has connected, each session is carried on by a `LeanSession`
(benchmarks.lean_client: the datagrams `ClientConnection` would send, for a
fraction of its CPU), so that the host, not the load, is the limit; a move
not seen applied within `RESEND_S` is sent again, as the reliability layer
would resend it.

sessions: players connect and then stay idle; only keepalives flow.

The rooms may be spread over several game hosts (`play --host-workers N`):
`ports` lists them, and room r's players connect to `ports[r % len(ports)]`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgpack

from benchmarks.lean_client import LeanSession, handover_config
from benchmarks.loadgen import DONE, Latencies, Timeline, play_timeline
from benchmarks.server_worker import match_id, player_id
from benchmarks.session_load import (
    MAX_DATAGRAM,
    Aborted,
    Client,
    Driver,
    host_of,
    make_issuer,
    poll_sockets,
    raise_fd_limit,
)
from benchmarks.worker import emit
from vinom.protocol.address import HostAddress
from vinom.protocol.config import ClientConfig
from vinom.protocol.tokens import PublicToken

try:
    from vinom.rooms.client_messages import encode_action
except ImportError:  # a build from before vinom.rooms.client_messages (compare's baseline)
    from vinom.rooms.messages import encode_action

if TYPE_CHECKING:
    from vinom.protocol.route_token import RouteTokenIssuer

_unpackb = msgpack.unpackb
# A move not seen applied this long after it was sent goes again (on loopback
# only a datagram the kernel dropped for want of buffer space delays one).
RESEND_S = 0.25


class Player:
    """What one duel player knows: its id, its last move and when it left, and
    the latest state it saw before its session went lean."""

    __slots__ = ("host", "me", "playing", "seen", "sent", "sent_at", "sent_before")

    def __init__(self, me: str, host: int = 0) -> None:
        self.me = me
        self.host = host  # the index of its room's game host
        self.sent_before = 0  # `sent` when the window began
        self.sent = 0  # the last seq sent; confirmed once a state shows it
        self.sent_at = 0.0
        self.playing = False
        self.seen = 0  # own counter in the latest state seen


class RoomDriver(Driver):
    """Connects both players of each bench room in `rooms`."""

    def __init__(self, settings: dict[str, Any], config: ClientConfig | None = None) -> None:
        super().__init__(host_of(settings), config)
        self.issuer = make_issuer(bytes.fromhex(settings["key"]))
        ports = [int(port) for port in settings.get("ports") or [settings["port"]]]
        # Room r is on host r % len(ports).
        self.servers = [(self.server[0], port) for port in ports]
        self.rooms = range(int(settings["first_room"]), int(settings["last_room"]))
        self.seats = int(settings.get("seats", 2))  # players per room
        self.connected = 0
        self.failed = 0
        self.errors = 0
        self.messages = 0
        self.error_codes: dict[str, int] = {}
        # `play --relay`: the relay's port, and its key to mint route tokens with.
        relay = settings.get("relay")
        self.relay = None if relay is None else (self.server[0], int(relay["port"]))
        self.route_issuer: RouteTokenIssuer | None = None
        if relay is not None:
            # Imported here: the harness also measures builds older than the relay (compare).
            from vinom.protocol.route_token import RouteTokenIssuer

            self.route_issuer = RouteTokenIssuer(bytes.fromhex(relay["key"]))

    def connect_all(self, limit: float, in_flight: int = 256) -> None:
        """Handshake every player, at most `in_flight` at a time."""
        raise_fd_limit(self.seats * len(self.rooms) + 64)
        wanted = [(room, seat) for room in self.rooms for seat in range(self.seats)]
        deadline = time.perf_counter() + limit
        next_progress = 0.0
        started = 0
        while self.connected + self.failed < len(wanted):
            now = time.perf_counter()
            while started < len(wanted) and started - self.connected - self.failed < in_flight:
                room, seat = wanted[started]
                server = self.servers[room % len(self.servers)]
                token = self.issuer.issue_token(
                    player_id=player_id(room, seat), match_id=match_id(room),
                    hosts=(HostAddress(*server),), now=time.time(),
                )
                client = self.add(token, now, server)
                client.data = self.make_player(room, seat)
                started += 1
            self.step(0.01)
            if now >= next_progress:
                next_progress = now + 0.5
                emit("progress", phase="connect", count=self.connected, elapsed=0.0)
            if now > deadline:
                raise RuntimeError(
                    f"only {self.connected} of {len(wanted)} players connected in {limit:g} s"
                )

    def make_player(self, room: int, seat: int) -> Any:
        """What the scenario keeps about the player in `seat` of `room` (`client.data`)."""
        return Player(player_id(room, seat), room % len(self.servers))

    def add(
        self, token: PublicToken, now: float, server: tuple[str, int] | None = None,
        prefix: bytes = b"",
    ) -> Client:
        """Through the relay (`play --relay`): the player sends to it, each datagram
        behind a route token of its own to the game host `server`."""
        if self.relay is None or server is None:
            return super().add(token, now, server, prefix)
        assert self.route_issuer is not None
        route = self.route_issuer.issue(server[0], server[1], time.time())
        return super().add(token, now, self.relay, route)

    def on_connected(self, client: Client, now: float) -> None:
        self.connected += 1

    def on_closed(self, client: Client, reason: str, now: float) -> None:
        self.failed += 1
        self.errors += 1
        self.error_codes["closed_" + reason] = self.error_codes.get("closed_" + reason, 0) + 1


class PlayDriver(RoomDriver):
    """Connects the duel players and notes the states they see meanwhile; `run_play`
    then plays with one move in flight each, over lean sessions."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings, handover_config())

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        try:
            message = _unpackb(data)
            if message["t"] == "state":
                player: Player = client.data
                player.playing = message["p"] == "playing"
                player.seen = message["s"]["seq"][player.me]
        except Exception:
            self.errors += 1


class LeanPlay:
    """The measured part of play: every player's moves over its `LeanSession`."""

    def __init__(self, driver: PlayDriver) -> None:
        self.clients = list(driver.clients.values())
        self.sessions = [LeanSession(client.conn) for client in self.clients]
        self.latencies = Latencies()
        self.measuring = False
        self.moves = 0
        self.messages = 0
        self.errors = 0
        self.resends = 0
        self.send_errors = 0
        self.error_codes: dict[str, int] = {}

    def send(self, index: int, datagram: bytes) -> None:
        client = self.clients[index]
        try:
            client.sock.send(client.prefix + datagram if client.prefix else datagram)
        except OSError:
            self.send_errors += 1

    def move(self, index: int, player: Player, now: float) -> None:
        player.sent += 1
        player.sent_at = now
        self.send(index, self.sessions[index].send_reliable(encode_action({"seq": player.sent})))

    def start(self, now: float) -> None:
        """Players whose room is already playing make their first move."""
        for index, client in enumerate(self.clients):
            player: Player = client.data
            if player.playing:
                player.sent = player.seen
                self.move(index, player, now)

    def readable(self, index: int, now: float) -> None:
        # One datagram per wake-up, as in session_load.Driver: epoll reports the
        # socket again if more is queued.
        try:
            data = self.clients[index].sock.recv(MAX_DATAGRAM)
        except OSError:
            return
        session = self.sessions[index]
        player: Player = self.clients[index].data
        moved = False
        for raw in session.receive(data):
            self.messages += 1
            try:
                message = _unpackb(raw)
                kind = message["t"]
            except Exception:
                self.errors += 1
                continue
            if kind == "state":
                player.playing = message["p"] == "playing"
                if not player.playing:
                    continue
                mine = message["s"]["seq"][player.me]
                if mine >= player.sent and not moved:
                    if player.sent and self.measuring:
                        self.moves += 1
                        self.latencies.record(int((now - player.sent_at) * 1e6))
                    player.sent = mine
                    self.move(index, player, now)
                    moved = True
            elif kind == "error":
                self.errors += 1
                code = str(message.get("code"))
                self.error_codes[code] = self.error_codes.get(code, 0) + 1
        if not moved and session.ack_owed:
            for datagram in session.seal([]):
                self.send(index, datagram)

    def resend_late(self, now: float) -> None:
        for index, client in enumerate(self.clients):
            player: Player = client.data
            if player.playing and player.sent and now - player.sent_at > RESEND_S:
                player.sent_at = now  # its latency is lost anyway: measure from here
                self.resends += 1
                self.send(index, self.sessions[index].resend())

    def closed(self) -> int:
        return sum(1 for session in self.sessions if session.closed)

    def mark_window(self) -> None:
        for client in self.clients:
            player: Player = client.data
            player.sent_before = player.sent

    def moves_by_host(self, hosts: int) -> list[int]:
        """Moves each game host applied in the window, as the players saw them: each
        player's moves sent since the window began (its last one may still be in flight)."""
        moves = [0] * hosts
        for client in self.clients:
            player: Player = client.data
            moves[player.host] += player.sent - player.sent_before
        return moves


def run_play(settings: dict[str, Any]) -> dict[str, Any]:
    driver = PlayDriver(settings)
    driver.connect_all(float(settings.get("connect_limit", 30.0)))
    if driver.failed:
        raise RuntimeError(f"{driver.failed} players failed to connect")
    # Anything the connections still owe (acks of the rooms' first messages) goes out
    # with the first lean bodies.
    play = LeanPlay(driver)

    timeline = play_timeline(settings, play)
    poller, by_fd = poll_sockets([client.sock for client in play.clients])
    poll = poller.poll
    readable = play.readable
    clock = time.perf_counter
    timeline.start()
    now = clock()
    play.start(now)
    next_check = now + RESEND_S / 2
    try:
        while True:
            ready = poll(0.05)
            now = clock()
            for fd in ready:
                index = by_fd.get(fd, -1)
                if index < 0:
                    raise Aborted()
                readable(index, now)
            if now >= next_check:
                next_check = now + RESEND_S / 2
                play.resend_late(now)
                if timeline.check(now) == DONE:
                    break
    finally:
        poller.close()
    closed = play.closed()
    if closed:
        play.errors += closed
        play.error_codes["session_closed"] = closed
    result = {
        "moves": play.moves,
        "messages": play.messages,
        "errors": play.errors,
        "error_codes": dict(play.error_codes),
        "resends": play.resends,
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "histogram": play.latencies.encoded(),
        "moves_by_host": play.moves_by_host(len(driver.servers)),
        "send_errors": driver.send_errors + play.send_errors,
    }
    for client in play.clients:
        client.sock.close()
    return result


class IdleDriver(RoomDriver):
    """Players that connect and then only keep their sessions alive."""

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        self.messages += 1


def run_sessions(settings: dict[str, Any]) -> dict[str, Any]:
    driver = IdleDriver(settings)
    started = time.perf_counter()
    driver.connect_all(float(settings.get("connect_limit", 120.0)))
    connect_s = time.perf_counter() - started
    connect_failures = driver.failed

    def on_measure() -> None:
        driver.messages = 0
        driver.errors = 0
        driver.error_codes.clear()

    timeline = Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=on_measure,
        progress=lambda: {"count": driver.connected - driver.failed},
    )
    timeline.start()
    while timeline.check(driver.step(0.1)) != DONE:
        pass
    result = {
        "sessions": driver.connected - driver.failed,
        "connect_s": connect_s,
        "failed_to_connect": connect_failures,
        "events": dict(driver.events),
        "messages": driver.messages,
        "errors": driver.errors,
        "error_codes": dict(driver.error_codes),
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "send_errors": driver.send_errors,
    }
    driver.close()
    return result
