"""What operators see of accounts, as they meet it: the start line naming the account
database; a second `twistd -n vinom` on the same SQLite data directory refused in one
line while `vinom accounts` still works beside the first; `/metrics` of a real server
counting sign-ins by kind and outcome, new accounts and a rated match; and a JWT
identity provider that refuses connections (or never answers) logged in one line with
its address and why, the sign-in answered `unavailable` at once."""

# slow: starts `twistd -n vinom` and `vinom accounts` as child processes

from __future__ import annotations

import os
import random
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent

from tests.server.test_twistd import RUN_TWISTD, Collect
from tests.support.http import capture_log
from tests.support.identity_provider import AUDIENCE, ISSUER, IdentityProvider
from tests.support.lobby_players import connect_raw
from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import ROOT, RunningServer, start_server, start_twistd
from tests.support.waiting import until
from tests.test_integration_accounts import device, hello
from vinom.accounts.interfaces import AuthFailed
from vinom.accounts.oidc import JwksKeys, http_fetcher
from vinom.client.bots import BotDriver
from vinom.client.failover import LobbyPlayer
from vinom.client.game import connect_game
from vinom.games.registry import GameRegistry

Frame = dict[str, Any]
RUN_CLI = "import sys; from vinom.cli import main; sys.exit(main())"


class OneServerPerDatabaseTests(TestCase):
    timeout = 120

    async def test_the_start_line_names_the_database_and_a_second_server_is_refused(
        self,
    ) -> None:
        # The announcement comes after the listeners' "starting on": wait for it.
        first = await start_twistd(self, {}, "--auth", "device", ready=b"vinom: lobby on")
        database = os.path.join(first.data_dir, "accounts.sqlite3")
        said = first.output.decode()
        lobby_lines = [line for line in said.splitlines() if "vinom: lobby on" in line]
        self.assertEqual(len(lobby_lines), 1, said)
        self.assertTrue(lobby_lines[0].endswith(f", accounts: {database}"), lobby_lines[0])
        phone = device()
        welcome = await hello(await connect_raw(self, first.lobby), phone)
        self.assertEqual(welcome["type"], "welcome", welcome)

        # A second server on the same data directory (other ports): refused in one line.
        second = Collect()
        lobby_port, udp = free_tcp_port(), free_udp_range(2)
        transport = reactor.spawnProcess(
            second, sys.executable,
            [sys.executable, "-c", RUN_TWISTD, "-n", "--pidfile=", "vinom",
             "--lobby", f"ssl:{lobby_port}:interface=127.0.0.1", "--websocket", "none",
             "--udp-ports", f"{udp}-{udp + 1}", "--udp-interface", "127.0.0.1",
             "--ops-port", "none", "--data-dir", first.data_dir, "--auth", "device"],
            env={**os.environ, "PYTHONPATH": ROOT}, path=first.data_dir,
        )  # fmt: skip
        self.addCleanup(self._stop, transport, second)
        _, status = await second.ended
        output = second.output.decode()
        self.assertNotEqual(status, 0, output)
        # The pid the first server wrote in the lock file it holds, a live process.
        with open(database + ".lock", encoding="utf-8") as lock:
            pid = int(lock.read())
        os.kill(pid, 0)
        expected = (f"vinom: another server (pid {pid}) uses the account "
                    f"database {database}: one server process per SQLite file; stop it, or "
                    "give this one another --data-dir")  # fmt: skip
        self.assertEqual([line for line in output.splitlines() if line.strip()], [expected])

        # The first serves on, and the operator's command works beside it.
        again = await hello(await connect_raw(self, first.lobby), device())
        self.assertEqual(again["type"], "welcome", again)
        env = {**os.environ, "PYTHONPATH": ROOT}
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_CLI, "accounts", "ban", f"device:{phone['device_id']}",
                             "--reason", "testing", "--data-dir", first.data_dir], env=env,
        )  # fmt: skip
        self.assertEqual((code, err), (0, b""), out)
        refused = await hello(await connect_raw(self, first.lobby), phone)
        self.assertEqual((refused["code"], refused["reason"]), ("banned", "testing"))

    def _stop(self, transport: Any, process: Collect) -> Deferred[Any]:
        if not process.ended.called:
            transport.signalProcess("KILL")
        return process.ended


