"""`twistd vinom`: command-line options and the service tree of a whole vinom server.

`makeService(options)` returns a `MultiService` of small services: the TLS
lobby (a strports service), the matchmaker, the port allocator, the game
hosting service and the public web server (the lobby over WebSocket). As
in `twisted.names.tap`, TCP and UDP live side by side under one root service.
A reactor can be injected for tests.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from twisted.application import service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.ssl import PrivateCertificate
from twisted.logger import Logger
from twisted.python import usage

from vinom.cluster.client import RedisClient, RedisSubscription, client_endpoint, parse_redis_url
from vinom.cluster.hosts import RedisHostRegistry
from vinom.cluster.limits import RedisAddressLimiter
from vinom.cluster.placement import HostAgent, RemoteMatchHosting
from vinom.cluster.players import RedisPlayerStore
from vinom.cluster.services import MatchmakerService, RedisClientService, SubscriptionService
from vinom.games.interfaces import display_name_of
from vinom.games.registry import GameRegistry, UnknownGame
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.hosting.supervisor import ProcessPerMatch, WorkerPool, WorkerSettings
from vinom.hosting.websocket import GameSocketConfig, GameSocketFactory
from vinom.lobby.config import LobbyConfig
from vinom.lobby.server import LobbyFactory
from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.matchmaking.fifo import FifoMatchmaker
from vinom.matchmaking.windows import RatingWindow
from vinom.net.origins import OriginPolicy, page_origins
from vinom.protocol.address import HostAddress
from vinom.protocol.config import IssuerConfig, ProtocolConfig, generate_token_key
from vinom.protocol.tokens import MAX_TIMEOUT_MS, TokenIssuer, encode_host
from vinom.rooms.room import RoomConfig
from vinom.server.build import build_info
from vinom.server.certs import ensure_dev_certificate
from vinom.server.drain import Drain
from vinom.server.logs import LOG_FORMATS, LogFormatService
from vinom.server.ops import ops_site
from vinom.server.startup import (
    Address,
    Announcement,
    Listener,
    StartupError,
    check_redis,
    is_loopback,
    listen_interface,
    read_secret,
    redis_password,
    warn_if_readable,
)
from vinom.server.status import StatusReader
from vinom.server.web import web_site
from vinom.store.memory import MemoryPlayerStore

_log = Logger()

DEFAULT_LOBBY = "ssl:7350"
DEFAULT_OPS = "tcp:7390:interface=127.0.0.1"
DEFAULT_WEBSOCKET = "7380"
DEFAULT_UDP_PORTS = "7400-7499"
TOKEN_KEY_BYTES = 32
ROLES = ("all", "lobby", "host")


def parse_port_range(text: str) -> tuple[int, int]:
    """'7400-7499' -> (7400, 7499); a single port 'N' is the range N-N."""
    first, sep, last = text.strip().partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise usage.UsageError(
            f"--udp-ports must look like 7400-7499 (first-last), not {text!r}"
        ) from None
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        raise usage.UsageError(f"--udp-ports: ports must be within 1-65535, not {text!r}")
    if low > high:
        raise usage.UsageError(f"--udp-ports: the range {text!r} is inverted (first > last)")
    return low, high


def read_token_key(path: str) -> bytes:
    """The shared connect-token key: 32 bytes, stored raw, as hex or as base64."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise usage.UsageError(f"--token-key-file {path!r}: {e.strerror}") from None
    warn_if_readable("--token-key-file", path)
    if len(raw) == TOKEN_KEY_BYTES:
        return raw
    text = raw.strip()
    for decode in (binascii.unhexlify, base64.b64decode):
        try:
            key = decode(text)
        except (binascii.Error, ValueError):
            continue
        if len(key) == TOKEN_KEY_BYTES:
            return key
    raise usage.UsageError(
        f"--token-key-file {path!r} must hold {TOKEN_KEY_BYTES} bytes (raw, hex or base64)"
    )


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise usage.UsageError(f"--{name} must be at least 1, not {number}")
    return number


def _non_negative_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise usage.UsageError(f"--{name} must be at least 0, not {number}")
    return number


def _positive_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None
    if not (number > 0 and math.isfinite(number)):
        raise usage.UsageError(f"--{name} must be a number greater than 0, not {value!r}")
    return number


def _non_negative_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None
    if not (number >= 0 and math.isfinite(number)):
        raise usage.UsageError(f"--{name} must be a number of at least 0, not {value!r}")
    return number


def _web_game_rate(value: str) -> float:
    """--web-game-rate, through usage.Options' coerce column."""
    return _positive_float("web-game-rate", value)


