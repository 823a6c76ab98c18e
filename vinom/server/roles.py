"""The role builders of `twistd vinom`: each adds one role's services to the root service.

`makeService` (vinom.server.tap) calls them in order, and the order is the
start order (the root stops its children in reverse): the shared state
first (a fleet's store closes last), then the game hosts, the lobby and its
listener, the web server, the operations endpoint, and last the
announcement of where to go. `build_shared` returns one `SharedState`, in
this process's memory or in the installed fleet's store (vinom.server.fleet:
its pool joins the root first, its services just before the lobby); the lobby
is given its parts, and what differs between them is theirs to say (each
`IMatchHosting` saves its placements).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import field, frozen
from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from vinom.accounts.device import DEVICE
from vinom.accounts.interfaces import IAccountStore
from vinom.accounts.sql import describe
from vinom.games.registry import GameRegistry
from vinom.games.rules import GameCatalogue
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.hosting.websocket import GameSocketConfig, GameSocketFactory
from vinom.hosting.workers.child import WorkerSettings
from vinom.hosting.workers.per_match import ProcessPerMatch
from vinom.hosting.workers.pool import WorkerPool
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.config import LobbyConfig
from vinom.lobby.delivery import RelayRouting
from vinom.lobby.server import LobbyFactory
from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.protocol.config import IssuerConfig, ProtocolConfig, generate_token_key
from vinom.protocol.route_token import RouteTokenIssuer, relayable
from vinom.protocol.tokens import TokenIssuer
from vinom.rooms.room import RoomConfig
from vinom.server.auth import DEFAULT_AUTH, auth_line, authenticator_of
from vinom.server.build import build_info
from vinom.server.certs import RenewingCertificate, dev_certificate_in
from vinom.server.drain import Drain, PlayersMatches
from vinom.server.endpoints import is_tls, listen_interface, listening_description
from vinom.server.fleet import HostParts, SharedState, find_fleet
from vinom.server.logs import ServerRoot
from vinom.server.ops import ops_site
from vinom.server.replays import replays_of
from vinom.server.startup import (
    Address,
    Announcement,
    Listener,
    check_record_dir,
    is_loopback,
)
from vinom.server.status import StatusReader
from vinom.server.web import web_site
from vinom.server.webtransport import (
    WebTransportCredentials,
    WebTransportListener,
    WebTransportOffer,
)
from vinom.store.memory import MemoryPlayerStore

if TYPE_CHECKING:
    from vinom.hosting.webtransport import WebTransportServer

_log = Logger()
_S = TypeVar("_S", bound=service.Service)

def root_service(options: usage.Options) -> ServerRoot:
    root = ServerRoot(options["log-format"])
    root.setName("vinom")
    return root


def protocol_config(options: usage.Options) -> ProtocolConfig:
    """The connect-token key shared by lobby and hosts: --token-key-file, else a fresh one."""
    return ProtocolConfig(token_key=options["token-key"] or generate_token_key())


def runs_lobby(options: usage.Options) -> bool:
    role: str = options["role"]
    return role in ("all", "lobby")


def runs_host(options: usage.Options) -> bool:
    role: str = options["role"]
    return role in ("all", "host")


def game_rules_of(options: usage.Options) -> GameCatalogue:
    """The rules of each offered game: its own, with --match-size's and --rating-window's."""
    registry: GameRegistry = options["game-registry"]
    return registry.rules().overridden(
        match_sizes=options["match-sizes"], windows=options["rating-windows"]
    )


def build_shared(
    options: usage.Options, reactor: Any, root: service.MultiService, check: bool
) -> SharedState:
    """The player store, matchmaker and parties: in this process's memory, or the fleet's
    (`options["shared"]`: vinom.server.fleet), whose parts join the root first, so that
    they close after everything that uses them."""
    games = game_rules_of(options)
    fleet = find_fleet()
    if options["shared"] is not None and fleet is not None:
        shared = fleet.build_shared(options, reactor, root, games, check)
        if shared is not None:
            return shared
    return SharedState(MemoryPlayerStore(), MemoryMatchmaker(games, reactor), None, None,
                       None, ())  # fmt: skip


@frozen
class HostingRole:
    """The game hosting of this process (None when it runs no games)."""

    hosting: GameHostingService | None = None
    host_factory: Any = None
    # What the fleet adds to this host (its agent, an Agones lifecycle: vinom.server.fleet).
    fleet: HostParts = field(factory=HostParts)


def build_hosting(
    options: usage.Options, reactor: Any, root: service.MultiService, shared: SharedState,
    protocol: ProtocolConfig, check: bool = False,
) -> HostingRole:  # fmt: skip
    """The port allocator, the game hosts --matches asks for, and with Redis the agent
    that registers this host and takes the matches lobbies place on it. With `check`
    (under twistd) a --record-dir they cannot write ends the start in one line."""
    if not runs_host(options):
        return HostingRole()
    recording = options.get("recording")
    if check and recording is not None and recording.enabled:
        check_record_dir(recording.directory)
    low, _high = options["udp-port-range"]
    # The ring holds one port per concurrent game: --max-games bounds the games.
    allocator = PortAllocator(range(low, low + options["max-games"]))
    host_factory = host_factory_of(options, reactor, protocol, options["game-registry"])
    if isinstance(host_factory, service.Service):
        # Before the hosting service, so that it stops after it: hosts stop first.
        _add(root, "game-host-processes", host_factory)
    game_url = options["game-url"] if options["websocket"] is not None else None
    # In one process the hosting saves each placement in the lobby's store, in memory; a
    # fleet's host records them in the fleet through its parts (vinom.server.fleet).
    store = shared.store if shared.in_memory else None
    hosting = _add(root, "hosting", GameHostingService(allocator, host_factory, game_url=game_url,
                                                       store=store, clock=reactor))
    fleet = find_fleet()
    parts = HostParts()
    if not shared.in_memory and fleet is not None:
        parts = fleet.build_host(options, reactor, shared, hosting, allocator)
    for name, part in parts.services:
        _add(root, name, part)
    return HostingRole(hosting, host_factory, parts)


def add_last(root: service.MultiService, hosted: HostingRole) -> None:
    """A fleet's host parts that join the root after every listener (an Agones lifecycle:
    it says Ready once the process listens, and, stopping first, Shutdown once the
    drain is over)."""
    for name, part in hosted.fleet.last:
        _add(root, name, part)


@frozen
class _Drains:
    """What a drain tells to take no new work: a fleet's host parts (its host agent, its
    Agones lifecycle)."""

    parts: tuple[Any, ...]

    def drain(self) -> None:
        for part in self.parts:
            part.drain()


def host_factory_of(
    options: usage.Options, reactor: Any, protocol: ProtocolConfig, registry: GameRegistry
) -> InlineGameHostFactory | WorkerPool | ProcessPerMatch:
    """The game hosts --matches (and --host-workers, --process-pool) asks for."""
    room_config = RoomConfig(
        connect_deadline=options["connect-deadline"],
        reconnect_grace=options["reconnect-grace"],
        snapshot_checksums=bool(options["snapshot-checksums"]),
    )
    if options["matches"] == "here":
        return InlineGameHostFactory(
            reactor=reactor, find_game=registry.get, protocol_config=protocol,
            public_host=options["public-host"], interface=options["udp-interface"],
            room_config=room_config, recording=options.get("recording"),
            spectators=options.get("spectators"),
        )  # fmt: skip
    settings = WorkerSettings(
        protocol=protocol, public_host=options["public-host"], interface=options["udp-interface"],
        game_names=tuple(registry.names()), room_config=room_config,
        recording=options.get("recording"),
        spectators=options.get("spectators"),
    )  # fmt: skip
    if options["matches"] == "per-match":
        return ProcessPerMatch(settings, options["process-pool"], reactor)
    return WorkerPool(settings, options["host-workers"], reactor)


@frozen
class LobbyRole:
    """The lobby of this process (None when it runs none) and where it places matches."""

    lobby: LobbyFactory | None = None
    match_hosting: Any = None
    addresses: tuple[Address, ...] = ()


def build_lobby(
    options: usage.Options, reactor: Any, root: service.MultiService, shared: SharedState,
    hosted: HostingRole, protocol: ProtocolConfig, certificate: tuple[str, str],
    accounts: IAccountStore | None = None,
) -> LobbyRole:  # fmt: skip
    """The shared parts' services, the lobby, and last its listener (so that it stops
    first: no new lobby connections while the rest drains). `accounts`: the account
    database (vinom.server.accounts.build_accounts), None without one."""
    if not runs_lobby(options):
        return LobbyRole(match_hosting=hosted.hosting)
    for name, part in shared.services:
        _add(root, name, part)
    match_hosting = shared.match_hosting if shared.match_hosting is not None else hosted.hosting
    issuer = TokenIssuer(IssuerConfig(protocol, session_timeout=options["session-timeout"]))
    lobby = _add(root, "lobby", lobby_factory(options, reactor, shared, match_hosting, issuer,
                                              accounts))  # fmt: skip
    description = listening_description("lobby", options["lobby"], certificate,
                                        options["trusted-proxy"])  # fmt: skip
    listener = Listener(description, lobby, reactor, "lobby")
    _add(root, "lobby-listener", listener)
    # A certificate of the operator's own is trusted as any other; the dev one is not.
    trust = f" --trust {Path(certificate[0]).resolve()}" if options["certificate"] is None else ""
    # How the terminal clients sign in here (docs/client.md, "Signing in").
    kind = options["auth"]
    sign_in = ("" if kind == DEFAULT_AUTH else f" --auth {kind}"
               + ("" if kind == DEVICE else " --auth-token TOKEN"))  # fmt: skip
    address = Address(
        "terminal clients", listener,
        lambda h, p: f"vinom play GAME --lobby {h}:{p}{trust}{sign_in}",
    )  # fmt: skip
    return LobbyRole(lobby, match_hosting, (address,))


def lobby_factory(
    options: usage.Options, reactor: Any, shared: SharedState, match_hosting: Any,
    issuer: TokenIssuer, accounts: IAccountStore | None = None,
) -> LobbyFactory:
    assert shared.store is not None  # a process that runs a lobby has a store
    authenticator = authenticator_of(options, reactor, accounts)
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
            auth_timeout=options["auth-timeout"],
            auth_failure_rate=options["auth-failure-rate"],
            auth_failure_burst=options["auth-failure-burst"],
            new_accounts_per_hour=options["new-accounts-per-hour"],
        ),
        games=game_rules_of(options),
        backends=LobbyBackends(
            matchmaker=shared.matchmaker, hosting=match_hosting, store=shared.store,
            token_issuer=issuer, parties=shared.parties, party_joins=shared.party_joins,
            relay=relay_routing_of(options),
            authenticator=authenticator,
            # Where players sign in, the lobby rates ranked matches in it and its ranked
            # queue matches on the stored ratings (vinom.lobby.match_ratings).
            accounts=accounts,
            results=shared.results,
        ),
        clock=reactor,
    )  # fmt: skip


def relay_refuses(options: usage.Options) -> Callable[[Any], str | None] | None:
    """With --relay, the game hosts the lobby cannot send players to: those announcing a
    name, which no route token can carry (docs/gateway.md, UDP relay)."""
    if options["relay"] is None:
        return None

    def refuses(host: Any) -> str | None:
        if relayable(host.public_host):
            return None
        return (
            f"it announces {host.public_host!r} (its --public-host), not an IP address, and "
            "this lobby sends its players through the relay (--relay), whose route tokens "
            "carry an address: give that host its IP address as --public-host"
        )

    return refuses


def relay_routing_of(options: usage.Options) -> RelayRouting | None:
    """The UDP relay the game hosts sit behind (`--relay`), with a route token as
    long-lived as a connect token (docs/gateway.md, UDP relay)."""
    if options["relay"] is None:
        return None
    host, ports = options["relay"]
    issuer = RouteTokenIssuer(options["relay-key"])
    return RelayRouting(host, ports, issuer)


def build_drain(
    options: usage.Options, reactor: Any, root: ServerRoot, lobbies: LobbyRole,
    hosted: HostingRole, install: bool,
) -> Drain:  # fmt: skip
    """SIGTERM drains (under twistd): a lobby whose matches run elsewhere waits for its
    players' matches; with Redis it closes its players' connections before the pool."""
    lobby = lobbies.lobby
    matches: GameHostingService | PlayersMatches | None = hosted.hosting
    if matches is None and lobby is not None:
        matches = PlayersMatches(lobby)
    parts = hosted.fleet.drains
    drain = Drain(lobby, matches, reactor, options["drain-timeout"],
                  host=_Drains(parts) if parts else None,
                  close_players=options["shared"] is not None)  # fmt: skip
    root.before_stop = drain.run
    if install:
        reactor.callWhenRunning(drain.install_signal_handlers)
    return drain


@frozen
class WebRole:
    """The public web server's WebSocket factories (None where not served)."""

    lobby_sockets: WebSocketLobbyFactory | None = None
    game_sockets: GameSocketFactory | None = None
    addresses: tuple[Address, ...] = ()
    # With --webtransport, where games are hosted: the game sessions over WebTransport.
    webtransport: WebTransportServer | None = None


