"""vinom's fleet as the server finds it: `RedisFleet`, the `IFleet` that
twisted/plugins/vinom_fleet.py names (vinom.server.fleet's `FleetPlugin`).

It adds `--redis` (and its files) to every role and the whole server,
`--placement` to game hosts, `--agones` to a cluster's game hosts, and the
subcommands `twistd vinom lobby|host|gateway|relay`; it builds the shared state
on Redis (vinom.fleet.shared), the gateway (vinom.fleet.gateway) and the relay
(vinom.fleet.relay), and reads a record kept in Redis for `vinom replay`
(vinom.fleet.record_fetch). Its option groups are read when `twistd vinom`'s
options are made; its builders are imported when a role asks for them, so a
server in memory builds nothing of the fleet.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.python import usage
from zope.interface import implementer

from vinom.fleet import options as fleet_options
from vinom.fleet.options import (
    AgonesOptions,
    GatewayCommand,
    GatewayOptions,
    PlacementOptions,
    RedisOptions,
    RelayCommand,
)
from vinom.games.rules import GameCatalogue
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.server.fleet import HostParts, IFleet, SharedState
from vinom.server.options import HostCommand, LobbyCommand

# The option groups each role gets from the fleet.
GROUPS: dict[str, tuple[type, ...]] = {
    "all": (RedisOptions, PlacementOptions),
    "lobby": (RedisOptions,),
    "host": (RedisOptions, PlacementOptions, AgonesOptions),
    "gateway": (RedisOptions, GatewayOptions),
}


@implementer(IFleet)
class RedisFleet:
    """Lobbies and game hosts on one Redis, the gateway and the UDP relay, Agones."""

    name = "redis"

    def option_groups(self, role: str) -> tuple[type, ...]:
        return GROUPS.get(role, ())

    def subcommands(self) -> list[list[Any]]:
        return [
            ["lobby", None, LobbyCommand, "A lobby of a cluster: players, matchmaking, "
             "placement."],
            ["host", None, HostCommand, "A game host of a cluster: runs the matches lobbies "
             "place."],
            ["gateway", None, GatewayCommand, "One public port in front of the lobbies."],
            ["relay", None, RelayCommand, "The UDP relay alone: players' datagrams by route "
             "token."],
        ]  # fmt: skip

    def check(self, options: usage.Options) -> None:
        fleet_options.check(options)

    def make_service(
        self, options: usage.Options, reactor: Any, under_twistd: bool
    ) -> service.MultiService | None:
        if isinstance(options, RelayCommand):
            from vinom.fleet import relay

            return relay.makeService(options, reactor)
        if isinstance(options, GatewayCommand):
            from vinom.fleet.gateway import build_gateway
            from vinom.server.roles import root_service

            root = root_service(options)
            build_gateway(options, reactor, root, install=under_twistd)
            return root
        return None

    def build_shared(
        self, options: usage.Options, reactor: Any, root: service.MultiService,
        games: GameCatalogue, check: bool,
    ) -> SharedState | None:  # fmt: skip
        from vinom.fleet.shared import build_shared

        return build_shared(options, reactor, root, games, check)

    def build_host(
        self, options: usage.Options, reactor: Any, shared: SharedState,
        hosting: GameHostingService, allocator: PortAllocator,
    ) -> HostParts:  # fmt: skip
        from vinom.fleet.shared import build_host

        return build_host(options, reactor, shared, hosting, allocator)

    def announce(
        self, options: usage.Options, host: HostParts
    ) -> list[tuple[str, dict[str, object]]]:
        return [("vinom: role {role} on Redis {url}{host}",
                 {"role": options["role"], "url": options["redis-settings"].url,
                  "host": host.description})]  # fmt: skip

    def record_settings(self, options: usage.Options) -> Any:
        from vinom.fleet.redis import redis_settings

        return redis_settings(
            options["redis"], options["redis-password-file"],
            options["redis-sentinel-password-file"], options["redis-ca-file"],
            user=options["redis-user"],
        )  # fmt: skip

    def fetch_record(self, reactor: Any, settings: Any, match_id: str) -> Any:
        from twisted.internet.defer import Deferred

        from vinom.fleet.record_fetch import fetch_record

        return Deferred.fromCoroutine(fetch_record(reactor, settings, match_id))


fleet = RedisFleet()