class Options(usage.Options):
    """Options of `twistd vinom`; every value is checked before anything listens."""

    synopsis = "[options]"
    longdesc = (
        "Runs a vinom game server: a TLS lobby where players say hello and queue, "
        "a matchmaker, and game hosts on a bounded range of UDP ports. With no "
        "certificate given, a self-signed certificate for localhost is made in the "
        "data directory on first start and reused afterwards."
    )

    def __init__(self) -> None:
        super().__init__()
        self["match-size"] = []
        self["rating-window"] = []

    def parseOptions(self, options: list[str] | None = None) -> None:
        """As usage.Options; under twistd a bad option ends the start with its one-line
        message (twistd itself would print its whole --help before it)."""
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:  # parsed on its own (tests, tools): the caller reports
                raise
            raise StartupError(f"{e} (twistd vinom --help lists the options)") from None

    optFlags = [
        [
            "access-log",
            None,
            "Log every HTTP request of the web server and the operations endpoint "
            "(default: off).",
        ],
    ]

    def opt_match_size(self, value: str) -> None:
        """Players per match for one game, GAME=N (repeatable); default: the game's own."""
        game, sep, size = value.partition("=")
        if not sep or not game.strip():
            raise usage.UsageError(f"--match-size must look like maze=4, not {value!r}")
        self["match-size"].append((game.strip(), _positive_int("match-size", size)))

    def opt_rating_window(self, value: str) -> None:
        """The rating window of one game's ranked queue, GAME=BASE,GROWTH[,MAX]
        (repeatable): ratings BASE apart match at once, GROWTH more per second
        waited, never more than MAX; default: the game's own, else 100,20."""
        game, sep, numbers = value.partition("=")
        parts = numbers.split(",")
        if not sep or not game.strip() or len(parts) not in (2, 3):
            raise usage.UsageError(
                f"--rating-window must look like chess=50,10 or chess=50,10,400 "
                f"(GAME=BASE,GROWTH[,MAX]), not {value!r}"
            )
        base, growth, *maximum = (_non_negative_float("rating-window", p) for p in parts)
        if maximum and maximum[0] < base:
            raise usage.UsageError(
                f"--rating-window {value!r}: MAX ({maximum[0]:g}) must be at least BASE "
                f"({base:g})"
            )
        window = RatingWindow(base, growth, maximum[0] if maximum else None)
        self["rating-window"].append((game.strip(), window))

    optParameters = [
        [
            "role",
            None,
            "all",
            "What this process does: 'all' (lobby and game hosts in one process), 'lobby' "
            "(serves players, forms matches, places them on game hosts found in Redis) or "
            "'host' (runs the matches lobbies place on it). 'lobby' and 'host' need --redis.",
        ],
        [
            "redis",
            None,
            None,
            "Redis URL, redis://[:password@]host[:port][/db] (rediss:// for TLS), shared by "
            "every lobby and game host of one deployment (players, queues, live hosts, "
            "placements). Without it everything stays in this process's memory. Needs "
            "--token-key-file. Keep the password out of it (`ps` shows the command line): "
            "--redis-password-file or $VINOM_REDIS_PASSWORD.",
        ],
        [
            "redis-password-file",
            None,
            None,
            "File holding the Redis password (one line). Default: $VINOM_REDIS_PASSWORD, "
            "else the password in --redis, else none.",
        ],
        [
            "redis-ca-file",
            None,
            None,
            "CA certificate(s) (PEM) that issued the certificate of a rediss:// Redis. "
            "Default: the system's trusted roots.",
        ],
        [
            "games",
            None,
            None,
            "Comma-separated games to offer (default: every installed game offered by "
            "default, which leaves out test and benchmark games such as duel; "
            "`vinom games` lists them).",
        ],
        [
            "lobby",
            "l",
            DEFAULT_LOBBY,
            "Lobby endpoint, a strports description. 'ssl:PORT' uses --certificate/"
            "--private-key, or the dev certificate when they are not given.",
        ],
        [
            "websocket",
            None,
            DEFAULT_WEBSOCKET,
            "The public web server (the lobby over WebSocket at /lobby, and the games this "
            "process hosts at /game): a port (TLS with the server's certificate), a strports "
            "description, or 'none'.",
        ],
        [
            "public-web-url",
            None,
            None,
            "The web server's URL as browsers reach it (wss://games.example.com, a path prefix "
            "allowed), when a proxy sits in front; match_found's game_url is it plus /game. "
            "Default: wss://PUBLIC-HOST:PORT with the --websocket port, when it listens with TLS.",
        ],
        [
            "websocket-origins",
            None,
            None,
            "Comma-separated origins of the web pages that may open the WebSocket lobby, or '*' "
            "for any (default: https:// and localhost, 127.0.0.1 and --public-host, on the "
            "--websocket port). Clients that send no Origin (not browsers) are always let in.",
        ],
        [
            "websocket-proxies",
            None,
            "0",
            "Reverse proxies in front of the web server that add the client's address to "
            "X-Forwarded-For; the lobby's per-address limits then count that address.",
        ],
        ["certificate", "c", None, "TLS certificate (PEM) for the lobby."],
        ["private-key", "k", None, "Private key (PEM) of --certificate."],
        ["udp-ports", "u", DEFAULT_UDP_PORTS, "UDP port range for game hosts, first-last."],
        ["udp-interface", None, "", "Address game hosts bind to ('' = all interfaces)."],
        [
            "public-host",
            None,
            "127.0.0.1",
            "Address of the game hosts as clients should reach them (sent in match_found).",
        ],
        ["max-games", "g", None, "Most games running at once (default: the number of UDP ports)."],
        ["data-dir", "d", "vinom-data", "Directory for the dev certificate and other state."],
        ["log-format", None, "text", "Log format: 'text' (twistd's) or 'json' (JSON lines)."],
        [
            "token-key-file",
            None,
            None,
            "Connect-token key shared by lobby and game hosts (32 bytes: raw, hex or base64). "
            "Default: a fresh random key each start (fine when one process runs both).",
        ],
        ["max-connections-per-ip", None, "32", "Concurrent lobby connections per client IP."],
        ["frame-rate", None, "20", "Lobby frames per second per connection (token bucket)."],
        ["frame-burst", None, "40", "Lobby frame burst per connection (token bucket size)."],
        [
            "web-game-rate",
            None,
            20.0,  # GameSocketConfig.message_rate
            "Messages per second a browser's /game socket may send (burst: twice as many); "
            "above it the socket is closed (4008). Raise it for a game that acts faster.",
            _web_game_rate,
        ],
        ["max-protocol-errors", None, "10", "Protocol errors before a lobby connection closes."],
        ["max-connections", None, "10000", "Concurrent lobby connections in all."],
        [
            "max-pending-per-ip",
            None,
            "32",
            "Players from one client IP (IPv6: one /64) queued or in a match that has not ended.",
        ],
        [
            "max-matches-per-ip",
            None,
            "16",
            "Matches not ended with players from one client IP (IPv6: one /64), counting its "
            "queued players as the matches they may make: the game ports one address can hold.",
        ],
        [
            "queue-rate",
            None,
            "1",
            "Lobby queue and room requests per second per client IP (token bucket); "
            "party_join requests too, counted apart (across lobbies with --redis).",
        ],
        [
            "queue-burst",
            None,
            "32",
            "Lobby queue and room request burst per client IP (token bucket size); the same "
            "for party_join, counted apart.",
        ],
        [
            "lobby-hello-timeout",
            None,
            "10",
            "Seconds a new lobby connection has for the TLS handshake and its first frame.",
        ],
        [
            "lobby-idle-timeout",
            None,
            "60",
            "Seconds a lobby connection that is not queued may stay silent (a ping keeps it).",
        ],
        [
            "lobby-ping-interval",
            None,
            "5",
            "Seconds a queued player's connection may be silent before the lobby pings it.",
        ],
        [
            "lobby-ping-timeout",
            None,
            "5",
            "Seconds a pinged queued player has to answer before its connection is closed "
            "and its ticket withdrawn.",
        ],
        [
            "lobby-max-output",
            None,
            "262144",
            "Bytes of frames a lobby connection (TLS or WebSocket) may hold back while its "
            "peer does not read; past it the connection is dropped (at least 4096).",
        ],
        [
            "session-timeout",
            None,
            "5",
            "Seconds without a valid packet after which a UDP session ends.",
        ],
        [
            "reconnect-grace",
            None,
            "30",
            "Seconds a player whose session ended keeps the seat, to reconnect through the lobby.",
        ],
        [
            "connect-deadline",
            None,
            "30",
            "Seconds every player of a new match has to connect before the match is aborted.",
        ],
        ["token-lifetime", None, "60", "Seconds a connect token stays valid after it is issued."],
        [
            "ops-port",
            None,
            DEFAULT_OPS,
            "Operations endpoint (/health, /ready, /metrics, /status, /dashboard/): a port "
            "(on 127.0.0.1), a strports description, or 'none'. Loopback by default: it is "
            "for the operator, not for players.",
        ],
        [
            "ops-token-file",
            None,
            None,
            "File holding a bearer token (one line) that /metrics, /status and the dashboard "
            "ask for; /health and /ready stay open. Default: no token.",
        ],
        [
            "game-host",
            None,
            "workers",
            "Where matches run: 'workers' (--host-workers long-lived worker processes; 0 "
            "keeps them in this process) or 'process' (a child process per match).",
        ],
        [
            "host-workers",
            None,
            None,
            "Game-host worker processes (default: one per CPU core beyond the first, at "
            "least 1; 0 hosts the games in this process).",
        ],
        [
            "process-pool",
            None,
            "2",
            "With --game-host process: children started ahead, ready for the next matches.",
        ],
        [
            "heartbeat-timeout",
            None,
            "3",
            "Seconds a game-host process may leave its heartbeats (sent every second) "
            "unanswered before it is killed and counted as crashed.",
        ],
        [
            "drain-timeout",
            None,
            "600",
            "Seconds running matches may play on after SIGTERM before they are aborted "
            "(a second SIGTERM stops at once).",
        ],
    ]

    compData = usage.Completions(
        optActions={
            "certificate": usage.CompleteFiles("*.pem"),
            "private-key": usage.CompleteFiles("*.pem"),
            "data-dir": usage.CompleteDirs(),
            "log-format": usage.CompleteList(list(LOG_FORMATS)),
        }
    )

    def postOptions(self) -> None:
        low, high = parse_port_range(self["udp-ports"])
        self["udp-port-range"] = (low, high)
        pool = high - low + 1
        if self["max-games"] is None:
            self["max-games"] = pool
        else:
            self["max-games"] = _positive_int("max-games", self["max-games"])
            if self["max-games"] > pool:
                raise usage.UsageError(
                    f"--max-games {self['max-games']} is larger than the UDP port range "
                    f"{low}-{high} ({pool} ports): every game needs a port of its own"
                )
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(
                f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {self['log-format']!r}"
            )
        cert, key = self["certificate"], self["private-key"]
        if (cert is None) != (key is None):
            raise usage.UsageError("--certificate and --private-key go together: give both")
        for name in ("certificate", "private-key"):
            path = self[name]
            if path is not None and not os.path.isfile(path):
                raise usage.UsageError(f"--{name} {path!r}: no such file")
        if self["token-key-file"] is not None:
            self["token-key"] = read_token_key(self["token-key-file"])
        else:
            self["token-key"] = None
        self._check_role()
        for name in (
            "max-connections-per-ip",
            "frame-burst",
            "max-protocol-errors",
            "max-connections",
            "max-pending-per-ip",
            "max-matches-per-ip",
            "queue-burst",
        ):
            self[name] = _positive_int(name, self[name])
        for name in (
            "frame-rate",
            "queue-rate",
            "lobby-hello-timeout",
            "lobby-idle-timeout",
            "lobby-ping-interval",
            "lobby-ping-timeout",
            "session-timeout",
            "reconnect-grace",
            "connect-deadline",
            "token-lifetime",
        ):
            self[name] = _positive_float(name, self[name])
        self["drain-timeout"] = _non_negative_float("drain-timeout", self["drain-timeout"])
        self["lobby-max-output"] = _positive_int("lobby-max-output", self["lobby-max-output"])
        if self["lobby-max-output"] < 4096:
            raise usage.UsageError(
                f"--lobby-max-output must be at least 4096, not {self['lobby-max-output']}"
            )
        self["heartbeat-timeout"] = _positive_float("heartbeat-timeout", self["heartbeat-timeout"])
        if self["game-host"] not in ("workers", "process"):
            raise usage.UsageError(
                f"--game-host must be 'workers' or 'process', not {self['game-host']!r}"
            )
        if self["host-workers"] is None:
            self["host-workers"] = max(1, (os.cpu_count() or 1) - 1)
        else:
            self["host-workers"] = _non_negative_int("host-workers", self["host-workers"])
        self["process-pool"] = _non_negative_int("process-pool", self["process-pool"])
        self["websocket-proxies"] = _non_negative_int(
            "websocket-proxies", self["websocket-proxies"]
        )
        ops = self["ops-port"].strip()
        if ops.isdigit():
            ops = f"tcp:{ops}:interface=127.0.0.1"
        self["ops-token"] = (
            None if self["ops-token-file"] is None
            else read_secret("--ops-token-file", self["ops-token-file"])
        )  # fmt: skip
        if ops.lower() == "none":
            self["ops-port"] = None
        else:
            from twisted.internet.endpoints import serverFromString
            from twisted.internet.testing import MemoryReactor

            try:
                serverFromString(MemoryReactor(), ops)
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError(
                    f"--ops-port must be a port, a strports description such as tcp:7390 or "
                    f"'none': {e}"
                ) from None
            self["ops-port"] = ops
        if self["session-timeout"] * 1000 > MAX_TIMEOUT_MS:
            raise usage.UsageError(
                f"--session-timeout must be at most {MAX_TIMEOUT_MS // 1000} seconds"
            )
        self["public-host"] = _check_public_host(self["public-host"])
        if self["udp-interface"] and not (
            isIPAddress(self["udp-interface"]) or isIPv6Address(self["udp-interface"])
        ):
            raise usage.UsageError(
                f"--udp-interface must be an IP address to bind to, not {self['udp-interface']!r}"
            )
        if cert is not None and key is not None:
            _check_certificate(cert, key)
        self["game-registry"] = _offered_games(self["games"])
        self["match-sizes"] = dict(self["match-size"])
        if self["match-sizes"]:
            match_size_overrides(self["game-registry"], self["match-sizes"])
        self["rating-windows"] = rating_windows(
            self["game-registry"], dict(self["rating-window"])
        )
        self["lobby"] = self["lobby"].strip()
        if self["lobby"].isdigit():
            # A bare port, as --websocket and --ops-port take: TLS on it.
            self["lobby"] = f"ssl:{self['lobby']}"
        if not self["lobby"]:
            raise usage.UsageError(
                "--lobby must be a port or a strports description such as ssl:7350"
            )
        if not self["data-dir"].strip():
            raise usage.UsageError("--data-dir must name a directory (empty here)")
        _check_endpoint(self["lobby"])
        self._check_websocket()
        self["game-url"] = _game_url(self["public-web-url"], self["websocket"],
                                     self["public-host"])  # fmt: skip

    def _check_role(self) -> None:
        if self["role"] not in ROLES:
            raise usage.UsageError(
                f"--role must be one of {', '.join(ROLES)}, not {self['role']!r}"
            )
        if self["redis"] is None:
            self["redis-settings"] = None
            if self["role"] != "all":
                raise usage.UsageError(
                    f"--role {self['role']} needs --redis: lobbies and game hosts in separate "
                    "processes find each other in Redis"
                )
            for name in ("redis-password-file", "redis-ca-file"):
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} is for --redis, which is not given")
            return
        try:
            settings = parse_redis_url(self["redis"])
        except ValueError as e:
            raise usage.UsageError(f"--redis: {e}") from None
        password = redis_password(self["redis-password-file"], os.environ)
        if password is not None:
            settings = attrs.evolve(settings, password=password)
        if self["redis-ca-file"] is not None:
            if not settings.tls:
                raise usage.UsageError("--redis-ca-file is for a rediss:// (TLS) --redis")
            settings = attrs.evolve(settings, ca_file=self["redis-ca-file"])
            try:
                settings.tls_options()
            except ValueError as e:
                raise usage.UsageError(f"--redis-ca-file {e}") from None
        self["redis-settings"] = settings
        if self["token-key"] is None:
            raise usage.UsageError(
                "--redis needs --token-key-file: the lobbies and game hosts on one Redis must "
                "share the connect-token key (a file of 32 random bytes the operator makes, "
                "e.g. `head -c 32 /dev/urandom > vinom-token.key`)"
            )

    def _check_websocket(self) -> None:
        web = self["websocket"].strip()
        if web.lower() == "none":
            self["websocket"] = None
            self["websocket-origin-policy"] = None
            return
        if web.isdigit():
            web = f"ssl:{web}"
        if not web:
            raise usage.UsageError("--websocket must be a port, a strports description or 'none'")
        _check_endpoint(web, "websocket")
        self["websocket"] = web
        if self["websocket-origins"] is None:
            port = _endpoint_port(web)
            hosts = ("localhost", "127.0.0.1", self["public-host"])
            origins = page_origins(hosts, port) if port else ()
        else:
            origins = tuple(self["websocket-origins"].split(","))
        try:
            self["websocket-origin-policy"] = OriginPolicy.from_list(origins)
        except ValueError as e:
            raise usage.UsageError(f"--websocket-origins: {e}") from None


