"""The option groups of `twistd vinom`'s roles (vinom.server.options composes them):
each a small mixin of `optParameters`, `optFlags`, `opt_` methods and `optLimits`
(`--limit NAME=VALUE` rows) defined once, by concern: the server's data and log, its
certificate, the games, the web server, the lobby, the relay key, sign-in, the game
hosts, the records. Each option's own check is its coerce column (vinom.server.checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.python import usage

from vinom.matchmaking.windows import RatingWindow
from vinom.server.accounts import database_option
from vinom.server.auth import AUTH_LIMITS, AUTH_PARAMS, auth_option
from vinom.server.checks import (
    bind_address,
    choice,
    directory,
    existing_file,
    label_value,
    limit,
    non_negative_float,
    non_negative_int,
    param,
    positive_float,
    positive_int,
    public_host,
    relay_address,
    session_timeout,
    trusted_proxies,
    udp_port,
)
from vinom.server.logs import LOG_FORMATS

DEFAULT_LOBBY = "ssl:7350"
DEFAULT_OPS = "tcp:7390:interface=127.0.0.1"
DEFAULT_WEBSOCKET = "7380"
DEFAULT_UDP_PORTS = "7400-7499"
# How a role hosts its matches (`--matches`).
MATCHES = ("workers", "here", "per-match")


class OptionGroup:
    """A group of options (`optParameters`, `optFlags`, `opt_` methods) and limits
    (`optLimits`, rows as `optParameters`' given as `--limit NAME=VALUE`), mixed into
    the usage.Options of each role that takes them: its `opt_` methods read and write
    the values there."""

    # The heading of its options in `--help` and of its limits in `--limit help`.
    title = ""
    if TYPE_CHECKING:

        def __getitem__(self, name: str) -> Any: ...

        def __setitem__(self, name: str, value: Any) -> None: ...


class ServerOptions(OptionGroup):
    """What every server role takes: its data, its log, its operations endpoint, its drain."""

    title = "The server: its data, logs, operations endpoint and drain"
    optFlags = [
        [
            "access-log",
            None,
            "Log every HTTP request of the web server and the operations endpoint "
            "(default: off).",
        ],
    ]

    optParameters = [
        param(
            "data-dir",
            "d",
            "vinom-data",
            "Directory for the dev certificate and other state.",
            directory,
        ),
        param(
            "log-format",
            None,
            "text",
            "Log format: 'text' (twistd's) or 'json' (JSON lines).",
            choice(LOG_FORMATS),
        ),
        param(
            "public-host",
            None,
            "127.0.0.1",
            "Address of this server as clients should reach it: the game hosts' (sent in "
            "match_found), and the one the start-up lines name.",
            public_host,
        ),
        param(
            "ops-port",
            None,
            DEFAULT_OPS,
            "Operations endpoint (/health, /ready, /metrics, /status, /dashboard/): a port "
            "(on 127.0.0.1), a strports description, or 'none'. Loopback by default: it is "
            "for the operator, not for players.",
        ),
        param(
            "ops-token-file",
            None,
            None,
            "File holding a bearer token (one line) that /metrics, /status and the dashboard "
            "ask for; /health and /ready stay open. Default: no token.",
        ),
    ]

    optLimits = [
        limit(
            "drain-timeout",
            600.0,
            "Seconds running matches may play on after SIGTERM before they are aborted "
            "(a second SIGTERM stops at once).",
            non_negative_float,
        ),
    ]


class CertificateOptions(OptionGroup):
    """The TLS certificate of the lobby, the web server and the gateway's terminating routes."""

    title = "TLS certificate"
    optParameters = [
        param("certificate", "c", None, "TLS certificate (PEM) for the lobby.", existing_file),
        param("private-key", "k", None, "Private key (PEM) of --certificate.", existing_file),
    ]


class GameOptions(OptionGroup):
    """The games offered, and what lobbies and game hosts agree on: the connect-token key, the
    session timeout, the realm."""

    title = "Games, and what lobbies and game hosts share"
    optParameters = [
        param(
            "games",
            None,
            None,
            "Comma-separated games to offer (default: every installed game offered by "
            "default, which leaves out test and benchmark games such as duel; "
            "`vinom games` lists them).",
        ),
        param(
            "token-key-file",
            None,
            None,
            "Connect-token key shared by lobby and game hosts (32 bytes: raw, hex or base64). "
            "Default: a fresh random key each start (fine when one process runs both).",
        ),
        param(
            "realm",
            None,
            "default",
            "The realm this process serves (a Kubernetes label value). A game host "
            "registers under it (and with --agones sets it as the label "
            "agones.dev/sdk-realm); a lobby matches its players with its realm's and "
            "places their matches only on its realm's hosts.",
            label_value,
        ),
    ]

    optLimits = [
        limit(
            "session-timeout",
            5.0,
            "Seconds without a valid packet after which a UDP session ends.",
            session_timeout,
        ),
    ]


class WebOptions(OptionGroup):
    """The public web server (/lobby where a lobby runs, /game where games are hosted) and the
    caps on its connections."""

    title = "The web server (/lobby, /game) and its connections"
    optParameters = [
        param(
            "websocket",
            None,
            DEFAULT_WEBSOCKET,
            "The public web server (the lobby over WebSocket at /lobby, and the games this "
            "process hosts at /game): a port (TLS with the server's certificate), a strports "
            "description as for --lobby, or 'none'.",
        ),
        param(
            "public-web-url",
            None,
            None,
            "The web server's URL as browsers reach it (wss://games.example.com, a path prefix "
            "allowed), when a proxy sits in front; match_found's game_url is it plus /game. "
            "Default: wss://PUBLIC-HOST:PORT with the --websocket port, when it listens with TLS.",
        ),
        param(
            "websocket-origins",
            None,
            None,
            "Comma-separated origins of the web pages that may open the WebSocket lobby, or '*' "
            "for any (default: https:// and localhost, 127.0.0.1 and --public-host, on the "
            "--websocket port). Clients that send no Origin (not browsers) are always let in.",
        ),
        param(
            "websocket-proxies",
            None,
            0,
            "Reverse proxies in front of the web server that add the client's address to "
            "X-Forwarded-For; the lobby's per-address limits then count that address.",
            non_negative_int,
        ),
        param(
            "trusted-proxy",
            None,
            None,
            "Comma-separated addresses or CIDR networks (10.244.0.0/16: a Kubernetes pod "
            "network) of gateways (or other PROXY protocol senders, v2 or v1) in "
            "front of the lobby and the web server: connections from them must begin with a "
            "PROXY header, whose client address the per-address limits count; a PROXY header "
            "from any other address is refused. Default: none.",
            trusted_proxies,
        ),
    ]

    optLimits = [
        limit(
            "max-connections-per-ip",
            32,
            "Concurrent lobby connections per client IP.",
            positive_int,
        ),
        limit(
            "max-connections", 10_000, "Concurrent lobby connections in all.", positive_int
        ),
        limit(
            "lobby-hello-timeout",
            10.0,
            "Seconds a new lobby connection has for the TLS handshake and its first frame.",
            positive_float,
        ),
    ]


class LobbyOptions(OptionGroup):
    """The lobby: its listener, its limits, its matchmaking, the connect tokens it issues and
    the relay it sends players through."""

    title = "The lobby: its listener, limits and matchmaking"
    optParameters = [
        param(
            "lobby",
            "l",
            DEFAULT_LOBBY,
            "Lobby endpoint: a port (TLS on it) or a strports description. 'ssl:' is "
            "read as 'vinom-ssl:' (the same fields, with TLS session tickets); without "
            "privateKey= it gets --certificate/--private-key, or the dev certificate.",
        ),
        param(
            "relay",
            None,
            None,
            "The UDP relay the game hosts sit behind, as players reach it: HOST:PORT or "
            "HOST:FIRST-LAST (its public ports). match_found then sends players there with a "
            "route token; needs --relay-key-file (docs/gateway.md, UDP relay).",
            relay_address,
        ),
    ]

    optLimits = [
        limit(
            "frame-rate",
            20.0,
            "Lobby frames per second per connection (token bucket).",
            positive_float,
        ),
        limit(
            "frame-burst",
            40,
            "Lobby frame burst per connection (token bucket size).",
            positive_int,
        ),
        limit(
            "max-protocol-errors",
            10,
            "Protocol errors before a lobby connection closes.",
            positive_int,
        ),
        limit(
            "max-pending-per-ip",
            32,
            "Players from one client IP (IPv6: one /64) queued or in a match that has not ended.",
            positive_int,
        ),
        limit(
            "max-matches-per-ip",
            16,
            "Matches not ended with players from one client IP (IPv6: one /64), counting its "
            "queued players as the matches they may make: the game ports one address can hold.",
            positive_int,
        ),
        limit(
            "queue-rate",
            1.0,
            "Lobby queue and room requests per second per client IP (token bucket); "
            "party_join requests too, counted apart (across lobbies with --redis).",
            positive_float,
        ),
        limit(
            "queue-burst",
            32,
            "Lobby queue and room request burst per client IP (token bucket size); the same "
            "for party_join, counted apart.",
            positive_int,
        ),
        limit(
            "lobby-idle-timeout",
            60.0,
            "Seconds a lobby connection that is not queued may stay silent (a ping keeps it).",
            positive_float,
        ),
        limit(
            "lobby-ping-interval",
            5.0,
            "Seconds a queued player's connection may be silent before the lobby pings it.",
            positive_float,
        ),
        limit(
            "lobby-ping-timeout",
            5.0,
            "Seconds a pinged queued player has to answer before its connection is closed "
            "and its ticket withdrawn.",
            positive_float,
        ),
    ]

    def opt_match_size(self, value: str) -> None:
        """Players per match for one game, GAME=N (repeatable); default: the game's own."""
        game, sep, size = value.partition("=")
        if not sep or not game.strip():
            raise usage.UsageError(f"--match-size must look like maze=4, not {value!r}")
        self["match-size"].append((game.strip(), positive_int("match-size", size)))

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
        base, growth, *maximum = (non_negative_float("rating-window", p) for p in parts)
        if maximum and maximum[0] < base:
            raise usage.UsageError(
                f"--rating-window {value!r}: MAX ({maximum[0]:g}) must be at least BASE "
                f"({base:g})"
            )
        window = RatingWindow(base, growth, maximum[0] if maximum else None)
        self["rating-window"].append((game.strip(), window))


class RelayKeyOptions(OptionGroup):
    """The route-token key shared by the lobbies and the UDP relay."""

    title = "The UDP relay's route tokens"
    optParameters = [
        param(
            "relay-key-file",
            None,
            None,
            "Route-token key shared by the lobbies and the UDP relay (32 bytes: raw, hex or "
            "base64); a lobby's with --relay, a gateway's with --relay-ports.",
        ),
    ]


class AuthOptions(OptionGroup):
    """Who the players are, and the account database (docs/accounts.md)."""

    title = "Sign-in and accounts"
    optParameters = [
        *AUTH_PARAMS,
        param(
            "database",
            None,
            None,
            "The account database (docs/accounts.md): a postgresql://user@host/db URL, which "
            "every lobby of a cluster shares (keep its password out of the command line: "
            "$PGPASSWORD or ~/.pgpass), or a SQLite file. Default: DATA_DIR/accounts.sqlite3; "
            "with --redis, only a postgresql:// URL, and none by default.",
            database_option,
        ),
    ]

    optLimits = list(AUTH_LIMITS)

    def opt_auth_option(self, value: str) -> None:
        """An option of the --auth plugin, KEY=VALUE (repeatable; a studio's own
        authenticator reads them)."""
        self["auth-option"].append(auth_option(value))


class HostingOptions(OptionGroup):
    """The game hosts: their UDP ports, where their matches run, their matches' timing,
    spectators and the browsers' game sessions."""

    title = "Game hosts: UDP ports, processes, timing, spectators"
    optFlags = [
        [
            "snapshot-checksums",
            None,
            "Real-time rooms send each snapshot's CRC-32 so that clients prove the view "
            "they rebuilt is the server's (docs/protocol.md section 16; for tests, costs "
            "host CPU; default: off).",
        ],
    ]

    optParameters = [
        param("udp-ports", "u", DEFAULT_UDP_PORTS, "UDP port range for game hosts, first-last."),
        param(
            "udp-interface",
            None,
            "",
            "Address game hosts and the --webtransport listener bind to ('' = all interfaces).",
            bind_address,
        ),
        param(
            "max-games",
            "g",
            None,
            "Most games running at once (default: the number of UDP ports).",
            positive_int,
        ),
        param(
            "matches",
            None,
            "workers",
            "Where this process's matches run: 'workers' (--host-workers long-lived worker "
            "processes), 'here' (in this process: one core in all) or 'per-match' (a child "
            "process per match).",
            choice(MATCHES),
        ),
        param(
            "host-workers",
            None,
            None,
            "With --matches workers: the worker processes (default: one per CPU core beyond "
            "the first, at least 1).",
            positive_int,
        ),
        param(
            "process-pool",
            None,
            2,
            "With --matches per-match: children started ahead, ready for the next matches.",
            non_negative_int,
        ),
        param(
            "webtransport",
            None,
            None,
            "A UDP port for game sessions over WebTransport (HTTP/3 datagrams) beside /game: "
            "browsers that have it play there, the others on the WebSocket. Needs --websocket "
            "(where the page learns of it). Default: none.",
            udp_port,
        ),
    ]

    optLimits = [
        limit(
            "reconnect-grace",
            30.0,
            "Seconds a player whose session ended keeps the seat, to reconnect through the lobby.",
            positive_float,
        ),
        limit(
            "connect-deadline",
            30.0,
            "Seconds every player of a new match has to connect before the match is aborted.",
            positive_float,
        ),
        limit(
            "spectator-delay",
            0.0,
            "Seconds spectators lag behind a match (a competitive server: enough that "
            "what they see no longer helps a player).",
            non_negative_float,
        ),
        limit(
            "max-spectators",
            100,
            "Spectators one match may have at once (0: no spectators).",
            non_negative_int,
        ),
        limit(
            "web-game-rate",
            20.0,
            "Messages per second a browser's /game socket may send (burst: twice as many); "
            "above it the socket is closed (4008). Raise it for a game that acts faster.",
            positive_float,
        ),
    ]


class RecordOptions(OptionGroup):
    """The match records the game hosts write (docs/operations.md, Match records)."""

    title = "Match records"
    optFlags = [
        [
            "no-record",
            None,
            "Record no match (by default every match is recorded in --record-dir, to "
            "replay it with `vinom replay FILE`; docs/operations.md, Match records).",
        ],
        [
            "web-replays",
            None,
            "The web server serves /replays/<match id>: a recorded match's public views, "
            "which the page replays (docs/web.md, Replays; default: off).",
        ],
    ]

    optParameters = [
        param(
            "record-dir",
            None,
            None,
            "Directory of the match records (default: DATA_DIR/records).",
        ),
    ]

    optLimits = [
        limit(
            "record-keep-days",
            7.0,
            "Days a match record is kept; older ones are deleted.",
            positive_float,
        ),
        limit(
            "record-max-mb",
            1024.0,
            "Megabytes of match records kept in all; the oldest beyond it are deleted.",
            positive_float,
        ),
        limit(
            "record-hash-every",
            20,
            "A state hash in the record every this many ticks (a turn-based game: calls into "
            "the game, its moves, joins and leaves), and one at the end; a replay checks each.",
            positive_int,
        ),
    ]

    def opt_no_record_game(self, value: str) -> None:
        """A game whose matches are not recorded (repeatable; docs/operations.md)."""
        if not value.strip():
            raise usage.UsageError("--no-record-game needs a game's name")
        self["no-record-game"].append(value.strip())
