"""The server and its fleet seam (vinom.server.fleet): with `$VINOM_FLEET=none` the
installed fleet is left out, and `twistd vinom` is the whole server in one process, in
memory, with none of the fleet's options, subcommands or services; a fleet named but not
installed is one line; and a fleet other than vinom's (a test's, with a store of its own)
adds its option, its shared state and its game host's parts through the same seam."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.server import fleet as fleet_seam
from vinom.server.fleet import (
    FLEET_VARIABLE,
    FleetNotFound,
    HostParts,
    IFleet,
    SharedState,
    choose_fleet,
    find_fleet,
)
from vinom.server.options import role_options
from vinom.server.tap import Options, makeService
from vinom.store.memory import MemoryPlayerStore

# The fleet's packages: nothing the core builds may come from them.
FLEET = ("vinom.cluster", "vinom.gateway", "vinom.fleet")


def parse(*argv: str) -> usage.Options:
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


def services(root: MultiService) -> list[object]:
    """Every service under `root`, depth first."""
    found: list[object] = []
    for child in root:
        found.append(child)
        if isinstance(child, MultiService):
            found += services(child)
    return found


class NoFleetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(os, "environ", {**os.environ, FLEET_VARIABLE: "none"})

    def test_no_fleet_is_found(self) -> None:
        self.assertIsNone(find_fleet())

    def test_the_whole_server_has_none_of_the_fleets_options(self) -> None:
        options = Options()
        names = {name.rstrip("=") for name in options.longOpt}
        self.assertIn("lobby", names)
        self.assertIn("udp-ports", names)
        for name in ("redis", "redis-start-wait", "placement", "agones", "gateway",
                     "relay-ports"):  # fmt: skip
            self.assertNotIn(name, names)
        self.assertFalse(hasattr(options, "subCommands"))
        self.assertEqual(options.synopsis, "[options]")
        self.assertNotIn("Commands:", str(options))
        for name in ("redis", "placement", "agones-health-interval"):
            e = self.assertRaises(usage.UsageError, parse, f"--{name}", "1")
            self.assertEqual(str(e), f"option --{name} not recognized")
        e = self.assertRaises(usage.UsageError, parse, "lobby")
        self.assertIn("Wrong number of arguments", str(e))
        e = self.assertRaises(usage.UsageError, parse, "--role", "lobby")
        self.assertEqual(str(e), "--role lobby: no fleet is installed that runs it "
                                 "(vinom.server.fleet), only the whole server")

    def test_the_whole_server_runs_in_memory_with_nothing_of_the_fleet(self) -> None:
        options = parse("--data-dir", self.mktemp(), "--matches", "here")
        self.assertIsNone(options["shared"])
        root = makeService(options, MemoryReactor())
        assert isinstance(root, MultiService)
        self.assertEqual([s.name for s in root],
                         ["hosting", "lobby", "lobby-listener", "web", "ops", "announcement"])
        from_fleet = [type(part).__module__ for part in services(root)
                      if type(part).__module__.startswith(FLEET)]  # fmt: skip
        self.assertEqual(from_fleet, [])


@implementer(IFleet)
class NamedFleet:
    """A fleet that is only its name: which fleet is chosen is all these tests ask."""

    def __init__(self, name: str) -> None:
        self.name = name


class StoreOptions:
    """The made-up fleet's one option."""

    optParameters = [["fake-store", None, None, "Where the made-up fleet keeps its state."]]


class Part(Service):
    """A made-up fleet's part: told to drain, or how to know the hosts' health."""

    def __init__(self) -> None:
        self.drained = 0
        self.healthy: Any = None

    def drain(self) -> None:
        self.drained += 1