def _game_url(public_web_url: str | None, websocket: str | None, public_host: str) -> str | None:
    """The public URL of this process's `/game` WebSocket (match_found's `game_url`), or
    None when there is none (`--websocket none`) or it cannot be known (plain HTTP or
    port 0 without --public-web-url)."""
    if public_web_url is not None:
        if websocket is None:
            raise usage.UsageError("--public-web-url needs the web server (--websocket)")
        parts = urlsplit(public_web_url.strip())
        scheme = _WEB_SCHEMES.get(parts.scheme.lower())
        try:
            port = parts.port
        except ValueError:
            port = None
            scheme = None
        if scheme is None or not parts.hostname or parts.query or parts.fragment:
            raise usage.UsageError(
                f"--public-web-url must look like wss://games.example.com[:port][/prefix], "
                f"not {public_web_url!r}"
            )
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        netloc = host if port is None else f"{host}:{port}"
        return f"{scheme}://{netloc}{parts.path.rstrip('/')}/game"
    if websocket is None or websocket.partition(":")[0].lower() != "ssl":
        return None
    port = _endpoint_port(websocket)
    if not port:
        return None
    host = f"[{public_host}]" if isIPv6Address(public_host) else public_host
    return f"wss://{host}:{port}/game"


# The schemes --public-web-url takes, and the WebSocket scheme each means.
_WEB_SCHEMES = {"wss": "wss", "https": "wss", "ws": "ws", "http": "ws"}


