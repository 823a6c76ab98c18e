"""The one seam between the server and a fleet: a Twisted plugin providing `IFleet`.

The core server runs whole in one process, its state in memory. A *fleet* is what
spreads it over processes and machines (vinom's own: lobbies and game hosts on
one Redis, the gateway, the UDP relay, Agones; `vinom.fleet`). The server never
imports one: it finds it as it finds games, as a Twisted plugin in
`twisted/plugins/` providing `IFleet` (`find_fleet`), and asks it for

- the option groups it adds to each role (`option_groups`: `--redis`, ...),
  and the subcommands it adds to `twistd vinom` (`subcommands`: `lobby`,
  `host`, `gateway`, `relay`), with their checks (`check`) and, for the roles
  it runs alone, their service (`make_service`);
- the state lobbies and game hosts share (`build_shared`: a `SharedState` in
  Redis, or None for this process's memory) and what a game host of the fleet
  adds (`build_host`: a `HostParts`);
- a match record kept by the fleet (`fetch_record`, for `vinom replay`).

With no fleet installed, or `$VINOM_FLEET` set to `none`, `twistd vinom` is the
whole server in one process, with no fleet option; with more than one, the
environment variable names the one to use. A plugin file names its fleet's module
(`FleetPlugin`, as Twisted's `ServiceMaker` names a tap's), so that finding plugins,
which every process that looks for games does (a game-host worker too), imports
nothing of a fleet.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from attrs import frozen
from twisted.application import service
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from zope.interface import Attribute, Interface, implementer

if TYPE_CHECKING:
    # For the annotations only: plugin discovery imports this module in every process
    # that looks for games (a game-host worker too), which needs none of them.
    from vinom.hosting.interfaces import IMatchHosting
    from vinom.hosting.ports import PortAllocator
    from vinom.hosting.service import GameHostingService
    from vinom.net.limits import IAddressLimiter
    from vinom.parties.interfaces import IPartyStore
    from vinom.store.interfaces import IPlayerStore

# Names the fleet plugin to use (`none`: the core alone).
FLEET_VARIABLE = "VINOM_FLEET"


@frozen
class SharedState:
    """What lobbies (and hosts) share: in this process's memory, or in a fleet's store.

    `services` start the shared parts (the matchmaker, the placement channel,
    parties) and go in before the lobby; `handle` is the fleet's own (its Redis
    pool, for the parts of its game hosts), None in memory."""

    store: IPlayerStore | None
    # An IMatchmaker that also reports its queue lengths (vinom.server.status).
    matchmaker: Any
    parties: IPartyStore | None
    party_joins: IAddressLimiter | None
    # Where the lobby places matches: across processes in a fleet (None: this process's hosts).
    match_hosting: IMatchHosting | None
    services: tuple[tuple[str, service.Service], ...]
    handle: Any = None
    # In a fleet, every ranked match's end for the lobby to rate: an IRankedResults that
    # also reports its backlog (vinom.server.status.ResultsBacklog).
    results: Any = None
    # More reasons for a lobby not to be ready (for `/ready`), each None when there is
    # none: its shared store does not answer.
    readiness: tuple[Callable[[], str | None], ...] = ()

    @property
    def in_memory(self) -> bool:
        return self.handle is None


@frozen
class HostParts:
    """What a fleet adds to a process's game hosting (`IFleet.build_host`)."""

    # Each joins the root after the hosting service, so that it stops before it.
    services: tuple[tuple[str, service.Service], ...] = ()
    # Each joins the root after every listener (it stops first: a lifecycle that says
    # Ready once the process listens, and Shutdown once the drain is over).
    last: tuple[tuple[str, service.Service], ...] = ()
    # What a drain tells to take no new work (each has `drain()`).
    drains: tuple[Any, ...] = ()
    # More reasons not to be ready (for `/ready`), each None when there is none.
    readiness: tuple[Callable[[], str | None], ...] = ()
    # Each is given how to know that the game hosts answer (as /health says).
    health_watchers: tuple[Callable[[Callable[[], bool]], None], ...] = ()
    # What the start-up lines say of this host in the fleet (its id), or "".
    description: str = ""


