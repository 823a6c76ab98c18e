"""The operations endpoint: `/health`, `/ready`, `/metrics`, `/status` and `/dashboard`.

`--ops-port` (a strports description, loopback by default) serves:

- `/health`: 200 `ok` while the process runs its reactor and its game hosts
  answer (with worker processes: at least one is live), else 503 with the
  reason (a supervisor's liveness probe);
- `/ready`: 200 `ready` while the server accepts matches (not draining, a
  game host able to take one; with `--agones`, the Agones SDK server answers
  and the game server is not marked Shutdown; a lobby of a fleet, its shared
  store answers: `SharedState.readiness`), else 503 with the reason (a load
  balancer's readiness probe);
- `/metrics`: the Prometheus text format, from prometheus_client. The figures
  are read from the lobby, the matchmaker and the game hosts when scraped
  (`ServerCollector` over `StatusReader`), so nothing on the hot path counts for it. Worker
  processes' figures arrive with their heartbeats and are summed here; the
  lobby process's own CPU and memory come from prometheus_client's process
  collector;
- `/status`: the same figures as one JSON document (vinom.server.status), with the
  running and recently ended matches, for the dashboard;
- `/dashboard/`: the live operations dashboard, a static page (HTML, CSS and a
  JavaScript module shipped in vinom/server/dashboard/) that polls `/status` every
  second; `/` leads there.

With a token (`--ops-token-file`), `/metrics` and `/status` answer 401 unless
the request carries `Authorization: Bearer TOKEN`; the dashboard's files hold
no figures and stay open, and its script asks for the token once (kept in the
tab's sessionStorage; `/dashboard/config.json` tells it a token is needed, so
it asks before its first poll). `/health` and `/ready` stay open for probes.

All of it is served by twisted.web; `StatusReader` (vinom.server.status) is the one
place the figures are read from the services, for `/metrics` and `/status` alike.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

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
from twisted.web.server import Request
from twisted.web.util import Redirect

import twisted
import vinom
from vinom.lobby.config import MAX_OUTPUT_BYTES
from vinom.server.build import build_info
from vinom.server.logs import Site
from vinom.server.status import ServerFigures, StatusReader, status_document
from vinom.server.web import ReadOnlyRequest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# vinom_build_info's labels: read once (which modules are compiled does not change).
BUILD = {"version": vinom.__version__, "build": build_info()["code"],
         "twisted": twisted.__version__}  # fmt: skip
# The dashboard's page, script and style, shipped in the package (setup.py package_data).
DASHBOARD_FILES = Path(__file__).with_name("dashboard")
ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


class ServerCollector(Collector):
    """The server's figures in the Prometheus format, read when scraped (module docstring)."""

    def __init__(self, status: StatusReader) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        figures = self.status.read()
        build = GaugeMetricFamily(
            "vinom_build_info", "Always 1: the running vinom's version and build (compiled: "
            "the packet path mypyc-compiled; pure: Python sources), and Twisted's version.",
            labels=["version", "build", "twisted"],
        )
        build.add_metric([BUILD["version"], BUILD["build"], BUILD["twisted"]], 1)
        yield build
        yield GaugeMetricFamily(
            "vinom_lobby_connections", "Open lobby connections.",
            value=figures.lobby_connections,
        )
        if figures.websocket_origins_refused is not None:
            yield CounterMetricFamily(
                "vinom_websocket_origins_refused",
                "WebSocket lobby handshakes refused (403) for their Origin.",
                value=figures.websocket_origins_refused,
            )
        if figures.game_sockets_opened is not None:
            yield CounterMetricFamily(
                "vinom_game_sockets_opened",
                "WebSocket game sessions (/game) opened on a game host.",
                value=figures.game_sockets_opened,
            )
            yield _by_reason(
                "vinom_game_sockets_refused",
                "WebSocket game sockets (/game) refused or closed by a limit, by reason.",
                figures.game_sockets_refused,
            )
        if figures.webtransport_sessions_opened is not None:
            yield from webtransport_families(figures)
        lobby_errors = CounterMetricFamily(
            "vinom_lobby_errors", "Error frames the lobby sent, by code.", labels=["code"]
        )
        for code, count in figures.lobby_errors.items():
            lobby_errors.add_metric([code], count)
        yield lobby_errors
        yield GaugeMetricFamily(
            "vinom_lobby_output_held_bytes",
            "Bytes lobby connections hold back now for peers that do not read.",
            value=figures.lobby_output_held,
        )
        yield CounterMetricFamily(
            "vinom_lobby_slow_readers_dropped",
            f"Lobby connections dropped for holding {MAX_OUTPUT_BYTES // 1024} KiB back for a "
            "peer that does not read.",
            value=figures.lobby_slow_readers_dropped,
        )
        bans = CounterMetricFamily(
            "vinom_lobby_bans_ended",
            "Lobby connections and match seats ended by a ban made while the player was online.",
            labels=["what"],
        )
        for what in ("connection", "seat"):
            bans.add_metric([what], figures.bans_ended.get(what, 0))
        yield bans
        queues = GaugeMetricFamily(
            "vinom_queue_depth", "Tickets waiting in each game's queue.", labels=["game"]
        )
        for game, waiting in figures.queues.items():
            queues.add_metric([game], waiting)
        yield queues
        yield CounterMetricFamily(
            "vinom_matches_formed", "Matches the matchmaker formed.",
            value=figures.matches_formed,
        )
        ended = CounterMetricFamily(
            "vinom_matches_ended", "Matches ended, by phase and reason.", labels=["phase", "reason"]
        )
        for (phase, reason), count in sorted(figures.matches_ended.items()):
            ended.add_metric([phase, reason], count)
        yield ended
        yield GaugeMetricFamily(
            "vinom_running_matches", "Matches with a game host now.",
            value=figures.running_count,
        )
        yield GaugeMetricFamily(
            "vinom_waiting_matches", "Formed matches waiting for a free game port.",
            value=figures.waiting_matches,
        )
        yield GaugeMetricFamily(
            "vinom_free_ports", "Game ports free now.", value=figures.free_ports
        )
        yield GaugeMetricFamily(
            "vinom_sessions", "Game sessions (UDP and WebSocket) on the game hosts now.",
            value=figures.sessions,
        )
        yield GaugeMetricFamily(
            "vinom_spectators", "Spectators watching matches on the game hosts now.",
            value=figures.totals.get("spectators:opened", 0)
            - figures.totals.get("spectators:closed", 0),
        )
        yield CounterMetricFamily(
            "vinom_spectator_messages",
            "Messages (states, phases) sent to spectators; one encoding serves them all.",
            value=figures.totals.get("spectators:messages_sent", 0),
        )
        yield CounterMetricFamily(
            "vinom_record_write_errors",
            "Match record writes that failed (a full disk, a directory gone): the rest "
            "of those matches' records is lost; the matches go on.",
            value=figures.totals.get("record_write_errors", 0),
        )
        if figures.record_files is not None:
            yield GaugeMetricFamily(
                "vinom_record_files",
                "Match record files in --record-dir now (pruned by --limit record-keep-days and "
                "--limit record-max-mb).", value=figures.record_files,
            )  # fmt: skip
            yield GaugeMetricFamily(
                "vinom_record_bytes", "Bytes of the match record files in --record-dir now.",
                value=figures.record_bytes,
            )
        if figures.ranked_results_backlog is not None:
            yield GaugeMetricFamily(
                "vinom_ranked_results_backlog",
                "Ranked match ends in the ranked results stream not rated yet (docs/accounts.md).",
                value=figures.ranked_results_backlog,
            )
            yield GaugeMetricFamily(
                "vinom_ranked_results_pending",
                "Of those, the ends a lobby read and has not rated yet (a dead lobby's are "
                "claimed by another).", value=figures.ranked_results_pending or 0,
            )  # fmt: skip
            yield CounterMetricFamily(
                "vinom_ranked_results_lost",
                "Ranked match ends this lobby found trimmed from the stream before any lobby "
                "rated them.", value=figures.ranked_results_lost,
            )  # fmt: skip
        yield from account_families(figures)
        yield GaugeMetricFamily(
            "vinom_draining", "1 while the server drains (SIGTERM), else 0.",
            value=1 if figures.draining else 0,
        )
        totals = figures.totals
        datagrams = CounterMetricFamily(
            "vinom_datagrams", "UDP datagrams the game hosts received and sent.",
            labels=["direction"],
        )
        datagrams.add_metric(["in"], totals.get("datagrams_received", 0))
        datagrams.add_metric(["out"], totals.get("datagrams_sent", 0))
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
        inputs = CounterMetricFamily(
            "vinom_inputs",
            "Real-time inputs of ticking rooms by outcome (held, late, early, duplicate, "
            "too_late, capped, applied, rejected, not_playing, bad_ack; docs/protocol.md "
            "section 14).",
            labels=["outcome"],
        )
        for key, count in sorted(totals.items()):
            if key.startswith("input:"):
                inputs.add_metric([key[6:]], count)
        yield inputs
        entities = CounterMetricFamily(
            "vinom_snapshot_entities",
            "Changed entities of games with a snapshot budget: sent, deferred to a "
            "later snapshot, or sent past the budget when overdue (docs/games.md).",
            labels=["outcome"],
        )
        for key, count in sorted(totals.items()):
            if key.startswith("entities:"):
                entities.add_metric([key[9:]], count)
        yield entities
        yield CounterMetricFamily(
            "vinom_handshakes_completed", "UDP handshakes the game hosts completed (welcomes).",
            value=totals.get("welcomes_sent", 0),
        )
        rtt = figures.rtt
        yield GaugeHistogramMetricFamily(
            "vinom_session_rtt_seconds",
            "Smoothed round-trip time of the UDP sessions now.",
            buckets=rtt.cumulative(), gsum_value=rtt.total,
        )
        yield from self._workers(figures)

    def _workers(self, figures: ServerFigures) -> Iterator[Metric]:
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
        for worker in figures.workers:
            label = [str(worker.index)]
            live.add_metric(label, 1 if worker.live else 0)
            hosted.add_metric(label, worker.hosts)
            sessions.add_metric(label, worker.sessions)
            cpu.add_metric(label, worker.cpu_seconds)
            restarts.add_metric(label, worker.restarts)
        yield from (live, hosted, sessions, cpu, restarts)
        spawn = figures.spawn_latency
        if spawn is not None:
            yield HistogramMetricFamily(
                "vinom_host_spawn_seconds",
                "Seconds from starting a game-host process (or asking the pool for a "
                "child) to its being ready.",
                buckets=spawn.cumulative(), sum_value=spawn.total,
            )