def _check_public_host(host: str) -> str:
    """The address put into connect tokens: an IP address or an ASCII (IDNA) host name."""
    host = host.strip()
    try:
        encode_host(HostAddress(host, 1))
    except ValueError as e:
        raise usage.UsageError(f"--public-host {host!r}: {e}") from None
    return host


def _check_certificate(certificate: str, private_key: str) -> None:
    """The certificate and key must be PEM and belong together: say so before listening."""
    try:
        with open(certificate, "rb") as f:
            cert_pem = f.read()
        with open(private_key, "rb") as f:
            key_pem = f.read()
        PrivateCertificate.loadPEM(key_pem + b"\n" + cert_pem).options()
    except Exception as e:  # OpenSSL raises its own error types for every kind of bad PEM
        raise usage.UsageError(
            f"--certificate {certificate!r} / --private-key {private_key!r}: not a usable "
            f"PEM certificate and matching key ({type(e).__name__})"
        ) from None


def _endpoint_port(description: str) -> int | None:
    """The port a strports description listens on (None if it names none, e.g. unix:)."""
    kind, _, rest = description.partition(":")
    if kind.lower() not in ("ssl", "tcp", "tcp6"):
        return None
    fields = rest.split(":") if rest else []
    named = dict(f.split("=", 1) for f in fields if "=" in f)
    positional = [f for f in fields if "=" not in f]
    port = named.get("port", positional[0] if positional else None)
    return int(port) if port is not None and port.isdigit() else None


