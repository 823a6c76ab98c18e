"""The lobby client: TLS to the lobby, hello, queue, reconnect, and the `match_found` it ends with.

Typical use (a game UI or a bot)::

    lobby = await connect_lobby(reactor, "localhost", 7350, trust="vinom-data/dev-cert.pem")
    welcome = await lobby.hello("ada")
    found = await lobby.queue("maze", on_queued=lambda q: print(q.position, q.status))
    # the server closes the TCP connection after match_found; play over UDP:
    session = await connect_game(reactor, found)          # vinom.client.game

Every request waits for the reply with its `id`; an `error` reply fails the
Deferred with `LobbyError(code, message)` (codes in docs/lobby.md).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from itertools import count
from typing import Any

from attrs import field, frozen
from OpenSSL import SSL
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTCP
from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.errors import LobbyError
from vinom.protocol.wire import GAME_PROTOCOL

# The game protocol this client speaks, said in every `hello` and `reconnect`: a lobby
# of another refuses it a connect token with `protocol_outdated` (docs/lobby.md, "The
# game protocol"). It is the version of the game protocol vinom.client.game speaks.
PROTOCOL: int = GAME_PROTOCOL


# The `auth` object of `hello` and `reconnect` (docs/lobby.md, "Authentication").
Auth = Mapping[str, Any]
GUEST: Auth = {"kind": "guest"}


def jwt_auth(token: str) -> Auth:
    """Credentials of a JWT from the studio's identity provider (`--auth jwt`)."""
    return {"kind": "jwt", "token": token}


def signed_auth(token: str) -> Auth:
    """Credentials of a token the studio's backend signed (`--auth signed`)."""
    return {"kind": "signed", "token": token}


class DeviceFileError(ValueError):
    """A device file that cannot be read, made or trusted; its text is one line."""


# The most a device file may hold: it is one short JSON object.
_DEVICE_FILE_MAX = 4096


