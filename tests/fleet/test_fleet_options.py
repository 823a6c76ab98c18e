"""vinom's fleet (vinom.fleet) as `twistd vinom` and `vinom` take it: the options it
adds (`--redis` and its files, `--placement`, `--agones`), their checks before anything
connects, the roles' service trees on Redis (on a MemoryReactor: nothing listens; the
Redis pool is lazy and closed again), and what the core's options become in a cluster
(a shared account database, no WebTransport on a lobby, `vinom replay --redis`)."""

from __future__ import annotations

import io
import os
import sys

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from vinom.cli import main
from vinom.server.fleet import IFleet, find_fleet
from vinom.server.options import role_options
from vinom.server.tap import Options, makeService


def parse(*argv: str) -> usage.Options:
    """The options of the role `argv` runs (its subcommand's, else the whole server's)."""
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


def key_file(case: SynchronousTestCase) -> str:
    """A connect-token key file (32 random bytes, 0600)."""
    path = case.mktemp()
    with open(path, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return path


class FleetFoundTests(SynchronousTestCase):
    def test_vinoms_fleet_is_found_and_adds_its_options(self) -> None:
        fleet = find_fleet()
        assert fleet is not None
        self.assertTrue(verifyObject(IFleet, fleet))
        self.assertEqual(fleet.name, "redis")
        # The plugin file names the fleet and its module (imported on first use): the
        # module's fleet is the one named.
        from vinom.fleet.plugin import fleet as named

        self.assertEqual(named.name, fleet.name)
        self.assertTrue(verifyObject(IFleet, named))
        self.assertEqual([row[0] for row in Options().subCommands],
                         ["lobby", "host", "gateway", "relay"])  # fmt: skip
        self.assertEqual(parse()["redis-start-wait"], 5.0)
        self.assertRaises(usage.UsageError, parse, "--redis-start-wait", "0")


class RoleOptionsTests(TestCase):
    """The roles and --redis: checked in postOptions, before anything connects."""

    def key_file(self) -> str:
        return key_file(self)

    def test_default_is_all_without_redis(self) -> None:
        options = parse()
        self.assertEqual(options["role"], "all")
        self.assertIsNone(options["redis-settings"])

    def test_unknown_role(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--role", "proxy")
        self.assertIn("--role must be one of all, lobby, host", str(e))

    def test_lobby_and_host_need_redis(self) -> None:
        for role in ("lobby", "host"):
            e = self.assertRaises(usage.UsageError, parse, role)
            self.assertIn(f"twistd vinom {role} needs --redis", str(e))

    def test_redis_needs_a_shared_token_key(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--redis", "redis://127.0.0.1:6379/0")
        self.assertIn("--redis needs --token-key-file", str(e))

    def test_bad_redis_url(self) -> None:
        key = self.key_file()
        for url, words in (
            ("http://127.0.0.1", "starts with redis://"),
            ("redis://127.0.0.1:6379/x", "database must be a number"),
            ("redis://user:pw@127.0.0.1", "names a user"),
        ):
            e = self.assertRaises(
                usage.UsageError, parse, "--redis", url, "--token-key-file", key
            )
            self.assertIn("--redis:", str(e))
            self.assertIn(words, str(e))

    def test_redis_settings(self) -> None:
        options = parse("host", "--redis", "redis://:s3cret@10.0.0.5:6380/2",
                        "--token-key-file", self.key_file())  # fmt: skip
        settings = options["redis-settings"]
        self.assertEqual((settings.host, settings.port, settings.db), ("10.0.0.5", 6380, 2))
        self.assertEqual(settings.password, "s3cret")

    def test_the_redis_password_file_then_the_environment_then_the_url(self) -> None:
        key = self.key_file()
        secret = self.mktemp()
        with open(secret, "w") as f:
            f.write("from-the-file\n")
        os.chmod(secret, 0o600)
        url = "redis://:from-the-url@10.0.0.5/0"
        self.patch(os, "environ", {"VINOM_REDIS_PASSWORD": "from-the-environment"})
        for argv, password in (
            (("--redis-password-file", secret), "from-the-file"),
            ((), "from-the-environment"),
        ):
            with self.subTest(argv=argv):
                options = parse("--redis", url, "--token-key-file", key, *argv)
                self.assertEqual(options["redis-settings"].password, password)
        self.patch(os, "environ", {})
        self.assertEqual(parse("--redis", url, "--token-key-file", key)["redis-settings"]
                         .password, "from-the-url")  # fmt: skip

    def test_redis_secret_and_tls_options_are_checked(self) -> None:
        key = self.key_file()
        empty = self.mktemp()
        open(empty, "w").close()
        not_pem = self.mktemp()
        with open(not_pem, "w") as f:
            f.write("not a certificate\n")
        tls = ("--redis", "rediss://redis.example/0", "--token-key-file", key)
        for argv, words in (
            (("--redis-password-file", "/no/such/file"), "--redis-password-file is for --redis"),
            ((*tls, "--redis-password-file", "/no/such/file"), "No such file"),
            ((*tls, "--redis-password-file", empty), "must hold one non-empty line"),
            (("--redis", "redis://redis.example/0", "--token-key-file", key,
              "--redis-ca-file", not_pem), "--redis-ca-file is for a rediss://"),
            ((*tls, "--redis-ca-file", not_pem), "holds no PEM certificate"),
            ((*tls, "--redis-ca-file", "/no/such/file"), "No such file"),
            (("--ops-token-file", empty), "--ops-token-file"),
        ):  # fmt: skip
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertIn(words, str(e))
        settings = parse(*tls)["redis-settings"]
        self.assertEqual((settings.tls, settings.url), (True, "rediss://redis.example:6379/0"))


class RoleServiceTests(TestCase):
    """The service tree of each role (on a MemoryReactor: nothing listens; the Redis pool
    is lazy and closed again)."""

    def make(self, *argv: str, role: str | None = None) -> MultiService:
        key = self.mktemp()
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        hosting = ("--matches", "here") if role in (None, "host") else ()
        options = parse(*(() if role is None else (role,)), "--data-dir", self.mktemp(),
                        *hosting, "--redis", "redis://127.0.0.1:1/0", "--token-key-file", key,
                        *argv)  # fmt: skip
        root = makeService(options, MemoryReactor())
        assert isinstance(root, MultiService)
        self.addCleanup(root.getServiceNamed("redis").redis.disconnect)
        return root

    def test_lobby_role_has_no_game_hosting(self) -> None:
        root = self.make(role="lobby")
        self.assertEqual(
            [s.name for s in root],
            ["redis", "matchmaker", "placement", "parties", "ranked-results", "lobby",
             "lobby-listener", "web", "ops", "announcement"],
        )  # fmt: skip

    def test_host_role_has_no_lobby(self) -> None:
        # Its web server serves /game only: browsers play its matches there.
        root = self.make(role="host")
        self.assertEqual(
            [s.name for s in root], ["redis", "hosting", "host-agent", "web", "ops", "announcement"]
        )
        self.assertEqual(
            root.getServiceNamed("hosting").game_url, "wss://127.0.0.1:7380/game"
        )
        without = self.make("--websocket", "none", role="host")
        self.assertEqual(
            [s.name for s in without], ["redis", "hosting", "host-agent", "ops", "announcement"]
        )
        self.assertIsNone(without.getServiceNamed("hosting").game_url)

    def test_all_with_redis_runs_both(self) -> None:
        root = self.make()
        self.assertEqual(
            [s.name for s in root],
            ["redis", "hosting", "host-agent", "matchmaker", "placement", "parties",
             "ranked-results", "lobby", "lobby-listener", "web", "ops", "announcement"],
        )  # fmt: skip


class ClusterOptionsTests(TestCase):
    """The core's options in a cluster."""

    def key_file(self) -> str:
        return key_file(self)

    def test_a_cluster_takes_only_postgresql(self) -> None:
        redis = ("lobby", "--redis", "redis://127.0.0.1:1/0",
                 "--token-key-file", self.key_file())  # fmt: skip
        self.assertIsNone(parse(*redis)["database-url"])
        url = "postgres://vinom@db/vinom"
        self.assertEqual(parse(*redis, "--database", url)["database-url"], url)
        with self.assertRaises(usage.UsageError) as raised:
            parse(*redis, "--database", "accounts.sqlite3")
        self.assertEqual(
            str(raised.exception),
            "--database with --redis must be a postgresql:// URL that every lobby shares, "
            "not a SQLite file (one process's)",
        )

    def test_device_sign_in_in_a_cluster_needs_postgresql(self) -> None:
        # Device sign-in keeps its accounts: a cluster gives them a shared database.
        e = self.assertRaises(usage.UsageError, parse, "--auth", "device", "--redis",
                              "redis://127.0.0.1:6379", "--token-key-file", self.key_file())
        self.assertIn("--auth device keeps its players' accounts in the account database: "
                      "with --redis give --database postgresql://", str(e))

    def test_a_lobby_of_a_cluster_takes_no_webtransport(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "lobby", "--webtransport", "7381",
                              "--redis", "redis://127.0.0.1:1/0",
                              "--token-key-file", self.key_file())  # fmt: skip
        self.assertIn("option --webtransport not recognized", str(e))


class ReplayFromRedisOptionsTests(SynchronousTestCase):
    """`vinom replay --redis URL MATCH_ID`: its options, through the fleet."""

    def test_the_match_is_the_argument(self) -> None:
        # --match names a file's match; with --redis the argument is the match.
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.assertEqual(main(["replay", "--redis", "redis://127.0.0.1:1", "-m", "x", "m-1"]), 2)
        self.assertIn("--match is for a record file", stderr.getvalue())

    def test_redis_options_are_checked_before_anything_runs(self) -> None:
        for argv, says in (
            (["replay", "--save", "x.vrec.gz", "f.vrec.gz"], "--save is for --redis"),
            (["replay", "--redis", "redis://127.0.0.1:1"], "name the match"),
            (["replay", "--redis", "http://x", "m-1"], "--redis: "),
            (["replay", "--redis", "redis://127.0.0.1:1", "--redis-ca-file", "ca.pem", "m-1"],
             "--redis-ca-file is for a rediss:// (TLS) --redis"),
        ):
            with self.subTest(argv=argv):
                err = io.StringIO()
                self.patch(sys, "stderr", err)
                self.assertEqual(main(argv), 2)
                self.assertIn(says, err.getvalue())
                self.assertEqual(err.getvalue().count("\n"), 1, err.getvalue())