def _check_endpoint(description: str, option: str = "lobby") -> None:
    """Check a server endpoint description without listening.

    TLS descriptions are checked by hand because Twisted's parser loads the
    certificate files, and the dev certificate is only made when the service starts.
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    kind, _, rest = description.partition(":")
    if kind.lower() == "ssl":
        fields = rest.split(":") if rest else []
        positional = [f for f in fields if "=" not in f]
        named = dict(f.split("=", 1) for f in fields if "=" in f)
        port = named.get("port", positional[0] if positional else None)
        if port is None or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise usage.UsageError(
                f"--{option} {description!r}: ssl needs a port, e.g. ssl:7350"
            )
        for name in ("privateKey", "certKey"):
            path = named.get(name)
            if path is not None and not os.path.isfile(path):
                raise usage.UsageError(
                    f"--{option} {description!r}: {name} {path!r}: no such file"
                )
        return
    try:
        serverFromString(MemoryReactor(), description)
    except (ValueError, TypeError, KeyError) as e:
        raise usage.UsageError(
            f"--{option} {description!r} is not a valid endpoint: {e}"
        ) from None


# Twisted's listen backlog is 50: when hundreds of players connect at once the
# kernel drops SYNs and they retry a second later. Linux caps it at somaxconn.
DEFAULT_BACKLOG = 1024


def lobby_description(options: usage.Options, certificate: str, private_key: str) -> str:
    """The lobby's strports description: the certificate filled in for bare 'ssl:PORT',
    and a listen backlog of `DEFAULT_BACKLOG` for ssl/tcp unless one is given."""
    return _with_certificate(options["lobby"], certificate, private_key)


def web_description(options: usage.Options, certificate: str, private_key: str) -> str:
    """The web server's strports description (--websocket), completed as `lobby_description`."""
    return _with_certificate(options["websocket"], certificate, private_key)


def _with_certificate(description: str, certificate: str, private_key: str) -> str:
    kind = description.partition(":")[0].lower()
    if kind == "ssl" and "privateKey=" not in description:
        description += f":privateKey={_escape(private_key)}:certKey={_escape(certificate)}"
    if kind in ("ssl", "tcp", "tcp6") and "backlog=" not in description:
        description += f":backlog={DEFAULT_BACKLOG}"
    return description