def default_device_file() -> str:
    """Where the command-line clients keep the user's device key: in the user's
    configuration directory ($XDG_CONFIG_HOME, else ~/.config), vinom/device.json."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "vinom", "device.json")


def device_key(path: str) -> bytes:
    """The device key kept in `path`, a JSON object {"key": 43 URL-safe characters},
    made there on first use (32 random bytes; the file 0600, a directory made for it
    0700). A file that is not one, is not the user's or is open to others is a
    DeviceFileError: it holds what signs the user in, so it is never replaced."""
    try:
        return _read_device_key(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise DeviceFileError(f"{path}: cannot read it: {e.strerror or e}") from None
    directory = os.path.dirname(os.path.abspath(path))
    made = secrets.token_urlsafe(32)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # Written aside, then linked: another process making it at once keeps its own
        # and this one reads that (a link never replaces a file).
        fd, aside = tempfile.mkstemp(dir=directory, prefix=".device-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps({"key": made}) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
        return _read_device_key(path)
    except OSError as e:
        raise DeviceFileError(f"{path}: cannot make it: {e.strerror or e}") from None


def _read_device_key(path: str) -> bytes:
    with open(path, "rb") as f:
        kept = os.fstat(f.fileno())
        if not stat.S_ISREG(kept.st_mode):
            raise DeviceFileError(f"{path}: not a file")
        # (POSIX owners and modes; elsewhere the user's profile directory keeps it.)
        if os.name == "posix" and kept.st_uid != os.getuid():
            raise DeviceFileError(f"{path}: it is not yours (owner uid {kept.st_uid})")
        if os.name == "posix" and kept.st_mode & 0o077:
            raise DeviceFileError(f"{path}: others may read it (mode {kept.st_mode & 0o777:o}): "
                                  f"chmod 600 {path}")  # fmt: skip
        text = f.read(_DEVICE_FILE_MAX + 1)
    try:
        key = json.loads(text)["key"]
        if not isinstance(key, str) or len(key) < 43:
            raise ValueError(key)
        return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (ValueError, TypeError, KeyError):
        raise DeviceFileError(
            f"{path}: not a vinom device file (a JSON object whose 'key' is 43 or more URL-safe "
            "base64 characters): move it away to make a new one"
        ) from None


def device_auth(key: bytes, host: str, who: str = "") -> Auth:
    """The device credentials (`--auth device`) of `key` at the server named `host`, for
    `who` ("": the user; a bot's name, a spectator: their own devices). Each server gets
    its own device id and secret from the key (HMAC-SHA256), so no server learns the
    secret of another, and the same key, host and `who` always sign in as one account."""

    def mac(label: str) -> bytes:
        data = f"{label}\0{host.strip('[]').lower()}\0{who}".encode("utf-8", "surrogatepass")
        return hmac.new(key, data, hashlib.sha256).digest()

    secret = base64.urlsafe_b64encode(mac("secret")).rstrip(b"=").decode("ascii")
    return {"kind": "device", "device_id": "d-" + mac("device_id")[:16].hex(), "secret": secret}


def error_of(frame: Mapping[str, Any]) -> LobbyError:
    """The `LobbyError` of an `error` frame, with the fields it carries besides its code
    and message (an `auth_failed`'s `reason`, a `banned`'s `reason` and `until`)."""
    fields = {k: v for k, v in frame.items() if k not in ("type", "code", "message", "id")}
    return LobbyError(str(frame.get("code")), str(frame.get("message")), fields=fields)


@frozen
class LobbyAddress:
    """Where a lobby listens, and the certificate to trust (None: the platform's CAs)."""

    host: str
    port: int
    trust: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@frozen
class Welcome:
    """The answer to `hello`: keep `secret` to reconnect to a running match (it is
    left out of the repr, so logging a `Welcome` does not give the seat away)."""

    player_id: str
    name: str
    secret: str = field(repr=False)
    # The game protocol the server speaks (None from a server that does not say).
    protocol: int | None = None


@frozen
class Queued:
    """A `queued` frame: position in the game's queue, `searching` or `waiting_for_server`."""

    game: str
    position: int | None
    status: str
    # Back at the head of the queue after a match aborted for `reason`
    # (players_missing, or host_crashed: its game-host process failed).
    requeued: bool = False
    reason: str | None = None
    # The queue ("normal" or "ranked"); None in a `waiting_for_server` frame.
    queue: str | None = None


@frozen
class MatchFound:
    """Where and with what to connect over UDP; `token` goes to `vinom.client.game`."""

    game: str
    game_id: str
    host: str
    port: int
    token: Mapping[str, Any]
    expires_at: float | None
    # The UDP relay in front of the game host ({host, port, token}), when there is one.
    relay: Mapping[str, Any] | None = None

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> MatchFound:
        return cls(
            game=str(frame.get("game", "")),
            game_id=str(frame["game_id"]),
            host=str(frame["host"]),
            port=int(frame["port"]),
            token=frame["token"],
            expires_at=frame.get("expires_at"),
            relay=frame.get("relay"),
        )


QueuedCallback = Callable[[Queued], object]
# Called with the room (the `room` field of a `room_update` frame) as it changes.
RoomCallback = Callable[[dict[str, Any]], object]
_CONNECTION_DONE = Failure(ConnectionDone())


def decode_frame(line: bytes) -> dict[str, Any] | None:
    """One lobby frame (a JSON object on one line), or None for anything else (a
    client ignores what it cannot read; the server is the one that reports errors)."""
    try:
        frame = json.loads(line)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


class LobbyClientProtocol(LineOnlyReceiver):
    """Newline-delimited JSON to and from the lobby; replies are matched by `id`."""

    delimiter = b"\n"
    # Server frames are small, but a match_found carries a token: leave room.
    MAX_LENGTH = 64 * 1024

    def __init__(self) -> None:
        self._ids = count(1)
        self._waiting: dict[int, Deferred[dict[str, Any]]] = {}
        self._match: Deferred[MatchFound] | None = None
        self._unclaimed: MatchFound | None = None
        self._on_queued: QueuedCallback | None = None
        self.on_room_update: RoomCallback | None = None
        self.closed: Deferred[None] = Deferred()
        # Fires at the first `queued` or `match_found`: the lobby took this client's
        # request (vinom.client.failover counts it as working from then on).
        self.served: Deferred[None] = Deferred()
        self.frames_received = 0

    # -- requests ---------------------------------------------------------

    def request(self, frame: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
        """Send a frame with a fresh `id`; fires with the reply frame that echoes it."""
        if self.transport is None or self.closed.called:
            return fail(ConnectionDone("the lobby connection is closed"))
        request_id = next(self._ids)
        d: Deferred[dict[str, Any]] = Deferred()
        self._waiting[request_id] = d
        self.sendLine(json.dumps({**frame, "id": request_id}).encode())
        return d

    def expect_match(self, on_queued: QueuedCallback | None) -> Deferred[MatchFound]:
        """A Deferred for the next `match_found` (queue, reconnect or a room), or the one
        that came while nobody was waiting for it (a room that filled)."""
        self._on_queued = on_queued
        found, self._unclaimed = self._unclaimed, None
        if found is not None:
            return succeed(found)
        if self.closed.called:
            return fail(ConnectionDone("the lobby connection is closed"))
        self._match = Deferred()
        return self._match

    # -- Twisted ----------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        frame = decode_frame(line)
        if frame is None:
            return
        self.frames_received += 1
        kind = frame.get("type")
        if kind in ("queued", "match_found") and not self.served.called:
            self.served.callback(None)
        request_id = frame.get("id")
        if kind == "ping" and request_id is None:
            # The lobby checks that a waiting player is alive: any frame answers.
            self.sendLine(b'{"type":"ping"}')
        elif kind == "match_found":
            self._resolve_match(frame)
        elif kind == "room_update" and self.on_room_update is not None:
            room = frame.get("room")
            if isinstance(room, dict):
                self.on_room_update(room)
        elif kind == "queued" and self._on_queued is not None:
            self._on_queued(
                Queued(
                    str(frame.get("game", "")),
                    frame.get("position"),
                    str(frame["status"]),
                    frame.get("requeued") is True,
                    frame.get("reason") if isinstance(frame.get("reason"), str) else None,
                    frame.get("queue") if isinstance(frame.get("queue"), str) else None,
                )
            )
        waiter = self._waiting.pop(request_id, None) if isinstance(request_id, int) else None
        if waiter is not None:
            if kind == "error":
                waiter.errback(error_of(frame))
            else:
                waiter.callback(frame)
        elif kind == "error" and self._match is not None and not self._match.called:
            # An error with no request of ours (e.g. server draining, connection cap).
            match, self._match = self._match, None
            match.errback(error_of(frame))

    def lineLengthExceeded(self, line: bytes) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.errback(reason)
        if self._match is not None and not self._match.called:
            self._match.errback(reason)
        if not self.closed.called:
            self.closed.callback(None)

    def _resolve_match(self, frame: dict[str, Any]) -> None:
        try:
            found = MatchFound.from_frame(frame)
        except (KeyError, TypeError, ValueError) as e:
            if self._match is not None and not self._match.called:
                match, self._match = self._match, None
                match.errback(LobbyError("bad_match_found", str(e)))
            return
        if self._match is None or self._match.called:
            self._unclaimed = found
            return
        match, self._match = self._match, None
        match.callback(found)


class LobbyClient:
    """A player's connection to the lobby."""

    def __init__(self, protocol: LobbyClientProtocol) -> None:
        self.protocol = protocol
        self.welcome: Welcome | None = None

    def hello(
        self, name: str, *, previous: Welcome | None = None, auth: Auth | None = None
    ) -> Deferred[Welcome]:
        """Say hello as a new player. `previous`: the `Welcome` of this player's earlier
        connection, if it was lost (its lobby may have died): the server withdraws the
        ticket it left queued, so that nobody is matched with a player who is gone.
        `auth`: the credentials a server with authentication needs (`jwt_auth`,
        `signed_auth`; none or `GUEST` for a guest); a refusal fails with
        `LobbyError` `auth_failed`, its `fields["reason"]` saying why."""

        def welcomed(frame: dict[str, Any]) -> Welcome:
            protocol = frame.get("protocol")
            self.welcome = Welcome(
                str(frame["player_id"]), str(frame["name"]), str(frame["secret"]),
                protocol if isinstance(protocol, int) else None,
            )
            return self.welcome

        frame: dict[str, Any] = {"type": "hello", "name": name, "protocol": PROTOCOL}
        if previous is not None:
            frame["previous"] = {"player_id": previous.player_id, "secret": previous.secret}
        if auth is not None:
            frame["auth"] = dict(auth)
        return self.protocol.request(frame).addCallback(welcomed)

    def queue(
        self,
        game: str,
        rating: float | None = None,
        *,
        queue: str = "normal",
        on_queued: QueuedCallback | None = None,
    ) -> Deferred[MatchFound]:
        """Queue for `game` in `queue` ("normal" or "ranked"), claiming `rating` (the server
        may use its own: docs/lobby.md); fires with `match_found` (the server then closes
        the connection), or fails with `LobbyError` (e.g. `unknown_queue`, `invalid_field`
        for a rating out of range, `rating_refused`)."""
        match = self.protocol.expect_match(on_queued)
        frame: dict[str, Any] = {"type": "queue", "game": game}
        if queue != "normal":
            frame["queue"] = queue
        if rating is not None:
            frame["rating"] = rating
        request = self.protocol.request(frame)
        request.addErrback(_fail_match, match)
        return match

    def cancel(self) -> Deferred[dict[str, Any]]:
        return self.protocol.request({"type": "cancel"})

    def ping(self) -> Deferred[dict[str, Any]]:
        return self.protocol.request({"type": "ping"})

    def reconnect(
        self, player_id: str, secret: str, *, on_queued: QueuedCallback | None = None,
        auth: Auth | None = None,
    ) -> Deferred[MatchFound]:  # fmt: skip
        """Fires with `match_found`: a fresh connect token for the seat this player holds
        in a running match, or the next match after a place kept at the head of a queue
        (a match aborted for players_missing; `on_queued` sees `Queued(requeued=True)`).
        `auth`: as in `hello`, the same account's credentials where the server needs them."""
        match = self.protocol.expect_match(on_queued)
        frame: dict[str, Any] = {"type": "reconnect", "player_id": player_id, "secret": secret,
                                 "protocol": PROTOCOL}  # fmt: skip
        if auth is not None:
            frame["auth"] = dict(auth)
        request = self.protocol.request(frame)
        request.addErrback(_fail_match, match)
        return match

    def spectate(
        self, match_id: str | None = None, *, code: str | None = None
    ) -> Deferred[MatchFound]:
        """Watch a running match (docs/lobby.md, "spectate"), by its id or by the join
        code of the private room it began as: fires with where and with what token to
        connect (`vinom.client.game.connect_game`), read-only, seat -1."""
        frame: dict[str, Any] = {"type": "spectate"}
        if match_id is not None:
            frame["match_id"] = match_id
        if code is not None:
            frame["code"] = code
        return self.protocol.request(frame).addCallback(MatchFound.from_frame)

    # Open rooms (docs/lobby.md, "Rooms"). Each of create_room, join_room and
    # add_bot fires with the room as it is then; once its seats are taken,
    # `match_found` fires the Deferred of `room_match()`.

    def room_list(self, game: str | None = None) -> Deferred[list[dict[str, Any]]]:
        """The public rooms waiting for players (of `game`, if given)."""
        frame: dict[str, Any] = {"type": "get_room_list"}
        if game is not None:
            frame["game"] = game
        return self.protocol.request(frame).addCallback(lambda reply: list(reply["rooms"]))

    def create_room(
        self, game: str, *, private: bool = False, size: int | None = None,
        spectators: bool = False,
    ) -> Deferred[dict[str, Any]]:
        frame: dict[str, Any] = {"type": "create_room", "game": game, "private": private}
        if spectators:
            frame["spectators"] = True
        if size is not None:
            frame["size"] = size
        return self._room_request(frame)

    def join_room(
        self, *, room_id: str | None = None, code: str | None = None
    ) -> Deferred[dict[str, Any]]:
        frame: dict[str, Any] = {"type": "join_room"}
        if room_id is not None:
            frame["room_id"] = room_id
        if code is not None:
            frame["code"] = code
        return self._room_request(frame)

    def add_bot(self) -> Deferred[dict[str, Any]]:
        """The room's owner fills its next seat with the game's bot."""
        return self._room_request({"type": "add_bot"})

    def leave_room(self) -> Deferred[dict[str, Any]]:
        return self.protocol.request({"type": "leave_room"})

    def room_match(self) -> Deferred[MatchFound]:
        """Fires with `match_found` once the room this player sits in is full (at once
        if it has come already)."""
        return self.protocol.expect_match(None)

    def _room_request(self, frame: dict[str, Any]) -> Deferred[dict[str, Any]]:
        return self.protocol.request(frame).addCallback(lambda reply: dict(reply["room"]))

    def close(self) -> Deferred[None]:
        if self.protocol.transport is not None:
            self.protocol.transport.loseConnection()
        return self.protocol.closed


def _fail_match(failure: Failure, match: Deferred[MatchFound]) -> None:
    if not match.called:
        match.errback(failure)


def client_tls_options(trust: str | None, hostname: str = "localhost") -> Any:
    """TLS options that verify the lobby's certificate (service_identity checks `hostname`).

    `trust` is a PEM file to trust (the dev certificate); None uses the platform's CAs.
    Options are made once per (trust file and its modification time, host name)
    and shared: building an SSL context per connection costs more than a
    client's whole lobby conversation.
    """
    stamp = os.stat(trust).st_mtime_ns if trust is not None else None
    return _tls_options(trust, stamp, hostname)


@functools.lru_cache(maxsize=64)
def _tls_options(trust: str | None, stamp: int | None, hostname: str) -> Any:
    if trust is None:
        return optionsForClientTLS(hostname, trustRoot=platformTrust())
    with open(trust, "rb") as f:
        root = Certificate.loadPEM(f.read())
    return optionsForClientTLS(hostname, trustRoot=root)


def connect_lobby(
    reactor: IReactorTCP,
    host: str,
    port: int,
    *,
    trust: str | None = None,
    hostname: str | None = None,
    timeout: float = 10.0,
) -> Deferred[LobbyClient]:
    """Open a verified TLS connection to a lobby at host:port.

    The TLS session of the last connection to the same lobby (host, port,
    certificate name, and the same `trust`) is offered again, so a player who
    plays again or reconnects resumes it: a shorter handshake for both ends
    (docs/operations.md, "TLS sessions"). Only the server that issued the
    session, whose certificate was verified then, can resume it; its name is
    checked again.
    """
    name = hostname or _default_hostname(host)
    key = (host, port, name, trust)
    tls = _ResumingTLS(client_tls_options(trust, name), key)
    endpoint = wrapClientTLS(tls, TCP4ClientEndpoint(reactor, host, port, timeout=timeout))
    d = connectProtocol(endpoint, LobbyClientProtocol())

    def connected(protocol: LobbyClientProtocol) -> LobbyClient:
        protocol.closed.addCallback(lambda _: _remember_session(key, protocol.transport))
        return LobbyClient(protocol)

    return d.addCallback(connected)


# The TLS session of the last connection to each lobby (host, port, certificate
# name, trust), the oldest forgotten first past `TLS_SESSIONS_KEPT` lobbies.
TLS_SESSIONS_KEPT = 64
_SessionKey = tuple[str, int, str, str | None]
_tls_sessions: OrderedDict[_SessionKey, SSL.Session] = OrderedDict()


@implementer(IOpenSSLClientConnectionCreator)
class _ResumingTLS:
    """Twisted's client TLS options, offering the lobby's last TLS session."""

    def __init__(self, options: Any, key: _SessionKey) -> None:
        self._options = options
        self._key = key

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection: SSL.Connection = self._options.clientConnectionForTLS(tls_protocol)
        session = _tls_sessions.get(self._key)
        if session is not None:
            connection.set_session(session)
        return connection


def _remember_session(key: _SessionKey, transport: Any) -> None:
    # A TLS 1.3 server sends its session tickets after the handshake; by the time
    # the connection closes the client has read them.
    handle = getattr(transport, "getHandle", None)
    connection = handle() if handle is not None else None
    session = connection.get_session() if isinstance(connection, SSL.Connection) else None
    if session is None:
        return
    _tls_sessions[key] = session
    _tls_sessions.move_to_end(key)
    while len(_tls_sessions) > TLS_SESSIONS_KEPT:
        _tls_sessions.popitem(last=False)


def _default_hostname(host: str) -> str:
    # The dev certificate names localhost; a loopback address means the same server.
    return "localhost" if host in ("127.0.0.1", "::1") else host
