"""Tests for vinom.server.tap: option parsing and validation before anything listens."""

# slow: starts game-host worker processes

from __future__ import annotations

import io
import json
import os

from OpenSSL.crypto import FILETYPE_ASN1
from twisted.application.service import Application, MultiService
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate
from twisted.internet.testing import MemoryReactor
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from tests.games.test_games_registry import WindowedGame
from tests.support.tls import MemoryClient
from vinom.games.duel import DuelGame
from vinom.games.registry import GameRegistry
from vinom.matchmaking.windows import RatingWindow
from vinom.net.tls import TLSLayerFactory
from vinom.server.certs import ensure_dev_certificate
from vinom.server.checks import (
    match_size_overrides,
    parse_port_range,
    rating_windows,
    read_token_key,
)
from vinom.server.logs import ServerRoot
from vinom.server.options import role_options
from vinom.server.tap import Options, makeService


def parse(*argv: str) -> usage.Options:
    """The options of the role `argv` runs (its subcommand's, else the whole server's)."""
    options = Options()
    options.parseOptions(list(argv))
    return role_options(options)


class PortRangeTests(TestCase):
    def test_range(self) -> None:
        self.assertEqual(parse_port_range("7400-7499"), (7400, 7499))

    def test_single_port(self) -> None:
        self.assertEqual(parse_port_range("9000"), (9000, 9000))

    def test_unparsable(self) -> None:
        for text in ("", "abc", "7400-", "-7499", "7400-74x9", "1-2-3"):
            with self.subTest(text=text):
                e = self.assertRaises(usage.UsageError, parse_port_range, text)
                self.assertIn("--udp-ports", str(e))

    def test_inverted(self) -> None:
        e = self.assertRaises(usage.UsageError, parse_port_range, "7499-7400")
        self.assertIn("inverted", str(e))

    def test_out_of_bounds(self) -> None:
        for text in ("0-10", "65000-65536", "70000"):
            with self.subTest(text=text):
                self.assertRaises(usage.UsageError, parse_port_range, text)


