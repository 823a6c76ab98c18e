"""The rendered manifests, run: what each overlay's pods do, as local processes (issue 39).

`kubectl kustomize deploy/overlays/OVERLAY` is rendered, and every Deployment,
StatefulSet and Fleet of it is run by the kubelet stand-in
(tests/support/kubelet.py): each container's own command and arguments, its
environment, its mounted Secrets and ConfigMaps, its pod's address, the
cluster's DNS for the Services' names. The only edits are those the manifests
ask an operator to make: the ConfigMap vinom-public's public addresses and pod
network (here the stand-in's), and the Secrets. Then players play through the
gateway pods: native bots, and Chromium; a lobby pod is killed while matches
run, a host pod deleted (drained) while it hosts matches.

docs/kubernetes.md, "What was validated, and what was not", says what this proves
and what only a real cluster can.
"""

# slow: starts the pods of the rendered manifests (tests/support/kubelet.py)

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.cluster.test_scaling import GAME
from tests.support.kubelet import OWN_NETWORK, POD_NETWORK, Cluster, own_network, password
from tests.test_deploy import render
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.lobby import LobbyClient, LobbyClientProtocol, client_tls_options
from vinom.cluster.blocking import ask


def certificate(names: list[str], addresses: list[str]) -> tuple[bytes, bytes]:
    """A self-signed certificate (PEM) for the public name and the gateway pods' addresses
    (the stand-in's players reach them by address), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))  # fmt: skip


class RenderedManifestsTestCase(TestCase):
    """One overlay's pods, run (module docstring)."""

    # The test's run in its own network (own_network) times out first, with its pods' output.
    timeout = 180 if OWN_NETWORK in os.environ else 300
    overlay = ""
    # The stand-in's pod network: one of its own per overlay, so that the two may run
    # at once (trial -j2, tox.ini) without a pod address in common.
    network = POD_NETWORK

    def setUp(self) -> None:
        # The test and each pod run in namespaces of their own (docs/contributing.md): say
        # so at once.
        probe_namespaces = subprocess.run(["unshare", "-Urmn", "true"], capture_output=True,
                                          text=True, check=False)  # fmt: skip
        self.assertEqual(probe_namespaces.returncode, 0,
                         "the kubelet stand-in needs unprivileged user namespaces "
                         f"(unshare -Urmn): {probe_namespaces.stderr.strip()}")  # fmt: skip

    async def start(self) -> None:
        """The overlay rendered, its pods started, all ready (in the test's own network,
        `own_network`)."""
        self.documents = render(self.overlay)
        work = Path(self.mktemp()).resolve()
        work.mkdir(parents=True)
        probe = Cluster(self.documents, work / "plan", {}, network=self.network)
        gateways = probe.planned_ips("Deployment", "gateway", 2)
        self.gateways = gateways
        public = next(d for d in self.documents if d["kind"] == "ConfigMap"
                      and d["metadata"]["name"] == "vinom-public")["data"]  # fmt: skip
        # The operator's edits the ConfigMap asks for: where players reach the gateways
        # (the stand-in has no LoadBalancer: the first gateway pod's address, its port 7350
        # standing for the Service's 443) and the pod network.
        public.update({
            "web-url": f"wss://{gateways[0]}:7350",
            "origin": f"https://{gateways[0]}:7350",
            "relay": f"{gateways[0]}:7400-7407",
            "pod-network": self.network,
        })  # fmt: skip
        cert, key = certificate(["play.example.com"], gateways)
        self.cert = str(work / "tls.crt")
        Path(self.cert).write_bytes(cert)
        secrets = {
            "vinom-secrets": {"token-key": os.urandom(32), "relay-key": os.urandom(32),
                              "redis-password": password(), "redis-lobby-password": password(),
                              "redis-host-password": password(),
                              "redis-sentinel-password": password(), "ops-token": password()},
            "vinom-tls": {"tls.crt": cert, "tls.key": key},
        }  # fmt: skip
        self.cluster = Cluster(self.documents, work / "cluster", secrets, environ={
            # The image runs the checkout's vinom (the test environment's Python).
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "PYTHONUNBUFFERED": "1",
            **{k: v for k, v in os.environ.items() if k.startswith("VINOM_NO_")},
        }, network=self.network)  # fmt: skip
        self.cluster.start()
        self.addCleanup(self.cluster.stop)
        await self.cluster.pods_until(lambda: all(p.ready for p in self.cluster.pods), 60,
                                 "every pod ready")  # fmt: skip

    def lobbies(self) -> list[LobbyAddress]:
        return [LobbyAddress(ip, 7350, self.cert) for ip in self.gateways]

    async def play(self, n: int, first: int = 0, think_time: float = 0.0) -> list[Any]:
        """`n` native bots, each through either gateway; `think_time` between moves makes
        a match last (a tic-tac-toe match: 5 to 9 moves)."""
        rng = random.Random(39 + first)
        games = [Deferred.fromCoroutine(play_bot(
            reactor, self.lobbies(), GAME, f"p{first + i}", rng=random.Random(rng.random()),
            start=i % 2, think_time=think_time)) for i in range(n)]  # fmt: skip
        return await gatherResults(games)  # type: ignore[no-any-return]

    async def tls_from(self, source: str, gateway: str) -> LobbyClient:
        """A native client's TLS lobby connection from `source` to a gateway pod."""
        endpoint = wrapClientTLS(client_tls_options(self.cert, gateway),
                                 TCP4ClientEndpoint(reactor, gateway, 7350,
                                                    bindAddress=(source, 0)))  # fmt: skip
        client = LobbyClient(await connectProtocol(endpoint, LobbyClientProtocol()))
        self.addCleanup(client.close)
        return client

    async def check_every_container_runs_the_manifests_arguments(self) -> None:
        """Each process's argv is its container's command (or the image's ENTRYPOINT) and
        arguments, only `$(VAR)` references replaced, as the kubelet does."""
        for pod in self.cluster.pods:
            for container in pod.spec["containers"]:
                given = [*(container.get("command") or self.cluster.entrypoint),
                         *container.get("args", [])]  # fmt: skip
                ran = pod.argv[container["name"]]
                self.assertEqual(len(ran), len(given))
                for word, used in zip(given[1:], ran[1:], strict=True):
                    if "$(" not in word:
                        self.assertEqual(used, word)
                    else:
                        self.assertRegex(used, "^" + re.sub(r"\\\$\\\([A-Z_]+\\\)", ".+",
                                                            re.escape(word)) + "$")

    def logs(self, *components: str) -> str:
        return "\n".join(p.text() for p in self.cluster.pods
                         if p.labels.get("app.kubernetes.io/component") in components)

    async def check_native_bots_finish_through_the_gateways(self) -> None:
        reports = await self.play(4)
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4,
                         f"{reports}\n{self.logs('gateway', 'lobby', 'host')}")

    async def check_two_addresses_are_two_for_the_lobbies(self) -> None:
        """The lobbies' per-address limit (--limit max-connections-per-ip, 32 on each lobby)
        counts the players' own addresses through the gateway: 127.0.0.2 fills it (32 to
        64 connections, as the gateway spreads them) and is refused; 127.0.0.3 still
        enters; every refusal names 127.0.0.2, never a gateway's address."""
        gateway = self.gateways[0]
        held = []
        for _ in range(80):
            client = await self.tls_from("127.0.0.2", gateway)
            try:
                await client.hello("Two")
            except Exception:
                break
            held.append(client)
        self.assertTrue(32 <= len(held) <= 64, len(held))
        other = await self.tls_from("127.0.0.3", gateway)
        self.assertEqual((await other.hello("Three")).name, "Three")
        refused = {e["peer"] for p in self.cluster.live("Deployment", "lobby")
                   for e in events(p) if e.get("what") == "a lobby connection"}  # fmt: skip
        self.assertEqual(refused, {"127.0.0.2"}, self.logs("lobby"))
        for client in (*held, other):
            await client.close()

    async def status(self, pod: Any) -> dict[str, Any]:
        """A vinom pod's /status, with the operations token of the Secret."""
        token = self.cluster.secrets["vinom-secrets"]["ops-token"]
        response = await Agent(reactor).request(
            b"GET", f"http://{pod.ip}:7390/status".encode(),
            Headers({b"authorization": [b"Bearer " + token]}))  # fmt: skip
        return json.loads(await readBody(response))  # type: ignore[no-any-return]

    def hosts(self) -> list[Any]:
        return [p for p in self.cluster.pods
                if p.labels.get("app.kubernetes.io/component") == "host" and not p.gone]

    async def running(self) -> dict[Any, int]:
        """The matches each live host runs now."""
        return {pod: (await self.status(pod))["matches"]["running"] for pod in self.hosts()}

    async def until_running(self, n: int) -> dict[Any, int]:
        for _ in range(300):
            running = await self.running()
            if sum(running.values()) >= n:
                return running
            await deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"{n} matches not running within 30 s\n{self.logs('lobby')}")

    async def check_a_killed_lobby_pod_loses_no_running_match(self) -> None:
        lobby = self.cluster.pod_of("Deployment", "lobby", 0)
        games = Deferred.fromCoroutine(self.play(4, first=100, think_time=0.5))
        await self.until_running(2)
        await self.cluster.kill(lobby)
        self.cluster.replace(lobby)
        reports = await games
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4,
                         f"{reports}\n{self.logs('lobby', 'host')}")  # fmt: skip

    async def check_a_drained_host_finishes_its_matches(self) -> None:
        games = Deferred.fromCoroutine(self.play(4, first=200, think_time=0.5))
        running = await self.until_running(2)
        busy = self.drained = max(running, key=running.__getitem__)
        ended = self.cluster.terminate(busy)
        reports = await games
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4,
                         f"{reports}\n{self.logs('lobby', 'host')}")  # fmt: skip
        self.assertEqual(await ended, [0] * len(busy.outputs), busy.text())

    async def check_a_browser_finishes_a_match_through_the_gateway(self) -> None:
        """Chromium at the gateway's address: the page, its files and the WebSocket lobby
        from a lobby pod (TLS ended at the gateway), then the match's /game on the game
        host's pod (game_url's `host`), against a native bot."""
        from selenium.webdriver.common.by import By

        from tests.server.test_web_client import WAIT, click, enter, play_tictactoe, wait_for_game
        from tests.support.browser import open_browser

        browser = await open_browser(self)
        await enter(browser, f"https://{self.gateways[0]}:7350/", "Ann")
        await click(browser, '[data-action="queue"][data-game="tictactoe"]')
        await browser.wait_until(lambda d: d.find_element(By.ID, "queue-panel").is_displayed(),
                                 WAIT)  # fmt: skip
        bot = Deferred.fromCoroutine(play_bot(reactor, self.lobbies(), GAME, "robo",
                                              rng=random.Random(3), think_time=0.2))  # fmt: skip
        await wait_for_game(browser, "tictactoe")
        [outcome] = await play_tictactoe({browser: True})
        report = await bot
        self.assertEqual(report.outcome, "finished", f"{report}\n{self.logs('gateway')}")
        self.assertIn(outcome, ("win", "lose", "draw"))
        # The page came from a lobby pod, the game socket went to a host pod's web server.
        routed: dict[str, int] = {}
        for pod in self.cluster.live("Deployment", "gateway"):
            for name, backend in (await self.status(pod))["backends"].items():
                kind = name.partition("@")[0]
                routed[kind] = routed.get(kind, 0) + backend["routed"]
        self.assertGreater(routed["lobbies-web"], 0, routed)
        self.assertGreater(routed["hosts-web"], 0, routed)

    async def check_a_killed_host_pod_is_replaced_and_serves(self) -> None:
        """A host pod's node is lost while no match runs on it: its controller's new pod
        registers, turns ready and takes matches with the others."""
        (lost, *_rest) = self.hosts()
        await self.cluster.kill(lost)
        new = self.cluster.replace(lost)
        await self.cluster.pods_until(lambda: new.ready, 30, "the new host pod ready")
        reports = await self.play(4, first=300)
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4,
                         f"{reports}\n{self.logs('lobby', 'host')}")  # fmt: skip

    def check_redis_refused_no_command(self) -> None:
        """The lobbies and hosts, each as its own Redis ACL user (docs/scaling.md, "Redis
        users"), were never refused a command, a key or a channel: Redis's ACL LOG, on
        every Redis pod, is empty."""
        password = self.cluster.secrets["vinom-secrets"]["redis-password"].decode()
        users = set()
        for pod in self.cluster.live("StatefulSet", "redis"):
            refused = ask((pod.ip, 6379), ["ACL", "LOG"], password=password)
            self.assertEqual(refused, [], f"{pod.name}: {refused}")
            clients = ask((pod.ip, 6379), ["CLIENT", "LIST"], password=password)
            users |= set(re.findall(r" user=(\S+)", clients))
        self.assertLessEqual({"vinom-lobby", "vinom-host"}, users)

    async def run_everything(self) -> None:
        await self.start()
        await self.check_every_container_runs_the_manifests_arguments()
        await self.check_native_bots_finish_through_the_gateways()
        await self.check_two_addresses_are_two_for_the_lobbies()
        await self.check_a_browser_finishes_a_match_through_the_gateway()
        await self.check_a_killed_lobby_pod_loses_no_running_match()
        await self.check_a_drained_host_finishes_its_matches()
        await self.check_a_killed_host_pod_is_replaced_and_serves()
        self.check_redis_refused_no_command()


def events(pod: Any) -> list[dict[str, Any]]:
    """The pod's JSON log lines (--log-format=json), each a dict."""
    found = []
    for line in pod.text().splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


class StatefulSetOverlayTests(RenderedManifestsTestCase):
    overlay = "statefulset"

    @own_network
    async def test_players_play_through_the_rendered_manifests(self) -> None:
        await self.run_everything()


class AgonesOverlayTests(RenderedManifestsTestCase):
    overlay = "agones"
    network = "127.78.0.0/16"

    @own_network
    async def test_players_play_through_the_rendered_manifests(self) -> None:
        await self.run_everything()
        # Each GameServer told its SDK server (the stand-in Agones injects beside it) Ready,
        # its Counter, and Allocated while it hosted; the drained one Shutdown at the end.
        servers = [p for p in self.cluster.pods if p.sdk is not None]
        for pod in servers:  # (the one killed too, and its replacement)
            calls = pod.sdk.paths()
            self.assertIn("POST /ready", calls)
            self.assertIn("PATCH /v1beta1/counters/matches", calls)
        self.assertTrue(any("POST /allocate" in p.sdk.paths() for p in servers))
        self.assertEqual(self.drained.sdk.paths()[-1], "POST /shutdown")