def _escape(path: str) -> str:
    # strports uses ':' as its separator and '\\' as its escape.
    return path.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def makeService(options: usage.Options, reactor: Any = None) -> service.MultiService:
    """The whole server, or the part `--role` asks for.

    Role `all` (the default): lobby listener, lobby, game hosting (port
    allocator, game hosts). Role `lobby`: the lobby alone, placing matches on
    the game hosts registered in Redis; role `host`: game hosting alone,
    registered in Redis and taking the matches lobbies place on it. With
    `--redis` the player store, the matchmaker and the host registry are in
    Redis (docs/scaling.md).

    `reactor` (IReactorTCP, IReactorUDP, IReactorTime) defaults to the global
    reactor; tests pass their own. With the default (twistd), SIGTERM and SIGINT
    drain the server before it stops (vinom.server.drain); a second one stops it at once.
    """
    handle_signals = reactor is None
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor

    root = LogFormatService(options["log-format"])
    root.setName("vinom")
    role: str = options.get("role", "all")
    runs_lobby = role in ("all", "lobby")
    runs_host = role in ("all", "host")
    # A game host's web server (/game) presents a certificate as the lobby does.
    serves_web = options["websocket"] is not None
    needs_certificate = runs_lobby or serves_web
    certificate, private_key = _certificate(options) if needs_certificate else ("", "")

    games: GameRegistry = options["game-registry"]
    # --match-size values were checked against the offered games in postOptions.
    match_sizes = {**games.match_sizes(), **options["match-sizes"]}
    protocol_config = ProtocolConfig(token_key=options["token-key"] or generate_token_key())

    redis = None
    addresses: list[Address] = []
    redis_settings = options.get("redis-settings")
    if redis_settings is not None and handle_signals:
        # Under twistd: a Redis that does not answer is one line and a non-zero exit.
        check_redis(redis_settings)
    if redis_settings is not None:
        redis = RedisClient.open(redis_settings, reactor)
        # First in, last out: the pool closes after everything that uses it stopped.
        pool = RedisClientService(redis)
        pool.setName("redis")
        pool.setServiceParent(root)

    low, _high = options["udp-port-range"]
    hosting: GameHostingService | None = None
    host_factory: Any = None
    agent: HostAgent | None = None
    if runs_host:
        # The ring holds one port per concurrent game: --max-games bounds the games.
        allocator = PortAllocator(range(low, low + options["max-games"]))
        host_factory = _host_factory(options, reactor, protocol_config, games)
        if isinstance(host_factory, service.Service):
            # Before the hosting service, so that it stops after it: hosts stop first.
            host_factory.setName("game-host-processes")
            host_factory.setServiceParent(root)
        hosting = GameHostingService(
            allocator, host_factory, game_url=options.get("game-url") if serves_web else None
        )
        hosting.setName("hosting")
        hosting.setServiceParent(root)
        if redis is not None:
            # After the hosting service: it leaves the registry before the games stop.
            agent = HostAgent(
                redis=redis,
                registry=RedisHostRegistry(redis),
                hosting=hosting,
                public_host=options["public-host"],
                ports=(low, low + options["max-games"] - 1),
                clock=reactor,
            )
            agent.setName("host-agent")
            agent.setServiceParent(root)

    lobby = None
    matchmaker: Any = None
    # Parties in Redis with --redis; otherwise the lobby keeps them in memory.
    parties: Any = None
    lobby_hosting: Any = hosting
    formed_here: Callable[[str], bool] | None = None
    websocket_lobby = None
    game_sockets = None
    if runs_lobby:
        if redis is not None:
            assert redis_settings is not None
            # Imported here: txredisapi installs the default reactor when imported.
            from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings

            store: Any = RedisPlayerStore(redis)
            matchmaker = RedisMatchmaker(
                redis.handler,
                client_endpoint(redis_settings, reactor),
                match_sizes,
                reactor,
                settings=RedisMatchmakerSettings(prefix=redis_settings.key_prefix + "mm"),
                password=redis_settings.password,
                windows=options["rating-windows"],
                team_sizes=games.team_sizes(),
                # Its heartbeat reads Redis's clock for every call's deadline.
                redis_clock=redis.redis_clock,
            )
            mm_service = MatchmakerService(matchmaker, reactor)
            mm_service.setName("matchmaker")
            mm_service.setServiceParent(root)
            remote = RemoteMatchHosting(
                redis=redis,
                registry=RedisHostRegistry(redis),
                clock=reactor,
                lobby_id=matchmaker.lobby_id,
                formed_by=matchmaker.formed_by,
            )
            formed_here = _formed_here(matchmaker)
            remote.setName("placement")
            remote.setServiceParent(root)
            placements = SubscriptionService(
                RedisSubscription(
                    client_endpoint(redis_settings, reactor),
                    remote.channel,
                    remote.handle_message,
                    reactor,
                    redis_settings.password,
                )
            )
            placements.setName("placement-channel")
            placements.setServiceParent(root)
            lobby_hosting = remote
            from vinom.cluster.parties import PartyStoreService, RedisPartySettings, RedisPartyStore

            parties = RedisPartyStore(
                redis,
                client_endpoint(redis_settings, reactor),
                reactor,
                max_size=max(match_sizes.values(), default=8),
                settings=RedisPartySettings(prefix=redis_settings.key_prefix + "party"),
                password=redis_settings.password,
            )
            party_service = PartyStoreService(parties)
            party_service.setName("parties")
            party_service.setServiceParent(root)
        else:
            store = MemoryPlayerStore()
            matchmaker = FifoMatchmaker(
                match_sizes,
                reactor,
                windows=options["rating-windows"],
                team_sizes=games.team_sizes(),
            )
        issuer = TokenIssuer(
            IssuerConfig(
                protocol=protocol_config,
                token_lifetime=options["token-lifetime"],
                session_timeout=options["session-timeout"],
            )
        )
        # With Redis, party_join attempts per address are counted there, by every lobby.
        party_joins = None if redis is None else RedisAddressLimiter(
            redis, "party-join", options["queue-rate"], options["queue-burst"]
        )
        lobby = _lobby(options, match_sizes, games, matchmaker, lobby_hosting, issuer, store,
                       reactor, shared_store=redis is not None, parties=parties,
                       formed_here=formed_here, party_joins=party_joins)  # fmt: skip
        lobby.setName("lobby")
        lobby.setServiceParent(root)

        # Added last so it stops first: no new lobby connections while the rest drains.
        listener = Listener(
            lobby_description(options, certificate, private_key), lobby, reactor, "lobby"
        )
        listener.setName("lobby-listener")
        listener.setServiceParent(root)
        # A certificate of the operator's own is trusted as any other; the dev one is not.
        dev = options["certificate"] is None
        trust = f" --trust {Path(certificate).resolve()}" if dev else ""
        addresses.append(Address("terminal clients", listener, lambda host, port: (
            f"vinom play GAME --lobby {host}:{port}{trust}")))  # fmt: skip

    # A lobby whose matches run elsewhere waits for none of them: its players
    # reconnect through another lobby.
    drain = Drain(lobby, hosting, reactor, options["drain-timeout"], host=agent)
    root.before_stop = drain.run
    if handle_signals:
        reactor.callWhenRunning(drain.install_signal_handlers)

    if serves_web:
        # The lobby at /lobby where it runs, and /game where games are hosted: a
        # browser plays on the web server of the process hosting its match.
        if lobby is not None:
            websocket_lobby = WebSocketLobbyFactory(
                lobby,
                options["websocket-origin-policy"],
                reactor=reactor,
                trusted_proxies=options["websocket-proxies"],
            )
        if hosting is not None:
            game_sockets = GameSocketFactory(
                hosting,
                protocol_config,
                options["websocket-origin-policy"],
                reactor=reactor,
                # The token is a game socket's hello: the lobby's hello timeout applies,
                # and the lobby's connection caps to the sockets open at once.
                config=GameSocketConfig(
                    token_timeout=options["lobby-hello-timeout"],
                    message_rate=options["web-game-rate"],
                    message_burst=2 * options["web-game-rate"],
                    max_sockets_per_ip=options["max-connections-per-ip"],
                    max_sockets=options["max-connections"],
                ),
                trusted_proxies=options["websocket-proxies"],
            )
        public_site = web_site(
            websocket_lobby, game_sockets, timeout=options["lobby-hello-timeout"],
            access_log=bool(options.get("access-log")),
        )  # fmt: skip
        web = Listener(
            web_description(options, certificate, private_key), public_site, reactor,
            "websocket",
        )
        web.setName("web")
        web.setServiceParent(root)
        if websocket_lobby is not None:
            scheme = "https" if options["websocket"].lower().startswith("ssl") else "http"
            addresses.append(Address("play in a browser", web,
                                     lambda host, port: f"{scheme}://{host}:{port}/"))  # fmt: skip

    if options["ops-port"] is not None:
        # The game hosts' figures where they run here; a lobby alone shows the
        # registry's hosts as it sees them (docs/operations.md).
        site, _registry = ops_site(
            StatusReader(
                lobby, matchmaker, hosting if hosting is not None else lobby_hosting,
                host_factory, drain, reactor, websocket_lobby, game_sockets,
            ),
            token=options.get("ops-token"),
            access_log=bool(options.get("access-log")),
        )  # fmt: skip
        ops = Listener(options["ops-port"], site, reactor, "ops-port")
        ops.setName("ops")
        ops.setServiceParent(root)
        addresses.append(
            Address("operations dashboard", ops, lambda h, p: f"http://{h}:{p}/dashboard/")
        )
        interface = listen_interface(options["ops-port"])
        if interface is not None and not is_loopback(interface) and not options.get("ops-token"):
            _log.warn(
                "vinom: the operations endpoint listens on {where} with no --ops-token-file: "
                "anyone who reaches it reads player names, ids and addresses",
                where=f"{interface or '0.0.0.0'}",
            )

    build = build_info()
    if lobby is not None:
        _log.info(
            "vinom: lobby on {lobby} (WebSocket: {web}), games: {names}",
            lobby=options["lobby"],
            web=options["websocket"] or "none",
            names=", ".join(games.names()),
        )
    if runs_host:
        _log.info(
            "vinom: {games} game(s) at once on UDP {low}-{top} (clients told {public}); "
            "packet path {code}, AEAD {aead}",
            games=options["max-games"],
            low=low,
            top=low + options["max-games"] - 1,
            public=options["public-host"],
            code=build["code"],
            aead=build["aead"],
        )
        if game_sockets is not None:
            _log.info(
                "vinom: browsers play on {web} at /game (match_found's game_url: {url})",
                web=options["websocket"],
                url=options.get("game-url") or "none",
            )
    if redis_settings is not None:
        _log.info(
            "vinom: role {role} on Redis {url}{host}",
            role=role,
            url=redis_settings.url,
            host="" if agent is None else f", game host id {agent.host_id}",
        )
    # Added last: it starts when everything listens, and says where to go.
    announcement = Announcement(addresses, options["public-host"])
    announcement.setName("announcement")
    announcement.setServiceParent(root)
    return root