class OptionsTests(TestCase):
    def test_hosting_options(self) -> None:
        options = parse()
        self.assertEqual(options["matches"], "workers")
        self.assertEqual(options["host-workers"], max(1, (os.cpu_count() or 1) - 1))
        self.assertEqual(options["process-pool"], 2)
        self.assertEqual(parse("--matches", "here")["matches"], "here")
        self.assertEqual(parse("--matches", "per-match")["matches"], "per-match")
        for argv, name in (
            (("--host-workers", "-1"), "--host-workers"),
            (("--host-workers", "two"), "--host-workers"),
            (("--matches", "thread"), "--matches"),
            (("--game-host", "thread"), "--game-host"),
            (("--process-pool", "-2"), "--process-pool"),
        ):
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertIn(name, str(e))

    def test_defaults(self) -> None:
        options = parse()
        self.assertEqual(options["lobby"], "vinom-ssl:7350")
        self.assertEqual(options["udp-port-range"], (7400, 7499))
        self.assertEqual(options["max-games"], 100)
        self.assertEqual(options["log-format"], "text")
        self.assertIsNone(options["token-key"])
        self.assertEqual(options["max-connections-per-ip"], 32)
        self.assertEqual(options["frame-rate"], 20.0)
        self.assertEqual(options["frame-burst"], 40)
        self.assertEqual(options["max-protocol-errors"], 10)
        self.assertEqual(options["session-timeout"], 5.0)
        self.assertEqual(options["reconnect-grace"], 30.0)
        self.assertEqual(options["connect-deadline"], 30.0)
        self.assertEqual(options["max-connections"], 10000)
        self.assertEqual(options["max-pending-per-ip"], 32)
        self.assertEqual(options["queue-rate"], 1.0)
        self.assertEqual(options["queue-burst"], 32)
        self.assertEqual(options["lobby-hello-timeout"], 10.0)
        self.assertEqual(options["lobby-idle-timeout"], 60.0)

    def test_the_realm(self) -> None:
        self.assertEqual(parse()["realm"], "default")
        self.assertEqual(parse("--realm", "eu-west")["realm"], "eu-west")
        e = self.assertRaises(usage.UsageError, parse, "--realm", "eu west")
        self.assertIn("--realm must be a Kubernetes label value", str(e))

    def test_max_games_bounds(self) -> None:
        self.assertEqual(parse("--udp-ports", "9000-9009", "--max-games", "10")["max-games"], 10)
        e = self.assertRaises(usage.UsageError, parse, "--udp-ports", "9000-9009", "-g", "11")
        self.assertIn("larger than the UDP port range", str(e))
        for bad in ("0", "-3", "many"):
            with self.subTest(bad=bad):
                self.assertRaises(usage.UsageError, parse, "--max-games", bad)

    def test_default_max_games_is_pool_size(self) -> None:
        self.assertEqual(parse("--udp-ports", "9000-9003")["max-games"], 4)

    def test_inverted_port_range(self) -> None:
        self.assertRaises(usage.UsageError, parse, "--udp-ports", "9010-9000")

    def test_missing_certificate_file(self) -> None:
        key = self.mktemp()
        with open(key, "w") as f:
            f.write("x")
        e = self.assertRaises(
            usage.UsageError, parse, "--certificate", "/nonexistent/cert.pem", "--private-key", key
        )
        self.assertIn("no such file", str(e))

    def test_certificate_without_key(self) -> None:
        cert = self.mktemp()
        with open(cert, "w") as f:
            f.write("x")
        e = self.assertRaises(usage.UsageError, parse, "--certificate", cert)
        self.assertIn("go together", str(e))

    def test_log_format(self) -> None:
        self.assertEqual(parse("--log-format", "json")["log-format"], "json")
        self.assertRaises(usage.UsageError, parse, "--log-format", "xml")

    def test_rate_limits_must_be_positive(self) -> None:
        for args in (
            ("--limit", "frame-rate=0"),
            ("--limit", "frame-rate=fast"),
            ("--limit", "frame-burst=0"),
            ("--limit", "max-connections-per-ip=-1"),
            ("--limit", "max-protocol-errors=x"),
            ("--limit", "session-timeout=0"),
            ("--limit", "reconnect-grace=-1"),
            ("--limit", "connect-deadline=soon"),
            ("--limit", "frame-rate=inf"),
            ("--limit", "session-timeout=nan"),
            ("--limit", "session-timeout=5000000"),
            ("--limit", "max-connections=0"),
            ("--limit", "max-pending-per-ip=none"),
            ("--limit", "queue-rate=0"),
            ("--limit", "queue-burst=-2"),
            ("--limit", "lobby-hello-timeout=0"),
            ("--limit", "lobby-idle-timeout=inf"),
        ):
            with self.subTest(args=args):
                self.assertRaises(usage.UsageError, parse, *args)

    def test_public_host_must_fit_a_token(self) -> None:
        self.assertEqual(parse("--public-host", " game.example.com ")["public-host"],
                         "game.example.com")
        for bad in ("", "jeu.exemple.fr\u00e9", "x" * 256):
            with self.subTest(bad=bad):
                e = self.assertRaises(usage.UsageError, parse, "--public-host", bad)
                self.assertIn("--public-host", str(e))

    def test_udp_interface_must_be_an_address(self) -> None:
        self.assertEqual(parse("--udp-interface", "::1")["udp-interface"], "::1")
        self.assertRaises(usage.UsageError, parse, "--udp-interface", "eth0")

    def test_certificate_must_be_pem_and_match_its_key(self) -> None:
        one = ensure_dev_certificate(self.mktemp())
        two = ensure_dev_certificate(self.mktemp())
        options = parse(
            "--certificate", str(one.certificate), "--private-key", str(one.private_key)
        )
        self.assertEqual(options["certificate"], str(one.certificate))
        e = self.assertRaises(
            usage.UsageError, parse,
            "--certificate", str(one.certificate), "--private-key", str(two.private_key),
        )
        self.assertIn("do not belong together: the key is not the certificate's", str(e))
        junk = self.mktemp()
        with open(junk, "w") as f:
            f.write("not a certificate")
        self.assertRaises(
            usage.UsageError, parse, "--certificate", junk, "--private-key", str(one.private_key)
        )

    def test_match_size(self) -> None:
        self.assertEqual(parse("--match-size", "maze=4")["match-sizes"], {"maze": 4})
        for bad, why in (
            ("maze", "must look like"),
            ("=3", "must look like"),
            ("maze=x", "whole number"),
            ("maze=5", "2 to 4 players"),
            ("chess=2", "no game"),
        ):
            with self.subTest(bad=bad):
                e = self.assertRaises(usage.UsageError, parse, "--match-size", bad)
                self.assertIn(why, str(e))

    def test_rating_window(self) -> None:
        self.assertEqual(parse()["rating-windows"], {})
        options = parse("--rating-window", "maze=10,100", "--rating-window", "dice=50,5.5,400")
        self.assertEqual(
            options["rating-windows"],
            {"maze": RatingWindow(10, 100, None), "dice": RatingWindow(50, 5.5, 400)},
        )
        # The last one for a game wins.
        options = parse("--rating-window", "maze=10,100", "--rating-window", "maze=0,0")
        self.assertEqual(options["rating-windows"], {"maze": RatingWindow(0, 0)})
        for bad, why in (
            ("maze", "must look like"),
            ("=10,100", "must look like"),
            ("maze=10", "must look like"),
            ("maze=1,2,3,4", "must look like"),
            ("maze=x,100", "must be a number"),
            ("maze=-1,100", "at least 0"),
            ("maze=10,inf", "at least 0"),
            ("maze=10,nan", "at least 0"),
            ("maze=100,10,50", "MAX (50) must be at least BASE (100)"),
            ("chess=10,100", "no game 'chess'"),
        ):
            with self.subTest(bad=bad):
                e = self.assertRaises(usage.UsageError, parse, "--rating-window", bad)
                self.assertIn(why, str(e))

    def test_a_games_own_rating_window_is_used_unless_overridden(self) -> None:
        registry = GameRegistry([WindowedGame()])
        self.assertEqual(
            rating_windows(registry, {}), {"windowed": RatingWindow(30, 3, 300)}
        )
        self.assertEqual(
            rating_windows(registry, {"windowed": RatingWindow(5, 1)}),
            {"windowed": RatingWindow(5, 1)},
        )

    def test_a_match_size_override_keeps_whole_teams(self) -> None:
        class Pairs(DuelGame):
            name = "pairs"
            max_players = 6
            match_size = 4
            team_size = 2

        registry = GameRegistry([Pairs()])
        self.assertEqual(match_size_overrides(registry, {"pairs": 6}), {"pairs": 6})
        e = self.assertRaises(usage.UsageError, match_size_overrides, registry, {"pairs": 5})
        self.assertIn("teams of 2", str(e))

    def test_ops_port_and_drain_timeout(self) -> None:
        self.assertEqual(parse()["ops-port"], "tcp:7390:interface=127.0.0.1")
        self.assertIsNone(parse("--ops-port", "none")["ops-port"])
        # A bare port, as --websocket takes one: on loopback, as the default is.
        self.assertEqual(parse("--ops-port", "7391")["ops-port"], "tcp:7391:interface=127.0.0.1")
        self.assertEqual(parse("--limit", "drain-timeout=0")["drain-timeout"], 0.0)
        for argv, why in (
            (("--ops-port", "nonsense:1"), "--ops-port must be a port, a strports description"),
            (("--limit", "drain-timeout=-1"),
             "--limit drain-timeout must be a number of at least 0"),
            (("--limit", "drain-timeout=soon"), "--limit drain-timeout must be a number"),
        ):
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertIn(why, str(e))

    def test_lobby_takes_a_bare_port_and_data_dir_must_name_a_directory(self) -> None:
        self.assertEqual(parse("--lobby", "7351")["lobby"], "vinom-ssl:7351")
        e = self.assertRaises(usage.UsageError, parse, "--data-dir", " ")
        self.assertIn("--data-dir must name a directory", str(e))

    def test_websocket_options(self) -> None:
        options = parse()
        self.assertEqual(options["websocket"], "vinom-ssl:7380")
        policy = options["websocket-origin-policy"]
        self.assertEqual(
            policy.origins, ("https://localhost:7380", "https://127.0.0.1:7380")
        )
        public = parse("--public-host", "games.example", "--websocket", "8443")
        self.assertEqual(public["websocket"], "vinom-ssl:8443")
        self.assertEqual(
            public["websocket-origin-policy"].origins,
            ("https://localhost:8443", "https://127.0.0.1:8443", "https://games.example:8443"),
        )
        behind_proxy = parse("--websocket", "tcp:7380:interface=127.0.0.1",
                             "--websocket-origins", "https://games.example, https://b.example")
        self.assertEqual(behind_proxy["websocket"], "tcp:7380:interface=127.0.0.1")
        self.assertTrue(behind_proxy["websocket-origin-policy"].allows("https://b.example"))
        self.assertFalse(behind_proxy["websocket-origin-policy"].allows("https://c.example"))
        self.assertTrue(parse("--websocket-origins", "*")["websocket-origin-policy"].allows("null"))
        self.assertIsNone(parse("--websocket", "none")["websocket"])
        self.assertEqual(parse()["websocket-proxies"], 0)
        self.assertEqual(parse("--websocket-proxies", "2")["websocket-proxies"], 2)
        for argv, why in (
            (("--websocket", "ssl:"), "not 'ssl:': vinom-ssl needs a port"),
            (("--websocket", "nonsense:1"), "not 'nonsense:1': Unknown endpoint type"),
            (("--websocket", " "), "--websocket must be a port"),
            (("--websocket-origins", "games.example"), "--websocket-origins"),
            (("--websocket-origins", "https://games.example/play"), "--websocket-origins"),
            (("--websocket-proxies", "-1"), "--websocket-proxies must be at least 0"),
        ):
            with self.subTest(argv=argv):
                e = self.assertRaises(usage.UsageError, parse, *argv)
                self.assertIn(why, str(e))

    def test_games(self) -> None:
        offered = parse()["game-registry"].names()
        self.assertEqual(offered, ["arena", "dice", "maze", "owedrahn", "tictactoe"])
        self.assertEqual(parse("--games", "duel, maze")["game-registry"].names(), ["duel", "maze"])
        for bad, why in (("chess", "no game 'chess'"), (",", "at least one game")):
            with self.subTest(bad=bad):
                e = self.assertRaises(usage.UsageError, parse, "--games", bad)
                self.assertIn(why, str(e))
        # --match-size applies to the games offered.
        e = self.assertRaises(usage.UsageError, parse, "--games", "maze", "--match-size", "dice=2")
        self.assertIn("no game 'dice'", str(e))

    def test_lobby_endpoint_checked(self) -> None:
        self.assertEqual(parse("--lobby", "tcp:7350")["lobby"], "tcp:7350")
        for bad in ("ssl:", "ssl:notaport", "nonsense:1234", "tcp:port=abc", "  "):
            with self.subTest(bad=bad):
                self.assertRaises(usage.UsageError, parse, "--lobby", bad)

    def test_lobby_ssl_key_files_checked(self) -> None:
        e = self.assertRaises(
            usage.UsageError, parse, "--lobby", "ssl:7350:privateKey=/nonexistent.pem"
        )
        self.assertIn("no such file", str(e))

    def test_trusted_proxy_is_said_once(self) -> None:
        e = self.assertRaises(
            usage.UsageError, parse, "--lobby", "vinom-proxied:trusted=10.0.0.5:ssl:7350",
            "--trusted-proxy", "10.0.0.6",
        )  # fmt: skip
        self.assertIn("--trusted-proxy and a vinom-proxied: --lobby", str(e))