class IFleet(Interface):
    """A fleet: what spreads the server over processes (module docstring)."""

    name = Attribute("The fleet's name, as $VINOM_FLEET names it.")

    def option_groups(role: str) -> tuple[type, ...]:
        """The option groups (vinom.server.option_groups.OptionGroup) it adds to a role's
        options: `all` (`twistd vinom`), `lobby`, `host`."""

    def subcommands() -> list[list[Any]]:
        """The subcommands it adds to `twistd vinom`, as `usage.Options.subCommands` rows."""

    def check(options: usage.Options) -> None:
        """Its options' checks, in `postOptions` (raises `usage.UsageError`); sets
        `options["shared"]`: what the processes share (None: nothing, this process
        runs whole)."""

    def make_service(
        options: usage.Options, reactor: Any, under_twistd: bool
    ) -> service.MultiService | None:
        """The service of a subcommand it runs alone (a gateway, a relay), else None."""

    def build_shared(
        options: usage.Options, reactor: Any, root: service.MultiService, games: Any, check: bool
    ) -> SharedState | None:
        """The shared state `options["shared"]` names, its services joining `root`
        (None: this process's memory). `check`: under twistd, a store that does not
        answer ends the start in one line."""

    def build_host(
        options: usage.Options, reactor: Any, shared: SharedState,
        hosting: GameHostingService, allocator: PortAllocator,
    ) -> HostParts:  # fmt: skip
        """What a game host of this process adds in the fleet."""

    def announce(
        options: usage.Options, host: HostParts
    ) -> list[tuple[str, dict[str, object]]]:
        """What the start-up lines say of the fleet (log format, fields)."""

    def fetch_record(reactor: Any, settings: Any, match_id: str) -> Any:
        """A Deferred firing with the bytes of `match_id`'s record kept by the fleet."""

    def record_settings(options: usage.Options) -> Any:
        """`vinom replay`'s options (`--redis` and its files) as `fetch_record` takes them."""


@implementer(IPlugin, IFleet)
@frozen
class FleetPlugin:
    """A fleet as its plugin file names it: its name, and the module whose `fleet`
    provides `IFleet`, imported on the first call of a method."""

    name: str
    module: str

    def load(self) -> IFleet:
        """The fleet itself (its module imported once, by Python's module cache)."""
        fleet: IFleet = importlib.import_module(self.module).fleet
        return fleet

    def option_groups(self, role: str) -> tuple[type, ...]:
        return self.load().option_groups(role)

    def subcommands(self) -> list[list[Any]]:
        return self.load().subcommands()

    def check(self, options: usage.Options) -> None:
        self.load().check(options)

    def make_service(
        self, options: usage.Options, reactor: Any, under_twistd: bool
    ) -> service.MultiService | None:
        return self.load().make_service(options, reactor, under_twistd)

    def build_shared(
        self, options: usage.Options, reactor: Any, root: service.MultiService, games: Any,
        check: bool,
    ) -> SharedState | None:  # fmt: skip
        return self.load().build_shared(options, reactor, root, games, check)

    def build_host(
        self, options: usage.Options, reactor: Any, shared: SharedState,
        hosting: GameHostingService, allocator: PortAllocator,
    ) -> HostParts:  # fmt: skip
        return self.load().build_host(options, reactor, shared, hosting, allocator)

    def announce(
        self, options: usage.Options, host: HostParts
    ) -> list[tuple[str, dict[str, object]]]:
        return self.load().announce(options, host)

    def fetch_record(self, reactor: Any, settings: Any, match_id: str) -> Any:
        return self.load().fetch_record(reactor, settings, match_id)

    def record_settings(self, options: usage.Options) -> Any:
        return self.load().record_settings(options)


class FleetNotFound(usage.UsageError):
    """The fleet $VINOM_FLEET names is not installed."""


_found: dict[str, IFleet | None] = {}


def find_fleet(environ: Any = None) -> IFleet | None:
    """The installed fleet (`$VINOM_FLEET` picks one by name; `none`: no fleet), or None."""
    wanted = (os.environ if environ is None else environ).get(FLEET_VARIABLE, "")
    if wanted not in _found:
        _found[wanted] = None if wanted == "none" else choose_fleet(wanted, getPlugins(IFleet))
    return _found[wanted]


def choose_fleet(wanted: str, installed: Iterable[IFleet]) -> IFleet | None:
    """The fleet `wanted` names among those `installed` (`""`: the only one, if any;
    `none`: none); `FleetNotFound` when there is no such one, or `""` and several."""
    if wanted == "none":
        return None
    fleets = {fleet.name: fleet for fleet in installed}
    if wanted:
        if wanted not in fleets:
            raise FleetNotFound(f"${FLEET_VARIABLE} names the fleet {wanted!r}, which is not "
                                f"installed (installed: {', '.join(sorted(fleets)) or 'none'})")
        return fleets[wanted]
    if len(fleets) > 1:
        raise FleetNotFound(f"more than one fleet is installed ({', '.join(sorted(fleets))}): "
                            f"name the one to use in ${FLEET_VARIABLE}")
    return next(iter(fleets.values()), None)
