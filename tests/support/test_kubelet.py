"""The kubelet stand-in's own rules (tests/support/kubelet.py): `$(VAR)` as Kubernetes
expands it, the DNS its pods see, and the network of their own they share with the test."""

# slow: starts the pods of the rendered manifests (tests/support/kubelet.py)

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.kubelet import Cluster, Pod, expand, own_network, tcp_open


def service(name: str, component: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": "vinom"},
            "spec": {"selector": {"component": component}, **spec}}  # fmt: skip


class ExpandTests(SynchronousTestCase):
    def test_defined_references_are_replaced_others_kept_and_dollars_escaped(self) -> None:
        env = {"POD_IP": "10.0.0.7", "URL": "wss://a"}
        self.assertEqual(expand("--lobby=ssl:7350:interface=$(POD_IP)", env),
                         "--lobby=ssl:7350:interface=10.0.0.7")  # fmt: skip
        self.assertEqual(expand("$(URL)/?host=$(POD_IP)", env), "wss://a/?host=10.0.0.7")
        self.assertEqual(expand("$(NOPE) $$(POD_IP) $POD_IP", env),
                         "$(NOPE) $(POD_IP) $POD_IP")  # fmt: skip


class RecordsTests(SynchronousTestCase):
    def test_a_headless_service_lists_ready_pods_and_a_statefulsets_own_names(self) -> None:
        documents = [
            service("lobby-pods", "lobby", clusterIP="None"),
            service("redis", "redis", clusterIP="None", publishNotReadyAddresses=True),
        ]
        cluster = Cluster(documents, Path(self.mktemp()), {})
        lobby = Pod("lobby-00000", "127.77.1.1", ("Deployment", "lobby"),
                    {"component": "lobby"}, {})  # fmt: skip
        redis = Pod("redis-0", "127.77.2.1", ("StatefulSet", "redis"),
                    {"component": "redis"}, {})  # fmt: skip
        cluster.pods += [lobby, redis]
        records = cluster.records()
        self.assertEqual(records["lobby-pods.vinom.svc.cluster.local"], [])
        self.assertEqual(records["redis-0.redis"], ["127.77.2.1"])
        self.assertEqual(records["redis"], ["127.77.2.1"])  # not ready, yet published
        lobby.ready = True
        self.assertEqual(cluster.records()["lobby-pods"], ["127.77.1.1"])
        lobby.gone = True
        self.assertEqual(cluster.records()["lobby-pods.vinom"], [])


class OwnNetworkTests(TestCase):
    """A test in a network of its own (`own_network`, the rendered manifests' pods and
    players): the manifests' ports are its own, whatever the machine listens on."""

    @own_network
    async def test_the_manifests_ports_are_free_whatever_the_machine_holds(self) -> None:
        # Nothing of the machine's is reachable here (a `twistd -n vinom` on 7350, say)...
        for port in (7350, 7380, 7390):
            self.assertFalse(await tcp_open("127.0.0.1", port), port)
        # ... and the ports a pod binds, on every address, are free.
        for port in (7350, 7380, 7390):
            listening = reactor.listenTCP(port, Factory.forProtocol(Protocol), interface="0.0.0.0")
            self.addCleanup(listening.stopListening)
        relay = reactor.listenUDP(7400, DatagramProtocol(), interface="0.0.0.0")
        self.addCleanup(relay.stopListening)
        self.assertTrue(await tcp_open("127.77.1.1", 7350))