class TokenKeyTests(TestCase):
    def write(self, data: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_raw_hex_and_base64(self) -> None:
        key = os.urandom(32)
        self.assertEqual(read_token_key(self.write(key)), key)
        self.assertEqual(read_token_key(self.write(key.hex().encode() + b"\n")), key)
        import base64

        self.assertEqual(read_token_key(self.write(base64.b64encode(key))), key)

    def test_wrong_length(self) -> None:
        self.assertRaises(usage.UsageError, read_token_key, self.write(b"short"))
        hex_of_20 = os.urandom(20).hex().encode()
        self.assertRaises(usage.UsageError, read_token_key, self.write(hex_of_20))

    def test_missing_file(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--token-key-file", "/nonexistent/key")
        self.assertIn("--token-key-file", str(e))


class MakeServiceTests(TestCase):
    def make(self, *argv: str) -> tuple[object, MemoryReactor]:
        """makeService on a MemoryReactor (which starts no process: inline hosts unless asked)."""
        reactor = MemoryReactor()
        hosting = () if "--host-workers" in argv or "--matches" in argv else (
            "--matches", "here")
        options = parse("--data-dir", self.mktemp(), *hosting, *argv)
        return makeService(options, reactor), reactor

    def test_service_tree(self) -> None:
        root, _ = self.make()
        assert isinstance(root, MultiService)
        self.assertEqual(
            [s.name for s in root],
            ["hosting", "lobby", "lobby-listener", "web", "ops", "announcement"],
        )
        root, _ = self.make("--websocket", "none")
        assert isinstance(root, MultiService)
        self.assertEqual(
            [s.name for s in root], ["hosting", "lobby", "lobby-listener", "ops", "announcement"]
        )

    def test_game_host_processes_stop_after_the_hosting_service(self) -> None:
        # MultiService stops its children last first: the processes outlive the
        # hosting service's last StopHost.
        for argv in (("--host-workers", "2"), ("--matches", "per-match")):
            root, _ = self.make(*argv)
            assert isinstance(root, MultiService)
            self.assertEqual(
                [s.name for s in root],
                ["game-host-processes", "hosting", "lobby", "lobby-listener", "web", "ops",
                 "announcement"],
            )

    def test_listens_with_tls_on_the_injected_reactor(self) -> None:
        root, reactor = self.make("--lobby", "ssl:7399:interface=127.0.0.1", "--websocket", "7398")
        assert isinstance(root, MultiService)
        root.startService()
        self.addCleanup(root.stopService)
        # TLS run over TCP connections, as Twisted's listenSSL does (vinom.server.tls).
        tls = [s for s in reactor.tcpServers if isinstance(s[1], TLSLayerFactory)]
        self.assertEqual(len(tls), 2)
        port, _factory, backlog, interface = tls[0]
        self.assertEqual((port, backlog, interface), (7399, 1024, "127.0.0.1"))
        # The web server: TLS on every interface (like the default lobby), a twisted.web site.
        port, factory, backlog, interface = tls[1]
        self.assertEqual((port, backlog, interface), (7398, 1024, ""))
        self.assertIsInstance(factory.wrappedFactory, Site)
        # No UDP port is held before a match needs one.
        hosting = root.getServiceNamed("hosting")
        self.assertEqual(hosting.running_games, 0)
        self.assertEqual(hosting.allocator.available, 100)

    def test_match_size_reaches_the_lobby(self) -> None:
        root, _ = self.make("--match-size", "maze=4", "--rating-window", "dice=10,100")
        assert isinstance(root, MultiService)
        lobby = root.getServiceNamed("lobby")
        self.assertEqual(lobby.games["maze"].match_size, 4)
        self.assertEqual(lobby.games["tictactoe"].match_size, 2)
        # The operator's window in the rules the lobby and its matchmaker share.
        self.assertEqual(lobby.games["dice"].rating_window, RatingWindow(10, 100))
        self.assertIsNone(lobby.games["maze"].rating_window)

    def test_benchmark_games_are_offered_only_when_named(self) -> None:
        root, _ = self.make()
        assert isinstance(root, MultiService)
        self.assertNotIn("duel", root.getServiceNamed("lobby").games)
        root, _ = self.make("--games", "duel")
        assert isinstance(root, MultiService)
        self.assertEqual(root.getServiceNamed("lobby").games.match_sizes(), {"duel": 2})

    def test_lobby_limits_reach_the_lobby(self) -> None:
        root, _ = self.make(
            "--limit", "max-connections=500",
            "--limit", "max-pending-per-ip=7",
            "--limit", "queue-rate=2.5",
            "--limit", "queue-burst=9",
            "--limit", "lobby-hello-timeout=4",
            "--limit", "lobby-idle-timeout=90",
            "--limit", "max-matches-per-ip=3",
            "--limit", "lobby-ping-interval=2",
            "--limit", "lobby-ping-timeout=1.5",
        )  # fmt: skip
        assert isinstance(root, MultiService)
        config = root.getServiceNamed("lobby").config
        self.assertEqual(
            (
                config.max_connections,
                config.max_pending_per_ip,
                config.queue_rate,
                config.queue_burst,
                config.hello_timeout,
                config.idle_timeout,
                config.max_matches_per_ip,
                config.ping_interval,
                config.ping_timeout,
            ),
            (500, 7, 2.5, 9, 4.0, 90.0, 3, 2.0, 1.5),
        )

    def test_dev_certificate_made_once_then_reused(self) -> None:
        data_dir = self.mktemp()
        makeService(parse("--data-dir", data_dir), MemoryReactor())
        cert = os.path.join(data_dir, "dev-cert.pem")
        with open(cert, "rb") as f:
            first = f.read()
        makeService(parse("--data-dir", data_dir), MemoryReactor())
        with open(cert, "rb") as f:
            self.assertEqual(f.read(), first)

    def test_given_certificate_is_used(self) -> None:
        paths = ensure_dev_certificate(self.mktemp())
        root, reactor = self.make(
            "--certificate", str(paths.certificate), "--private-key", str(paths.private_key)
        )
        assert isinstance(root, MultiService)
        root.startService()
        self.addCleanup(root.stopService)
        given = Certificate.loadPEM(paths.certificate.read_bytes())
        # The TLS lobby and the web server both present it.
        listening = [s for s in reactor.tcpServers if isinstance(s[1], TLSLayerFactory)]
        self.assertEqual(len(listening), 2)
        for _port, factory, _backlog, _interface in listening:
            # The listener's TLS before a protocol of its own (whose clock is not here).
            client = MemoryClient(TLSLayerFactory(factory.context, Factory.forProtocol(Protocol)))
            client.handshake()
            served = Certificate.load(client.tls.getpeercert(binary_form=True), FILETYPE_ASN1)
            self.assertEqual(served.digest(), given.digest())

    def test_json_log_format_installs_an_observer(self) -> None:
        stream = io.StringIO()
        service = ServerRoot("json", stream)
        application = Application("vinom")
        service.setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIsNotNone(observer)
        observer({"log_format": "hello {who}", "who": "world", "log_time": 0.0})
        line = stream.getvalue()
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(json.loads(line)["who"], "world")

    def test_text_log_format_leaves_twistd_default(self) -> None:
        application = Application("vinom")
        ServerRoot("text").setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))