@implementer(IFleet)
class MadeUpFleet:
    """A fleet that shares nothing really (its state is in this process's memory), but
    through every part of the seam: an option, a pool first, services before the lobby,
    a host agent, a lifecycle last, a readiness reason, a health watcher, its lines."""

    name = "made-up"

    def __init__(self) -> None:
        self.agent, self.lifecycle = Part(), Part()

    def option_groups(self, role: str) -> tuple[type, ...]:
        return (StoreOptions,) if role == "all" else ()

    def subcommands(self) -> list[list[Any]]:
        return []

    def check(self, options: usage.Options) -> None:
        options["shared"] = options["fake-store"]

    def make_service(self, options: usage.Options, reactor: Any, under_twistd: bool) -> None:
        return None

    def build_shared(self, options: usage.Options, reactor: Any, root: MultiService,
                     games: Any, check: bool) -> SharedState:  # fmt: skip
        pool = Service()
        pool.setName("made-up-pool")
        pool.setServiceParent(root)
        return SharedState(MemoryPlayerStore(), MemoryMatchmaker(games, reactor), None, None,
                           None, (("made-up-matchmaker", Service()),),
                           handle=options["shared"])  # fmt: skip

    def build_host(self, options: usage.Options, reactor: Any, shared: SharedState,
                   hosting: Any, allocator: Any) -> HostParts:  # fmt: skip
        def watch(healthy: Any) -> None:
            self.lifecycle.healthy = healthy

        return HostParts(services=(("made-up-agent", self.agent),),
                         last=(("made-up-lifecycle", self.lifecycle),),
                         drains=(self.agent, self.lifecycle),
                         readiness=(lambda: "made-up: not yet",), health_watchers=(watch,),
                         description=", host h-1")  # fmt: skip

    def announce(self, options: usage.Options, host: HostParts) -> list[Any]:
        return [("vinom: on {store}{host}", {"store": options["shared"],
                                               "host": host.description})]

    def fetch_record(self, reactor: Any, settings: Any, match_id: str) -> Any:
        raise NotImplementedError

    def record_settings(self, options: usage.Options) -> Any:
        raise NotImplementedError


class MadeUpFleetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.fleet = MadeUpFleet()
        self.patch(os, "environ", {**os.environ, FLEET_VARIABLE: "made-up"})
        self.patch(fleet_seam, "_found", {"made-up": self.fleet})

    def test_its_option_and_its_parts_join_the_server(self) -> None:
        options = parse("--data-dir", self.mktemp(), "--matches", "here",
                        "--fake-store", "over-there")  # fmt: skip
        self.assertEqual(options["shared"], "over-there")
        root = makeService(options, MemoryReactor())
        assert isinstance(root, MultiService)
        self.assertEqual([s.name for s in root], [
            "made-up-pool", "hosting", "made-up-agent", "made-up-matchmaker", "lobby",
            "lobby-listener", "web", "ops", "made-up-lifecycle", "announcement",
        ])  # fmt: skip
        # Told how to know the game hosts answer (they do: nothing has failed).
        self.assertTrue(self.fleet.lifecycle.healthy())
        # The drain (SIGTERM, or the root stopping) tells its parts to take no new work.
        self.successResultOf(root.before_stop())  # type: ignore[attr-defined]
        self.assertEqual((self.fleet.agent.drained, self.fleet.lifecycle.drained), (1, 1))

    def test_without_its_option_the_server_stays_in_memory(self) -> None:
        options = parse("--data-dir", self.mktemp(), "--matches", "here")
        self.assertIsNone(options["shared"])
        root = makeService(options, MemoryReactor())
        assert isinstance(root, MultiService)
        self.assertEqual([s.name for s in root],
                         ["hosting", "lobby", "lobby-listener", "web", "ops", "announcement"])


class FleetChoiceTests(SynchronousTestCase):
    """`$VINOM_FLEET` among the fleets installed (`choose_fleet`)."""

    def test_the_only_fleet_installed_is_used_unless_none_is_asked_for(self) -> None:
        redis = NamedFleet("redis")
        self.assertIs(choose_fleet("", [redis]), redis)
        self.assertIs(choose_fleet("redis", [redis]), redis)
        self.assertIsNone(choose_fleet("none", [redis]))
        self.assertIsNone(choose_fleet("", []))

    def test_a_fleet_not_installed_is_one_line(self) -> None:
        e = self.assertRaises(FleetNotFound, choose_fleet, "kubernetes-only",
                              [NamedFleet("redis")])  # fmt: skip
        self.assertEqual(str(e), "$VINOM_FLEET names the fleet 'kubernetes-only', which is "
                                 "not installed (installed: redis)")  # fmt: skip
        self.assertIsInstance(e, usage.UsageError)

    def test_of_two_fleets_the_variable_names_one(self) -> None:
        one, two = NamedFleet("redis"), NamedFleet("nats")
        e = self.assertRaises(FleetNotFound, choose_fleet, "", [one, two])
        self.assertEqual(str(e), "more than one fleet is installed (nats, redis): name the "
                                 "one to use in $VINOM_FLEET")  # fmt: skip
        self.assertIs(choose_fleet("nats", [one, two]), two)