def build_web(
    options: usage.Options, reactor: Any, root: service.MultiService, lobbies: LobbyRole,
    hosted: HostingRole, protocol: ProtocolConfig, certificate: tuple[str, str],
) -> WebRole:  # fmt: skip
    """The lobby at /lobby where it runs, and /game where games are hosted: a browser
    plays on the web server of the process hosting its match."""
    if options["websocket"] is None:
        return WebRole()
    policy, proxies = options["websocket-origin-policy"], options["websocket-proxies"]
    lobby_sockets = game_sockets = None
    if lobbies.lobby is not None:
        lobby_sockets = WebSocketLobbyFactory(lobbies.lobby, policy, reactor=reactor,
                                              trusted_proxies=proxies)  # fmt: skip
    if hosted.hosting is not None:
        # The token is a game socket's hello: the lobby's hello timeout applies,
        # and the lobby's connection caps to the sockets open at once.
        game_sockets = GameSocketFactory(hosted.hosting, protocol, policy, reactor=reactor,
            config=GameSocketConfig(
                token_timeout=options["lobby-hello-timeout"],
                message_rate=options["web-game-rate"],
                message_burst=2 * options["web-game-rate"],
                max_sockets_per_ip=options["max-connections-per-ip"],
                max_sockets=options["max-connections"],
            ), trusted_proxies=proxies)  # fmt: skip
    # Every web server answers the offer (none where no games are hosted here): a
    # page behind a gateway may ask the lobbies' web servers, and a 404 would be
    # an error in its console.
    transport, offer = None, WebTransportOffer()
    if game_sockets is not None and options["webtransport"] is not None:
        transport, offer = build_webtransport(options, reactor, root, game_sockets)
    site = web_site(lobby_sockets, game_sockets, timeout=options["lobby-hello-timeout"],
                    access_log=bool(options["access-log"]),
                    games=options["game-registry"], webtransport=offer,
                    replays=replays_of(options, reactor, None if lobbies.lobby is None
                                       else lobbies.lobby.auth),
                    auth=options["auth"],
                    # The lobby's leaderboards and histories, where a lobby runs.
                    rankings=None if lobbies.lobby is None else lobbies.lobby.requests.rankings,
                    )  # fmt: skip
    description = listening_description("websocket", options["websocket"], certificate,
                                        options["trusted-proxy"])  # fmt: skip
    web = _add(root, "web", Listener(description, site, reactor, "websocket"))
    if lobby_sockets is None:
        return WebRole(None, game_sockets, webtransport=transport)
    scheme = "https" if is_tls(options["websocket"]) else "http"
    address = Address("play in a browser", web, lambda host, port: f"{scheme}://{host}:{port}/")
    return WebRole(lobby_sockets, game_sockets, (address,), transport)


