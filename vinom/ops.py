"""The operations endpoint: `/health`, `/ready` and `/metrics` over twisted.web.

`--ops-port` (a strports description, loopback by default) serves:

- `/health`: 200 `ok` while the process runs its reactor and its game hosts
  answer (with worker processes: at least one is live), else 503 with the
  reason (a supervisor's liveness probe);
- `/ready`: 200 `ready` while the server accepts matches (not draining, a
  game host able to take one), else 503 with the reason (a load balancer's
  readiness probe);
- `/metrics`: the Prometheus text format, from prometheus_client. The figures
  are read from the lobby, the matchmaker and the game hosts when scraped
  (`ServerCollector`), so nothing on the hot path counts for it. Worker
  processes' figures arrive with their heartbeats and are summed here; the
  lobby process's own CPU and memory come from prometheus_client's process
  collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from vinom.drain import Drain
from vinom.hosting.interfaces import Histogram, IHostingStatistics, IMatchHosting
from vinom.lobby.server import LobbyFactory
from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.matchmaking.fifo import FifoMatchmaker
from vinom.web_game import GameSocketFactory

# Upper bounds (seconds) of the session round-trip time histogram's buckets.
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServerCollector(Collector):
    """The server's figures, read when Prometheus scrapes (module docstring)."""

    def __init__(
        self,
        lobby: LobbyFactory,
        matchmaker: FifoMatchmaker,
        hosting: IMatchHosting,
        hosts: IHostingStatistics,
        drain: Drain,
        websocket: WebSocketLobbyFactory | None = None,
        game_sockets: GameSocketFactory | None = None,
    ) -> None:
        self.lobby = lobby
        self.game_sockets = game_sockets
        self.websocket = websocket
        self.matchmaker = matchmaker
        self.hosting = hosting
        self.hosts = hosts
        self.drain = drain

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "vinom_lobby_connections", "Open lobby connections.", value=self.lobby.connection_count
        )
        if self.websocket is not None:
            yield CounterMetricFamily(
                "vinom_websocket_origins_refused",
                "WebSocket lobby handshakes refused (403) for their Origin.",
                value=self.websocket.origins_refused,
            )
        if self.game_sockets is not None:
            yield CounterMetricFamily(
                "vinom_game_sockets_opened",
                "WebSocket game sessions (/game) opened on a game host.",
                value=self.game_sockets.streams_opened,
            )
            refused = CounterMetricFamily(
                "vinom_game_sockets_refused",
                "WebSocket game sockets (/game) refused or closed by a limit, by reason.",
                labels=["reason"],
            )
            for reason, count in sorted(self.game_sockets.refusals.items()):
                refused.add_metric([reason], count)
            yield refused
        queues = GaugeMetricFamily(
            "vinom_queue_depth", "Tickets waiting in each game's queue.", labels=["game"]
        )
        for game in sorted(self.lobby.games):
            queues.add_metric([game], self.matchmaker.queue_length(game))
        yield queues
        placer = self.lobby.placer
        yield CounterMetricFamily(
            "vinom_matches_formed", "Matches the matchmaker formed.", value=placer.matches_formed
        )
        ended = CounterMetricFamily(
            "vinom_matches_ended", "Matches ended, by phase and reason.", labels=["phase", "reason"]
        )
        for (phase, reason), count in sorted(placer.matches_ended.items()):
            ended.add_metric([phase, reason], count)
        yield ended
        yield GaugeMetricFamily(
            "vinom_running_matches", "Matches with a game host now.",
            value=self.hosting.running_games,
        )
        yield GaugeMetricFamily(
            "vinom_waiting_matches", "Formed matches waiting for a free game port.",
            value=self.lobby.waiting_matches,
        )
        yield GaugeMetricFamily(
            "vinom_free_ports", "Game ports free now.", value=self.hosting.free_ports
        )
        yield GaugeMetricFamily(
            "vinom_sessions", "UDP sessions on the game hosts now.",
            value=self.hosts.session_count(),
        )
        yield GaugeMetricFamily(
            "vinom_draining", "1 while the server drains (SIGTERM), else 0.",
            value=1 if self.drain.draining else 0,
        )
        totals = self.hosts.totals()
        datagrams = CounterMetricFamily(
            "vinom_datagrams", "UDP datagrams the game hosts received and sent.",
            labels=["direction"],
        )
        datagrams.add_metric(["in"], totals["datagrams_received"])
        datagrams.add_metric(["out"], totals["datagrams_sent"])
        yield datagrams
        dropped = CounterMetricFamily(
            "vinom_datagrams_dropped", "Datagrams the game hosts dropped, by reason.",
            labels=["reason"],
        )
        messages = CounterMetricFamily(
            "vinom_messages_dropped", "Client messages the seat routers dropped, by reason.",
            labels=["reason"],
        )
        for key, count in sorted(totals.items()):
            if key.startswith("drop:"):
                dropped.add_metric([key[5:]], count)
            elif key.startswith("message_drop:"):
                messages.add_metric([key[13:]], count)
        yield dropped
        yield messages
        yield CounterMetricFamily(
            "vinom_handshakes_completed", "UDP handshakes the game hosts completed (welcomes).",
            value=totals["welcomes_sent"],
        )
        rtt = Histogram(RTT_BUCKETS)
        for seconds in self.hosts.round_trip_times():
            rtt.observe(seconds)
        yield GaugeHistogramMetricFamily(
            "vinom_session_rtt_seconds",
            "Smoothed round-trip time of the UDP sessions now.",
            buckets=rtt.cumulative(), gsum_value=rtt.total,
        )
        yield from self._workers()

    def _workers(self) -> Iterator[Metric]:
        workers = self.hosts.workers()
        live = GaugeMetricFamily(
            "vinom_worker_up", "1 while a game-host worker process answers, else 0.",
            labels=["worker"],
        )
        hosted = GaugeMetricFamily(
            "vinom_worker_running_matches", "Matches each game-host worker process runs now.",
            labels=["worker"],
        )
        sessions = GaugeMetricFamily(
            "vinom_worker_sessions", "UDP sessions on each game-host worker process now.",
            labels=["worker"],
        )
        cpu = CounterMetricFamily(
            "vinom_worker_cpu_seconds", "CPU seconds (user and system) of each game-host worker.",
            labels=["worker"],
        )
        restarts = CounterMetricFamily(
            "vinom_worker_restarts",
            "Game-host worker processes replaced after they exited, were killed or hung.",
            labels=["worker"],
        )
        for worker in workers:
            label = [str(worker.index)]
            live.add_metric(label, 1 if worker.live else 0)
            hosted.add_metric(label, worker.hosts)
            sessions.add_metric(label, worker.sessions)
            cpu.add_metric(label, worker.cpu_seconds)
            restarts.add_metric(label, worker.restarts)
        yield from (live, hosted, sessions, cpu, restarts)
        spawn = self.hosts.spawn_latency()
        if spawn is not None:
            yield HistogramMetricFamily(
                "vinom_host_spawn_seconds",
                "Seconds from starting a game-host process (or asking the pool for a "
                "child) to its being ready.",
                buckets=spawn.cumulative(), sum_value=spawn.total,
            )

    def serving(self) -> str | None:
        """Why the process cannot host matches now (no game-host worker answers), or None."""
        workers = self.hosts.workers()
        if workers and not any(w.live for w in workers):
            return "no game-host worker answers"
        return None


class _Text(Resource):
    isLeaf = True

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self._answer = answer

    def render_GET(self, request: Request) -> bytes:
        status, body, content_type = self._answer()
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        return body


def ops_site(
    collector: ServerCollector, *, process_metrics: bool = True
) -> tuple[Site, CollectorRegistry]:
    """The twisted.web site of the operations endpoint, and its metrics registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)

    def health() -> tuple[int, bytes, str]:
        trouble = collector.serving()
        if trouble is not None:
            return 503, f"{trouble}\n".encode(), "text/plain"
        return 200, b"ok\n", "text/plain"

    def ready() -> tuple[int, bytes, str]:
        if collector.drain.draining:
            return 503, b"draining\n", "text/plain"
        trouble = collector.serving()
        if trouble is not None:
            return 503, f"{trouble}\n".encode(), "text/plain"
        return 200, b"ready\n", "text/plain"

    def metrics() -> tuple[int, bytes, str]:
        return 200, generate_latest(registry), CONTENT_TYPE

    root = Resource()
    root.putChild(b"health", _Text(health))
    root.putChild(b"ready", _Text(ready))
    root.putChild(b"metrics", _Text(metrics))
    site = Site(root)
    site.noisy = False
    return site, registry