class OpsAnswer(Resource):
    """One page of an operations endpoint: `answer()` gives its status, body and
    content type at each GET; with `token`, only a request bearing it is answered."""

    isLeaf = True

    def __init__(
        self, answer: Callable[[], tuple[int, bytes, str]], token: str | None = None
    ) -> None:
        super().__init__()
        self._answer = answer
        self._expected = None if token is None else b"Bearer " + token.encode()

    def render_GET(self, request: Request) -> bytes:
        if self._expected is not None:
            given = request.getHeader(b"authorization") or b""
            if not hmac.compare_digest(given, self._expected):
                request.setResponseCode(401)
                request.setHeader(b"www-authenticate", b'Bearer realm="vinom operations"')
                request.setHeader(b"content-type", b"text/plain")
                request.setHeader(b"cache-control", b"no-store")
                return b"a bearer token is needed (--ops-token-file)\n"
        status, body, content_type = self._answer()
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        return body


class _Dashboard(Resource):
    """`/dashboard`: the page and its files, read once from the package (vinom/server/dashboard/),
    and `config.json`, which tells the page whether to ask for a token before it polls."""

    isLeaf = True

    def __init__(self, directory: Path, *, token_required: bool = False) -> None:
        super().__init__()
        self._files = {
            path.name: (path.read_bytes(), ASSET_TYPES[path.suffix])
            for path in sorted(directory.iterdir())
            if path.suffix in ASSET_TYPES
        }
        config = json.dumps({"token_required": token_required}).encode()
        self._files["config.json"] = (config, "application/json")

    def render_GET(self, request: Request) -> bytes:
        if not request.postpath:
            # Without the slash the page's relative links would miss /dashboard/.
            request.redirect(request.path + b"/")
            return b""
        name = b"/".join(request.postpath).decode("utf-8", "replace") or "index.html"
        found = self._files.get(name)
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain")
            return b"not found\n"
        body, content_type = found
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        # Nothing from elsewhere: the page, its script and its style are all here.
        request.setHeader(
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        return body


#: A check of an operations endpoint: the reason for a 503, or None when all is well.
Check = Callable[[], "str | None"]


def _no_trouble() -> str | None:
    return None


def operations_site(
    collectors: Sequence[Collector],
    *,
    health: Check = _no_trouble,
    readiness: Sequence[Check] = (),
    status: Callable[[], object] | None = None,
    dashboard: bool = False,
    token: str | None = None,
    access_log: bool = False,
    process_metrics: bool = True,
) -> tuple[Site, CollectorRegistry]:
    """The twisted.web site of an operations endpoint, and its metrics registry: the
    one builder of every role's (the server's, the gateway's, the relay's).

    `/health`: 200 `ok`, or 503 with `health()`'s reason; `/ready`: 503 with the
    first reason the `readiness` checks give, in order, else 200 `ready`; `/metrics`: the
    `collectors`' figures (and, with `process_metrics`, the process's CPU and
    memory); `/status`, when `status` is given: its document as JSON; with
    `dashboard`, the operations dashboard at `/dashboard/`, to which `/` leads.
    With `token`, `/metrics` and `/status` ask for it (module docstring); a line
    per request in the log with `access_log`."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)

    def healthy() -> tuple[int, bytes, str]:
        trouble = health()
        if trouble is not None:
            return 503, f"{trouble}\n".encode(), "text/plain"
        return 200, b"ok\n", "text/plain"

    def ready() -> tuple[int, bytes, str]:
        for check in readiness:
            reason = check()
            if reason is not None:
                return 503, f"{reason}\n".encode(), "text/plain"
        return 200, b"ready\n", "text/plain"

    def metrics() -> tuple[int, bytes, str]:
        return 200, generate_latest(registry), CONTENT_TYPE

    root = Resource()
    root.putChild(b"health", OpsAnswer(healthy))
    root.putChild(b"ready", OpsAnswer(ready))
    root.putChild(b"metrics", OpsAnswer(metrics, token))
    if status is not None:
        document = status

        def status_json() -> tuple[int, bytes, str]:
            body = json.dumps(document(), separators=(",", ":")).encode()
            return 200, body, "application/json"

        root.putChild(b"status", OpsAnswer(status_json, token))
    if dashboard:
        root.putChild(b"dashboard", _Dashboard(DASHBOARD_FILES, token_required=token is not None))
        # A person who opens the endpoint's address finds the dashboard.
        root.putChild(b"", Redirect(b"/dashboard/"))
    site = Site(root, access_log=access_log)
    site.requestFactory = ReadOnlyRequest
    site.noisy = False
    return site, registry


def ops_site(
    status: StatusReader,
    *,
    process_metrics: bool = True,
    token: str | None = None,
    access_log: bool = False,
    readiness: Sequence[Check] = (),
) -> tuple[Site, CollectorRegistry]:
    """The game server's operations endpoint (module docstring): its figures from
    `status`; `readiness`: more reasons not to be ready (an Agones SDK server that
    does not answer: vinom.fleet.agones)."""

    def draining() -> str | None:
        return "draining" if status.drain.draining else None

    return operations_site(
        [ServerCollector(status)],
        health=status.trouble,
        readiness=(draining, status.trouble, *readiness),
        status=lambda: status_document(status.read()),
        dashboard=True,
        token=token,
        access_log=access_log,
        process_metrics=process_metrics,
    )


def _by_reason(name: str, documentation: str, counts: Mapping[str, int]) -> Metric:
    """A counter family labelled by `reason`, one sample per reason in name order."""
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    return family


def webtransport_families(figures: ServerFigures) -> Iterator[Metric]:
    """The WebTransport listener's families (--webtransport; docs/operations.md)."""
    yield CounterMetricFamily(
        "vinom_webtransport_sessions_opened",
        "WebTransport game sessions opened on a game host.",
        value=figures.webtransport_sessions_opened,
    )
    yield _by_reason(
        "vinom_webtransport_sessions_refused",
        "WebTransport game sessions refused or closed by a limit, by reason.",
        figures.webtransport_sessions_refused,
    )
    yield GaugeMetricFamily(
        "vinom_webtransport_connections", "Open WebTransport (QUIC) connections.",
        value=figures.webtransport_connections,
    )
    yield _by_reason(
        "vinom_webtransport_connections_closed",
        "WebTransport (QUIC) connections closed by a limit of their own, by reason.",
        figures.webtransport_connections_closed,
    )
    yield CounterMetricFamily(
        "vinom_webtransport_retries",
        "QUIC Retry packets sent (address validation while many handshakes are in progress).",
        value=figures.webtransport_retries,
    )
    yield _by_reason(
        "vinom_webtransport_datagrams_dropped",
        "UDP datagrams of the WebTransport port dropped before reaching a session, by reason.",
        figures.webtransport_drops,
    )
    messages = CounterMetricFamily(
        "vinom_webtransport_messages",
        "Room messages through WebTransport sessions, by way (stream, datagram) and "
        "direction (in, out).",
        labels=["way", "direction"],
    )
    for name, count in sorted(figures.webtransport_messages.items()):
        way, _, direction = name.partition("_")
        messages.add_metric([way, direction], count)
    yield messages


def account_families(figures: ServerFigures) -> Iterator[Metric]:
    """The lobby's sign-ins, the accounts they made, and the rated matches
    (docs/operations.md); nothing in a process without a lobby."""
    if figures.auth_kind is None:
        return
    sign_ins = CounterMetricFamily(
        "vinom_sign_ins",
        "Sign-ins (hello, reconnect, a replay's Authorization) by auth kind and outcome: ok, "
        "an auth_failed reason, banned or unavailable.",
        labels=["kind", "outcome"],
    )
    for outcome, count in figures.sign_ins.items():
        sign_ins.add_metric([figures.auth_kind, outcome], count)
    yield sign_ins
    yield CounterMetricFamily(
        "vinom_accounts_created", "Accounts the lobby's sign-ins made (first sign-ins).",
        value=figures.accounts_made,
    )
    if figures.rated_matches is not None:
        yield CounterMetricFamily(
            "vinom_rated_matches", "Ranked matches this lobby rated (each once).",
            value=figures.rated_matches,
        )
        yield CounterMetricFamily(
            "vinom_rating_write_failures",
            "Writes of a rated match's ratings that the account database failed or refused "
            "(each try; the match is rated when a write succeeds, docs/accounts.md).",
            value=figures.rating_write_failures,
        )