def build_webtransport(
    options: usage.Options, reactor: Any, root: service.MultiService,
    game_sockets: GameSocketFactory,
) -> tuple[WebTransportServer, WebTransportOffer]:  # fmt: skip
    """`--webtransport PORT`: the game sessions over WebTransport, admitted by the /game
    sockets' factory (its token key, Origin policy, caps and limits), with the
    operator's certificate or a renewing development one, and the offer the page reads."""
    # qh3's (the webtransport extra's): imported only here, where --webtransport is given.
    from vinom.hosting.webtransport import WebTransportConfig, WebTransportServer

    credentials = WebTransportCredentials(
        options["certificate"], options["private-key"],
        RenewingCertificate(time.time, options["public-host"]),
    )  # fmt: skip
    server = WebTransportServer(game_sockets, credentials, clock=reactor, config=WebTransportConfig(
        max_connections=options["max-connections"],
        max_connections_per_ip=options["max-connections-per-ip"],
    ))  # fmt: skip
    # On the game ports' interface: the sessions are the games' UDP, reached as they are.
    listener = _add(root, "webtransport", WebTransportListener(
        server, options["webtransport"], reactor, interface=options["udp-interface"]))  # fmt: skip
    return server, WebTransportOffer(listener.listening_port, credentials)


def build_ops(
    options: usage.Options, reactor: Any, root: service.MultiService, shared: SharedState,
    lobbies: LobbyRole, hosted: HostingRole, web: WebRole, drain: Drain,
) -> tuple[Address, ...]:  # fmt: skip
    """The operations endpoint: the game hosts' figures where they run here; a lobby
    alone shows the registry's hosts as it sees them (docs/operations.md)."""
    if options["ops-port"] is None:
        return ()
    hosting = hosted.hosting if hosted.hosting is not None else lobbies.match_hosting
    recording = options.get("recording")
    record_dir = (recording.directory if hosted.hosting is not None and recording is not None
                  and recording.enabled else None)  # fmt: skip
    lobby = lobbies.lobby
    # The ranked results stream's figures where this lobby reads it (it rates matches).
    rates = lobby is not None and lobby.ratings is not None and shared.results is not None
    reader = StatusReader(lobby, shared.matchmaker, hosting,
                          hosted.host_factory, drain, reactor, web.lobby_sockets,
                          web.game_sockets, web.webtransport, record_dir,
                          shared.results if rates else None)  # fmt: skip
    for watch in hosted.fleet.health_watchers:
        # Health is said only while the game hosts answer, as /health says.
        watch(lambda: reader.trouble() is None)
    # A lobby of a fleet is not ready while its shared store does not answer.
    readiness = (*shared.readiness, *hosted.fleet.readiness)
    site, _registry = ops_site(reader, token=options["ops-token"], readiness=readiness,
                               access_log=bool(options["access-log"]))  # fmt: skip
    ops = _add(root, "ops", Listener(options["ops-port"], site, reactor, "ops-port"))
    interface = listen_interface(options["ops-port"])
    if interface is not None and not is_loopback(interface) and not options["ops-token"]:
        _log.warn(
            "vinom: the operations endpoint listens on {where} with no --ops-token-file: "
            "anyone who reaches it reads player names, ids and addresses",
            where=f"{interface or '0.0.0.0'}",
        )
    return (Address("operations dashboard", ops, lambda h, p: f"http://{h}:{p}/dashboard/"),)