def _formed_here(matchmaker: Any) -> Callable[[str], bool]:
    """Whether a match was formed by this lobby's (Redis) matchmaker."""
    return lambda match_id: bool(matchmaker.formed_by(match_id) == matchmaker.lobby_id)


def _lobby(
    options: usage.Options,
    match_sizes: dict[str, int],
    games: GameRegistry,
    matchmaker: Any,
    hosting: Any,
    issuer: TokenIssuer,
    store: Any,
    reactor: Any,
    *,
    shared_store: bool,
    parties: Any = None,
    formed_here: Callable[[str], bool] | None = None,
    party_joins: RedisAddressLimiter | None = None,
) -> LobbyFactory:
    return LobbyFactory(
        config=LobbyConfig(
            max_connections_per_ip=options["max-connections-per-ip"],
            frame_rate=options["frame-rate"],
            frame_burst=options["frame-burst"],
            max_protocol_errors=options["max-protocol-errors"],
            max_connections=options["max-connections"],
            max_pending_per_ip=options["max-pending-per-ip"],
            queue_rate=options["queue-rate"],
            queue_burst=options["queue-burst"],
            hello_timeout=options["lobby-hello-timeout"],
            idle_timeout=options["lobby-idle-timeout"],
            ping_interval=options["lobby-ping-interval"],
            ping_timeout=options["lobby-ping-timeout"],
            max_matches_per_ip=options["max-matches-per-ip"],
            max_output_bytes=options["lobby-max-output"],
        ),
        games=match_sizes,
        matchmaker=matchmaker,
        hosting=hosting,
        token_issuer=issuer,
        store=store,
        clock=reactor,
        player_ranges={g.name: (g.min_players, g.max_players) for g in games},
        shared_store=shared_store,
        parties=parties,
        team_sizes=games.team_sizes(),
        formed_here=formed_here,
        party_join_limiter=party_joins,
        game_titles={g.name: display_name_of(g) for g in games},
    )