class MetricsTests(TestCase):
    timeout = 120

    async def play_ranked(self, server: RunningServer, auth: Frame, name: str) -> str:
        """One device-signed player queues ranked and plays to the end: their id."""
        game = GameRegistry.from_plugins().get("tictactoe")
        player = LobbyPlayer(reactor, server.lobby, name, auth=auth)
        found = await player.find_match("tictactoe", 1500.0, queue="ranked")
        assert player.welcome is not None
        session = await connect_game(reactor, found)
        self.addCleanup(session.disconnect)
        driver = BotDriver(session, game.make_bot(player.welcome.player_id, random.Random(name)),
                           0.0, reactor)  # fmt: skip
        driver.attach()
        await session.finished
        driver.cancel()
        return player.welcome.player_id

    async def test_sign_ins_new_accounts_and_a_rated_match_are_counted(self) -> None:
        server = await start_server(self, "--auth", "device", "--rating-window",
                                    "tictactoe=10,0", "--ops-port",
                                    "tcp:0:interface=127.0.0.1", ports=2)  # fmt: skip
        ops = (await server.service("ops").port()).getHost().port
        ann, bob = device(), device()
        await gatherResults([Deferred.fromCoroutine(self.play_ranked(server, ann, "Ann")),
                             Deferred.fromCoroutine(self.play_ranked(server, bob, "Bob"))])
        # Ann's device id with another secret: refused.
        refused = await hello(await connect_raw(self, server.lobby), device(ann["device_id"]))
        self.assertEqual((refused["code"], refused["reason"]), ("auth_failed", "bad_secret"))
        # Ann once more with her own: no new account.
        welcome = await hello(await connect_raw(self, server.lobby), ann)
        self.assertEqual(welcome["type"], "welcome")
        lobby = server.service("lobby")
        await until(lambda: lobby.ratings.recorded == 1, lambda: "the match is not rated")

        text = await fetch_metrics(ops)
        self.assertEqual(samples(text, "vinom_sign_ins_total", "kind", "outcome"),
                         {("device", "ok"): 3.0, ("device", "bad_secret"): 1.0})  # fmt: skip
        self.assertEqual(samples(text, "vinom_accounts_created_total"), {(): 2.0})
        self.assertEqual(samples(text, "vinom_rated_matches_total"), {(): 1.0})
        self.assertEqual(samples(text, "vinom_rating_write_failures_total"), {(): 0.0})


class IdentityProviderDownTests(TestCase):
    timeout = 120

    async def test_a_refused_key_fetch_answers_unavailable_at_once_and_says_where(self) -> None:
        lines = capture_log(self)
        nowhere = f"http://127.0.0.1:{free_tcp_port()}/jwks"
        # A sign-in may wait 60 s for the keys: a refusal must not.
        server = await start_server(self, "--auth", "jwt", "--auth-jwks-url", nowhere,
                                    "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
                                    "--limit", "auth-timeout=60", ports=2)  # fmt: skip
        idp = IdentityProvider()
        idp.add_key("k1")
        token = idp.token("ann")
        started = time.monotonic()
        answer = await hello(await connect_raw(self, server.lobby),
                             {"kind": "jwt", "token": token})  # fmt: skip
        self.assertEqual((answer["code"], answer["reason"]), ("auth_failed", "unavailable"))
        self.assertLess(time.monotonic() - started, 30)
        failed = [line for line in lines if "fetching the identity provider's keys" in line]
        self.assertTrue(failed, lines)
        self.assertEqual(failed[0], "vinom: fetching the identity provider's keys failed: "
                         f"{nowhere}: Connection was refused by other side: 111: Connection "
                         "refused")  # fmt: skip

    async def test_a_provider_that_never_answers_is_named_with_its_timeout(self) -> None:
        # Takes the connection and says nothing, as a hung provider does.
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/jwks"
        lines = capture_log(self)
        fetch = http_fetcher(Agent(reactor), url, reactor, 0.5)
        keys = JwksKeys(fetch, reactor)
        with self.assertRaises(AuthFailed) as refused:
            await keys.key_for("k1")
        self.assertEqual(refused.exception.reason, "unavailable")
        self.assertIn("vinom: fetching the identity provider's keys failed: "
                      f"{url}: no answer within 0.5 s", lines)  # fmt: skip