def announce(
    options: usage.Options, root: service.MultiService, hosted: HostingRole,
    lobbies: LobbyRole, web: WebRole, addresses: tuple[Address, ...],
) -> None:  # fmt: skip
    """What runs where, and where to go: said by the announcement, added last, once
    everything listens (a start that fails to listen claims nothing)."""
    registry: GameRegistry = options["game-registry"]
    lines: list[tuple[str, dict[str, object]]] = []

    def say(text: str, **fields: object) -> None:
        lines.append((text, fields))

    if lobbies.lobby is not None:
        database = options["database-url"]
        say("vinom: lobby on {lobby} (WebSocket: {web}), games: {names}, accounts: {accounts}",
            lobby=options["lobby"], web=options["websocket"] or "none",
            names=", ".join(registry.names()),
            accounts="none" if database is None else describe(database))  # fmt: skip
        say("vinom: {auth}", auth=auth_line(options))
    if hosted.hosting is not None:
        low, _high = options["udp-port-range"]
        build = build_info()
        say(
            "vinom: {games} game(s) at once on UDP {low}-{top} (clients told {public}); "
            "packet path {code}, AEAD {aead}",
            games=options["max-games"], low=low, top=low + options["max-games"] - 1,
            public=options["public-host"], code=build["code"], aead=build["aead"],
        )  # fmt: skip
        if web.game_sockets is not None:
            say("vinom: browsers play on {web} at /game (match_found's game_url: {url})",
                web=options["websocket"], url=options["game-url"] or "none")  # fmt: skip
        if web.webtransport is not None:
            say("vinom: browsers with WebTransport play on UDP {port} at /game ({cert})",
                port=options["webtransport"],
                cert="the --certificate" if options["certificate"] is not None
                else "a 13-day development certificate, offered by its hash")  # fmt: skip
    fleet = find_fleet()
    if options["shared"] is not None and fleet is not None:
        for text, fields in fleet.announce(options, hosted.fleet):
            say(text, **fields)
    _add(root, "announcement", Announcement(list(addresses), options["public-host"], lines))


def certificate_of(options: usage.Options) -> tuple[str, str]:
    """The lobby's and web server's certificate and key: the operator's, or the dev
    certificate (made on first start); ("", "") when neither listens."""
    if not (runs_lobby(options) or options["websocket"] is not None):
        return "", ""
    if options["certificate"] is not None:
        return options["certificate"], options["private-key"]
    paths = dev_certificate_in(options["data-dir"])
    _log.info(
        "vinom: {what} the self-signed dev certificate {cert}; clients trust it with "
        "--trust {cert}",
        what="made" if paths.created else "using",
        cert=str(paths.certificate.resolve()),
    )
    return str(paths.certificate), str(paths.private_key)


def _add(root: service.MultiService, name: str, child: _S) -> _S:
    child.setName(name)
    child.setServiceParent(root)
    return child