class GameUrlTests(TestCase):
    """match_found's game_url: the /game of this process's web server as browsers reach it."""

    def test_derived_from_the_public_host_and_the_tls_port(self) -> None:
        self.assertEqual(parse()["game-url"], "wss://127.0.0.1:7380/game")
        self.assertEqual(
            parse("--public-host", "games.example.com", "--websocket", "ssl:8443")["game-url"],
            "wss://games.example.com:8443/game",
        )
        self.assertEqual(parse("--public-host", "::1")["game-url"], "wss://[::1]:7380/game")

    def test_unknown_without_tls_a_port_or_a_web_server(self) -> None:
        for websocket in ("tcp:7380:interface=127.0.0.1", "ssl:0", "none"):
            self.assertIsNone(parse("--websocket", websocket)["game-url"], websocket)

    def test_the_public_web_url_wins(self) -> None:
        for url, expected in (
            ("wss://games.example.com", "wss://games.example.com/game"),
            ("https://games.example.com/eu1/", "wss://games.example.com/eu1/game"),
            ("ws://10.0.0.7:8080", "ws://10.0.0.7:8080/game"),
            # A query stays (a gateway routes /game on it: docs/kubernetes.md).
            ("wss://play.example.com/?host=10.0.0.7", "wss://play.example.com/game?host=10.0.0.7"),
        ):
            options = parse("--websocket", "tcp:7380:interface=127.0.0.1",
                            "--public-web-url", url)  # fmt: skip
            self.assertEqual(options["game-url"], expected)

    def test_bad_public_web_urls_are_refused(self) -> None:
        for url in ("games.example.com", "ftp://games.example.com", "wss://", "wss://a:99999",
                    "wss://a/#x"):  # fmt: skip
            e = self.assertRaises(usage.UsageError, parse, "--public-web-url", url)
            self.assertIn("--public-web-url", str(e))
        e = self.assertRaises(
            usage.UsageError, parse, "--websocket", "none", "--public-web-url", "wss://a"
        )
        self.assertIn("needs the web server", str(e))


