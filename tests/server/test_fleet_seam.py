"""The server with no fleet (vinom.server.fleet): `$VINOM_FLEET=none` leaves the installed
fleet out, and `twistd vinom` is then the whole server in one process, in memory, with
none of the fleet's options, subcommands or services; a fleet named but not installed
is one line."""

from __future__ import annotations

import os

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from vinom.server.fleet import FLEET_VARIABLE, FleetNotFound, IFleet, choose_fleet, find_fleet
from vinom.server.options import role_options
from vinom.server.tap import Options, makeService

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