def _host_factory(
    options: usage.Options, reactor: Any, protocol_config: ProtocolConfig, games: GameRegistry
) -> InlineGameHostFactory | WorkerPool | ProcessPerMatch:
    """The game hosts --game-host and --host-workers ask for."""
    room_config = RoomConfig(
        connect_deadline=options["connect-deadline"],
        reconnect_grace=options["reconnect-grace"],
    )
    if options["game-host"] == "workers" and options["host-workers"] == 0:
        return InlineGameHostFactory(
            reactor=reactor,
            games=games.get,
            protocol_config=protocol_config,
            public_host=options["public-host"],
            interface=options["udp-interface"],
            room_config=room_config,
        )
    settings = WorkerSettings(
        protocol=protocol_config,
        public_host=options["public-host"],
        interface=options["udp-interface"],
        games=tuple(games.names()),
        room_config=room_config,
        heartbeat_timeout=options["heartbeat-timeout"],
    )
    if options["game-host"] == "process":
        return ProcessPerMatch(settings, options["process-pool"], reactor)
    return WorkerPool(settings, options["host-workers"], reactor)


def _offered_games(names: str | None) -> GameRegistry:
    """The games --games names (all offered by default if None), from the installed plugins."""
    installed = GameRegistry.from_plugins()
    if names is None:
        offered = installed.offered()
    else:
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        if not wanted:
            raise usage.UsageError("--games needs at least one game name")
        try:
            offered = installed.offered(wanted)
        except UnknownGame as error:
            raise usage.UsageError(
                f"--games: no game {error.args[0]!r} (installed: {', '.join(installed.names())})"
            ) from None
    if not len(offered):
        raise usage.UsageError("no game to offer: install a game plugin or name one in --games")
    return offered


def match_size_overrides(games: GameRegistry, sizes: dict[str, int]) -> dict[str, int]:
    """--match-size overrides, each within its game's player range."""
    for name, size in sizes.items():
        if name not in games:
            raise usage.UsageError(
                f"--match-size {name}={size}: no game {name!r} (offered: "
                f"{', '.join(games.names())})"
            )
        game = games.get(name)
        if not game.min_players <= size <= game.max_players:
            raise usage.UsageError(
                f"--match-size {name}={size}: {name} takes {game.min_players} to "
                f"{game.max_players} players"
            )
        team_size = games.team_sizes().get(name)
        if team_size is not None and size % team_size:
            raise usage.UsageError(
                f"--match-size {name}={size}: {name} has teams of {team_size}; the match "
                "size must be a multiple of it"
            )
    return sizes


def rating_windows(
    games: GameRegistry, overrides: dict[str, RatingWindow]
) -> dict[str, RatingWindow]:
    """Each offered game's ranked window: --rating-window, else the game's own
    `rating_window`; games with neither get the matchmaker's default."""
    for name in overrides:
        if name not in games:
            raise usage.UsageError(
                f"--rating-window {name}=...: no game {name!r} (offered: "
                f"{', '.join(games.names())})"
            )
    windows = {name: RatingWindow(*window) for name, window in games.rating_windows().items()}
    return {**windows, **overrides}


def _certificate(options: usage.Options) -> tuple[str, str]:
    if options["certificate"] is not None:
        return options["certificate"], options["private-key"]
    try:
        paths = ensure_dev_certificate(options["data-dir"])
    except OSError as e:
        raise StartupError(
            f"--data-dir {options['data-dir']!r} is not usable ({e.strerror or e}); "
            "name a directory this user may write with --data-dir"
        ) from None
    _log.info(
        "vinom: {what} the self-signed dev certificate {cert}; clients trust it with "
        "--trust {cert}",
        what="made" if paths.created else "using",
        cert=str(paths.certificate.resolve()),
    )
    return str(paths.certificate), str(paths.private_key)
