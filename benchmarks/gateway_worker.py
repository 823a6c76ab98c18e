"""Gateway worker of `match --gateway`: `python -m benchmarks.gateway_worker <json>`.

Runs `twistd vinom gateway` (`vinom.server.tap.makeService`) in front of
the lobby ports it is given: a round-robin pool of them, each connection
sent on behind a PROXY protocol v2 header (the lobbies run with
`--trusted-proxy 127.0.0.1`), health checked by a TCP connection every 2 s.
TLS is passed through to the lobbies, or, with `terminate`, terminated by
the gateway (a `tls` route with `"terminate": true`, its dev certificate in
its data directory) and the plaintext's first lobby frame routed to the
pool (the lobbies then listen on plain TCP). It reports the port it listens
on (`gateway_port`) once it listens, and the certificate the clients verify
(`trust`) when it terminates TLS, and answers `mark` with its CPU, RSS and
the gateway's counts (`terminated`: connections whose TLS it terminated).

With `floor` it runs the floor instead (`match --gateway-floor`): bare Twisted,
`twisted.protocols.portforward`, sending each connection to the first lobby
behind a PROXY protocol v2 header; what the gateway does on top of that
(sniffing, routing, its timers and counts) is the difference of the two.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from benchmarks.ports import free_tcp_port
from benchmarks.worker import cpu_seconds, global_reactor, rss_bytes, run_guarded, start_control


def rules(lobby_ports: list[int], terminate: bool = False) -> dict[str, Any]:
    names = [f"lobby{i}" for i in range(len(lobby_ports))]
    # Terminating: TLS is decrypted here first, then its first lobby frame takes the next route.
    terminating = [{"kind": "tls", "terminate": True}] if terminate else []
    return {
        "backends": {name: {"address": f"127.0.0.1:{port}"}
                     for name, port in zip(names, lobby_ports, strict=True)},
        "pools": {"lobbies": {"backends": names}},
        "routes": [*terminating, {"kind": "any", "pool": "lobbies"}],
        "health": {"interval": 2.0, "timeout": 1.0},
    }  # fmt: skip


def listen_floor(reactor: Any, lobby_port: int) -> Any:
    """The floor: portforward to the lobby, a PROXY v2 header first (vinom.gateway.proxy's)."""
    from twisted.protocols import portforward

    from vinom.gateway.proxy import proxy_v2_header

    class HeaderFirst(portforward.ProxyClient):
        def connectionMade(self) -> None:
            client: Any = self.peer.transport  # type: ignore[union-attr]
            self.transport.write(proxy_v2_header(client.getPeer(), client.getHost()))
            super().connectionMade()

    class Connector(portforward.ProxyClientFactory):
        protocol = HeaderFirst
        noisy = False

    class Forward(portforward.ProxyServer):
        clientProtocolFactory = Connector

    Forward.reactor = reactor
    factory = portforward.ProxyFactory("127.0.0.1", lobby_port)
    factory.protocol = Forward
    factory.noisy = False
    return reactor.listenTCP(free_tcp_port("127.0.0.1"), factory, backlog=1024,
                             interface="127.0.0.1")  # fmt: skip


def main_floor(settings: dict[str, Any]) -> None:
    reactor = global_reactor()
    port = listen_floor(reactor, settings["lobby_ports"][0])

    def mark(command: dict[str, Any]) -> dict[str, Any]:
        return {"cpu_s": cpu_seconds(), "rss": rss_bytes(), "counters": {"terminated": 0}}

    control = start_control(reactor, {"mark": mark})
    control.emit("ready", pid=os.getpid(), gateway_port=port.getHost().port, trust=None)
    reactor.run()


def main() -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from vinom.server import tap
    from vinom.server.certs import CERT_FILE

    settings = json.loads(sys.argv[1])
    if settings.get("floor"):
        main_floor(settings)
        return
    reactor = global_reactor()
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr),
                              [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])],
        redirectStandardIO=False,
    )  # fmt: skip
    os.makedirs(settings["data_dir"], exist_ok=True)
    path = os.path.join(settings["data_dir"], "gateway-rules.json")
    with open(path, "w") as f:
        json.dump(rules(settings["lobby_ports"], bool(settings.get("terminate"))), f)
    port = free_tcp_port("127.0.0.1")
    options = tap.Options()
    options.parseOptions([
        "gateway", "--gateway", f"tcp:{port}:interface=127.0.0.1:backlog=1024",
        "--gateway-rules", path, "--ops-port", "none", "--limit", "drain-timeout=0",
        "--data-dir", settings["data_dir"],
    ])  # fmt: skip
    root = tap.makeService(options, reactor)
    root.startService()
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    gateway = root.getServiceNamed("gateway")

    def mark(command: dict[str, Any]) -> dict[str, Any]:
        factory = gateway.factory
        counters = {"connections": len(factory.connections), "routed": dict(factory.routed),
                    "refused": dict(factory.refused), "terminated": factory.terminated}  # fmt: skip
        return {"cpu_s": cpu_seconds(), "rss": rss_bytes(), "counters": counters}

    control = start_control(reactor, {"mark": mark})

    # Made by the gateway at its start (vinom.fleet.gateway.gateway_tls), no --certificate given.
    trust = os.path.join(settings["data_dir"], CERT_FILE) if settings.get("terminate") else None

    def listening(listening_port: Any) -> None:
        control.emit("ready", pid=os.getpid(), gateway_port=listening_port.getHost().port,
                     trust=trust)  # fmt: skip

    root.getServiceNamed("gateway-listener").port().addCallback(listening)
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
