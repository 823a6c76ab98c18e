"""Players of the chaos scenario: `python -m benchmarks.chaos_players <json settings>`.

One Twisted process plays every player of `benchmarks.chaos` against the
cluster's lobbies, through the vinom client library, and records what each
of them sees. Three kinds of player:

- **steady** players (`steady`, home lobby i % 2) loop: hello, queue for
  `game` in the normal queue, play the match to its end with the game's bot
  (`think` seconds before each move), and again;
- **waiters** (`waiters`, all on lobby 0, the lobby the lobby faults hit)
  queue in the game's ranked queue with ratings 10,000 apart, so that
  nobody is matched with them: players waiting for a fair opponent;
- **probes**, a pair of new players every `probe_every` seconds (one through
  each lobby), queue for `probe_game` in the normal queue and stop once their
  match is past its `waiting` phase (every player connected; then they
  leave): how long a new player takes to be in a game.

Every player is the client library's: a `vinom.client.failover.LobbyPlayer`
(the lobbies in turn from its home lobby, with the library's jittered
backoff; a lost lobby connection is followed by `reconnect` and, with no
match, `requeue`: `hello` with `previous`, which withdraws the ticket left
queued), and `vinom.client.game.connect_game` for the game sessions. Around
a match it does what `vinom.client.bots.play_bot` does: a lost game session
is resumed with `rejoin` on the same `GameSession`; a match aborted with a
place kept at the head of the queue (players_missing, host_crashed:
docs/lobby.md) is followed by `rejoin` for the next one; a game host that
cannot be reached is asked for again through `rejoin` after a backoff, for
at most the policy's `give_up_after`. A `rejoin` answered `no_active_match`
or `bad_secret` sends it back to `find_match` (the same player, so it
requeues); no lobby at all, or another error, is waited out with the
backoff and tried again. After a finished match (or one aborted for good,
or a game host given up on) a steady player starts afresh, as a new bot
does: a new `LobbyPlayer` (from the lobby the last one used), `hello` and
`queue`. The only seam is `LobbyPlayer(connect=...)`: each lobby
connection is opened from the player's own 127.x.y.z address (so that the
per-address limits see one client per player) with the library's lobby
protocol, watched for what is recorded below.

What is recorded, per player, is when it was not in a normal state (an
interval from the moment it went wrong to the moment it was normal again):
its lobby connection lost (or not made) before its `match_found` until it
is queued again, a request unanswered (no reply within `answer_bound`, or
the lobby silent from the request until the client gave up on it and
dropped the connection), a match it was placed in that turned out a ghost
(its roster names a player id none of our players holds any more, or one
we never had), a match that was
lost (aborted, or its session closed), and a gap of more than `gap` seconds
between two states of a running match (the host stopped). Normal is a
`queued` reply, or a state of a match that is not a ghost. Each match any of
our players was told of is recorded with its players' outcomes, and each
probe with how long it took.

Commands: `running` answers the game ports of the matches running now (`ports`);
`fault` (`at`: the wall-clock time of the fault; `min_observe`,
`window`, `settle` in seconds) starts the observation; the worker answers
`result` when the cluster has been whole for `settle` seconds (every player
normal, the last probe in time, every match running at the fault ended) and
at least `min_observe` seconds have passed, or at `window`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from attrs import define, field
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from benchmarks.worker import global_reactor, run_guarded, start_control
from vinom.client.bots import BotDriver, LobbyAddress
from vinom.client.failover import (
    DEFAULT_POLICY,
    NO_MATCH_CODES,
    LobbyConnect,
    LobbyPlayer,
)
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import (
    LobbyClient,
    LobbyClientProtocol,
    MatchFound,
    Queued,
    client_tls_options,
    decode_frame,
)
from vinom.client.udp import ConnectFailedError
from vinom.errors import LobbyError
from vinom.games.registry import GameRegistry

# Aborts after which the player keeps a place at the head of its queue (docs/lobby.md).
REQUEUED = ("players_missing", "host_crashed")
# The lobby requests whose answers are timed (the keepalive `ping` is not one).
COUNTED = ("hello", "queue", "reconnect")
RANKED_SPACING = 10_000.0
# The client library's timings: backoff, giving up (docs/client.md, "Several lobbies").
POLICY = DEFAULT_POLICY


def now() -> float:
    return time.time()


@define
class MatchView:
    """One match as our players saw it."""

    game_id: str
    port: int
    found_at: float
    roster: list[str] = field(factory=list)
    ghost: bool = False
    connected: int = 0
    # Our player's name -> its outcome: finished, aborted:<reason>, closed:<reason>,
    # connect_failed:<reason>; absent while it plays.
    outcomes: dict[str, str] = field(factory=dict)
    players: set[str] = field(factory=set)
    ended_at: float | None = None

    def record(self) -> dict[str, Any]:
        return {
            "game_id": self.game_id, "port": self.port, "found_at": self.found_at,
            "roster": self.roster, "ghost": self.ghost, "connected": self.connected,
            "outcomes": self.outcomes, "players": sorted(self.players), "ended_at": self.ended_at,
        }  # fmt: skip


@define
class Tracker:
    """When one player was not in a normal state."""

    intervals: list[tuple[float, float]] = field(factory=list)
    since: float | None = None

    def bad(self, at: float) -> None:
        if self.since is None or at < self.since:
            self.since = at

    def good(self, at: float) -> None:
        if self.since is not None:
            self.intervals.append((self.since, at))
            self.since = None

    def gap(self, start: float, end: float) -> None:
        self.intervals.append((start, end))


@define
class Who:
    """One of our players as the lobbies see it: its name, its own source address, its
    player id now, and (steady players and waiters) when it was not in a normal state."""

    name: str
    source: str
    tracker: Tracker | None = None
    player_id: str | None = None

    def went_wrong(self, at: float) -> None:
        if self.tracker is not None:
            self.tracker.bad(at)


class WatchedLobbyProtocol(LobbyClientProtocol):
    """The client library's lobby protocol, watched for the records: each request
    counted and timed, each error code answered, each player id given, and a
    connection that ends before its `match_found` (the player is then not in a normal
    state until it is queued again)."""

    def __init__(self, world: World, who: Who) -> None:
        super().__init__()
        self.world = world
        self.who = who
        self.matched = False
        # The requests waiting for their reply: the frames received when each was
        # sent, and what to call if none ever comes.
        self.outstanding: dict[int, tuple[int, Callable[[], None]]] = {}

    def request(self, frame: Any) -> Deferred[dict[str, Any]]:
        reply = super().request(frame)
        what = str(frame.get("type"))
        if what in COUNTED and not reply.called:
            key = id(reply)
            unanswered = self.world.watch_request(self.who, what, reply)
            self.outstanding[key] = (self.frames_received, unanswered)
            reply.addBoth(lambda result: (self.outstanding.pop(key, None), result)[1])
        return reply

    def lineReceived(self, line: bytes) -> None:
        frame = decode_frame(line)
        kind = None if frame is None else frame.get("type")
        if frame is not None and kind == "error":
            self.world.errors[str(frame.get("code"))] += 1
        elif frame is not None and kind == "welcome":
            self.world.welcomed(self.who, str(frame.get("player_id")))
        elif kind == "match_found":
            self.matched = True
        super().lineReceived(line)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.matched:
            self.who.went_wrong(now())
        # Closed by the client itself (LobbyPlayer leaves a lobby that stays silent): a
        # request the lobby said nothing at all after will never have an answer. (One
        # followed by a frame, e.g. the lobby's own `server_draining`, was not left
        # for silence.)
        if getattr(self.transport, "disconnecting", False):
            for frames, unanswered in list(self.outstanding.values()):
                if frames == self.frames_received:
                    unanswered()
        if reason is None:
            super().connectionLost()
        else:
            super().connectionLost(reason)


class World:
    """Everything the players share: settings, the ids in play, what was recorded."""

    def __init__(self, reactor: Any, settings: dict[str, Any]) -> None:
        self.reactor = reactor
        self.settings = settings
        self.lobbies = [LobbyAddress(a["host"], int(a["port"]), a["trust"])
                        for a in settings["lobbies"]]  # fmt: skip
        registry = GameRegistry.from_plugins()
        self.game = registry.get(settings["game"])
        self.bound = float(settings["answer_bound"])
        self.gap = float(settings["gap"])
        self.rng = random.Random(int(settings["seed"]))
        self.known: set[str] = set()
        self.stale: set[str] = set()
        self.matches: dict[str, MatchView] = {}
        self.requests: Counter[str] = Counter()
        self.unanswered: Counter[str] = Counter()
        self.unanswered_players: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.players: list[Player] = []
        self.probes: list[dict[str, Any]] = []
        self.probes_in_flight: dict[int, float] = {}

    def not_answered(self, who: str, what: str) -> None:
        self.unanswered[what] += 1
        self.unanswered_players.add(who)

    def is_ghost(self, roster: list[str]) -> bool:
        return any(pid in self.stale or pid not in self.known for pid in roster)

    def welcomed(self, who: Who, player_id: str) -> None:
        """A lobby gave `who` a player id: its earlier one (if any) is nobody's now."""
        if who.player_id is not None and who.player_id != player_id:
            self.stale.add(who.player_id)
        who.player_id = player_id
        self.known.add(player_id)

    def watch_request(
        self, who: Who, what: str, reply: Deferred[dict[str, Any]]
    ) -> Callable[[], None]:
        """Count a request; unanswered if no reply came within the bound. Returns what
        to call if the client gives up on it (counted once either way)."""
        self.requests[what] += 1
        sent = now()
        counted = [False]

        def unanswered() -> None:
            if not counted[0]:
                counted[0] = True
                self.not_answered(who.name, what)
                who.went_wrong(sent)

        timer = self.reactor.callLater(self.bound, unanswered)

        def settled(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        reply.addBoth(settled)
        return unanswered

    def connector(self, who: Who) -> LobbyConnect:
        """`LobbyPlayer(connect=...)`: TLS from `who`'s own source address, watched."""

        def connect(address: LobbyAddress, timeout: float) -> Deferred[LobbyClient]:
            tls = client_tls_options(address.trust, "localhost")
            endpoint = wrapClientTLS(tls, TCP4ClientEndpoint(
                self.reactor, address.host, address.port, timeout=timeout,
                bindAddress=(who.source, 0),
            ))  # fmt: skip
            made = connectProtocol(endpoint, WatchedLobbyProtocol(self, who))

            def failed(failure: Failure) -> Failure:
                who.went_wrong(now())
                return failure

            return cast("Deferred[LobbyClient]", made.addCallbacks(LobbyClient, failed))

        return connect

    def lobby_player(self, who: Who, home: int, on_queued: Any = None) -> LobbyPlayer:
        return LobbyPlayer(
            self.reactor, self.lobbies, who.name, start=home, policy=POLICY,
            rng=random.Random(self.rng.random()), on_queued=on_queued,
            connect=self.connector(who),
        )  # fmt: skip


def same_match(session: GameSession | None, found: MatchFound) -> bool:
    """`found` is a fresh token for the seat `session` held (play_bot's rule): resume it."""
    return (
        session is not None
        and not session.finished.called
        and session.welcome is not None
        and session.welcome.get("match") == found.game_id
    )


class Player:
    """One steady player or waiter (see the module docstring)."""

    def __init__(self, world: World, name: str, home: int, source: str,
                 rating: float | None) -> None:  # fmt: skip
        self.world = world
        self.name = name
        self.home = home
        self.rating = rating
        self.tracker = Tracker()
        self.who = Who(name, source, self.tracker)
        self.rng = random.Random(world.rng.random())
        self.last_state: float | None = None
        self.in_match = False
        self.matches_played = 0
        self.session: GameSession | None = None
        self.queued_once: Deferred[None] = Deferred()

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "intervals": self.tracker.intervals,
                "open_since": self.tracker.since, "matches": self.matches_played}  # fmt: skip

    def abnormal_now(self, at: float) -> bool:
        if self.tracker.since is not None:
            return True
        return (
            self.in_match and self.last_state is not None and at - self.last_state > self.world.gap
        )

    def _queued(self, queued: Queued) -> None:
        self.tracker.good(now())
        if not self.queued_once.called:
            self.queued_once.callback(None)

    def new_player(self, last: LobbyPlayer | None = None) -> LobbyPlayer:
        """A new player for the lobbies (it will say `hello`), as each bot of play_bot is,
        starting at the lobby the `last` one used (a client keeps to a lobby that works)."""
        start = self.home if last is None else self.world.lobbies.index(last.lobby)
        return self.world.lobby_player(self.who, start, self._queued)

    async def wait(self, failures: int) -> None:
        await deferLater(self.world.reactor, POLICY.backoff.delay(failures, self.rng),
                         lambda: None)  # fmt: skip

    async def find(self, player: LobbyPlayer) -> MatchFound:
        """`find_match` until a match is found; an error (no lobby at all, a refusal) is
        waited out with the backoff, and `find_match` asked again: it reconnects, then
        requeues the same player (`previous`)."""
        failures = 0
        while True:
            try:
                if self.rating is None:
                    return await player.find_match(self.world.game.name)
                return await player.find_match(self.world.game.name, self.rating, queue="ranked")
            except CancelledError:
                raise
            except Exception:
                self.tracker.bad(now())
            await self.wait(failures)
            failures += 1

    async def rejoin(self, player: LobbyPlayer) -> MatchFound | None:
        """`rejoin` until the lobbies answer; None when the player has no match any more."""
        failures = 0
        while True:
            try:
                return await player.rejoin()
            except LobbyError as e:
                if e.code in NO_MATCH_CODES:
                    return None
                self.tracker.bad(now())
            except CancelledError:
                raise
            except Exception:
                self.tracker.bad(now())
            await self.wait(failures)
            failures += 1

    async def run(self) -> None:
        player = self.new_player()
        found = await self.find(player)
        session: GameSession | None = None
        # A game host that cannot be reached: since when, and how many tries.
        unreachable_since: float | None = None
        unreachable = 0
        while True:
            outcome = await self.play(found, session)
            kind, _, reason = outcome.partition(":")
            if kind == "connect_failed":
                if unreachable_since is None:
                    unreachable_since = now()
                given_up = now() - unreachable_since >= POLICY.give_up_after
                if not given_up:
                    await self.wait(unreachable)
                    unreachable += 1
            else:
                unreachable_since, unreachable, given_up = None, 0, False
            if kind == "finished":
                self.matches_played += 1
            if kind == "finished" or given_up or (kind == "aborted" and reason not in REQUEUED):
                player = self.new_player(player)
                found, session = await self.find(player), None
                continue
            # A lost session, a place kept in the queue, a host not reached (yet).
            rejoined = await self.rejoin(player)
            if rejoined is None:
                found, session = await self.find(player), None
            else:
                found = rejoined
                session = self.session if same_match(self.session, found) else None

    async def play(self, found: MatchFound, session: GameSession | None) -> str:
        world = self.world
        view = world.matches.get(found.game_id)
        if view is None:
            view = world.matches[found.game_id] = MatchView(found.game_id, found.port, now())
        view.players.add(self.name)
        try:
            world.requests["connect"] += 1
            self.session = await connect_game(world.reactor, found, session=session)
        except ConnectFailedError as e:
            if e.reason == "timeout":
                world.not_answered(self.name, "connect")
            self.tracker.bad(now())
            view.outcomes[self.name] = f"connect_failed:{e.reason}"
            return f"connect_failed:{e.reason}"
        session = self.session
        assert self.who.player_id is not None
        driver = BotDriver(session, world.game.make_bot(self.who.player_id,
                                                        random.Random(world.rng.random())),
                           float(world.settings["think"]), world.reactor)  # fmt: skip
        driver.attach()
        on_welcome = session.on_welcome

        def welcomed(message: dict[str, Any]) -> None:
            if on_welcome is not None:
                on_welcome(message)
            roster = [str(p.get("id")) for p in message.get("players", [])]
            view.roster = roster
            if message.get("reconnected"):
                return
            view.connected += 1
            if world.is_ghost(roster):
                view.ghost = True
                self.tracker.bad(view.found_at)

        on_state = session.on_state

        def stated(message: dict[str, Any]) -> None:
            at = now()
            if self.last_state is not None and at - self.last_state > world.gap:
                self.tracker.gap(self.last_state, at)
            self.last_state = at
            if not view.ghost:
                self.tracker.good(at)
            if on_state is not None:
                on_state(message)

        session.on_welcome = welcomed
        session.on_state = stated
        self.in_match = True
        self.last_state = None
        ended: Deferred[dict[str, Any]] = Deferred()

        def fire(value: dict[str, Any]) -> dict[str, Any]:
            if not ended.called:
                ended.callback(value)
            return value

        session.finished.addCallback(fire)
        session.on_closed = lambda closed: fire({"p": "closed", "reason": closed["reason"]})
        final = await ended
        self.in_match = False
        driver.cancel()
        at = now()
        phase = str(final["p"])
        if phase == "finished":
            outcome = "finished"
        else:
            outcome = f"{phase}:{final.get('reason')}"
            self.tracker.bad(self.last_state or at)
        view.outcomes[self.name] = outcome
        if phase in ("finished", "aborted"):
            view.ended_at = at
            await session.disconnect()
        return outcome


async def probe(world: World, number: int, home: int, source: str) -> None:
    """One new player: hello, queue for the probe game, connect, the first state, leave."""
    started = now()
    name = f"probe{number}"
    world.probes_in_flight[number] = started
    record: dict[str, Any] = {"started": started, "ok": False}
    player = world.lobby_player(Who(name, source), home)
    try:
        matched = player.find_match(world.settings["probe_game"])
        matched.addTimeout(float(world.settings["probe_give_up"]), world.reactor)
        found = await matched
        record.update(game_id=found.game_id, port=found.port)
        world.requests["connect"] += 1
        try:
            session = await connect_game(world.reactor, found)
        except ConnectFailedError as e:
            if e.reason == "timeout":
                world.not_answered(name, "connect")
            raise
        # In its game: past `waiting` (every player of the match connected), or ended;
        # a ghost's roster (below) ends the probe at once, it will never begin.
        begun: Deferred[None] = Deferred()

        def check(message: dict[str, Any]) -> None:
            roster = [str(p.get("id")) for p in (session.welcome or {}).get("players", [])]
            ghost = world.is_ghost(roster)
            if (session.phase != "waiting" or ghost) and not begun.called:
                begun.callback(None)

        session.on_state = session.on_phase = session.on_welcome = check
        check({})
        begun.addTimeout(world.bound, world.reactor)
        await begun
        welcome = session.welcome or {}
        roster = [str(p.get("id")) for p in welcome.get("players", [])]
        record.update(ghost=world.is_ghost(roster), roster=roster, phase=session.phase)
        record["ok"] = not record["ghost"] and session.phase != "aborted"
        await session.leave()
        await session.disconnect()
    except Exception as e:  # a probe reports what went wrong (its error codes are counted)
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        record["ended"] = now()
        record["took"] = record["ended"] - started
        world.probes.append(record)
        world.probes_in_flight.pop(number, None)


def source_address(block: int, i: int) -> str:
    """Player i's own loopback address: each counts as one client for the per-address limits."""
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


def main() -> None:
    settings = json.loads(sys.argv[1])
    reactor = global_reactor()
    world = World(reactor, settings)
    for i in range(int(settings["steady"])):
        world.players.append(Player(world, f"s{i}", i % 2, source_address(1, i), None))
    waiters = [Player(world, f"w{i}", 0, source_address(2, i), RANKED_SPACING * (i + 1))
               for i in range(int(settings["waiters"]))]  # fmt: skip
    world.players.extend(waiters)
    numbers = iter(range(1 << 30))

    def send_probes() -> None:
        n = next(numbers)
        for side in (0, 1):
            Deferred.fromCoroutine(
                probe(world, 2 * n + side, side, source_address(3, 2 * n + side))
            )

    probes = LoopingCall(send_probes)
    probes.clock = reactor
    observing: dict[str, Any] = {}

    def fault(command: dict[str, Any]) -> Deferred[dict[str, Any]]:
        observing.update(command)
        at = float(command["at"])
        observing["running"] = {
            view.game_id
            for view in world.matches.values()
            if view.connected and view.ended_at is None and len(view.outcomes) < len(view.players)
        }
        done: Deferred[dict[str, Any]] = Deferred()
        last_bad = [at]

        def check() -> None:
            t = now()
            bad = [p for p in world.players if p.abnormal_now(t)]
            late = [n for n, s in world.probes_in_flight.items() if t - s > settings["probe_bound"]]
            failed = [p for p in world.probes if p["ended"] > at
                      and (not p["ok"] or p["took"] > settings["probe_bound"])]  # fmt: skip
            ends = [e for p in world.players for (_, e) in p.tracker.intervals]
            last_bad[0] = max([at, *[e for e in ends if e > at], *[p["ended"] for p in failed]])
            if bad or late:
                last_bad[0] = t
            running = [
                g
                for g in observing["running"]
                if world.matches[g].ended_at is None
                and len(world.matches[g].outcomes) < len(world.matches[g].players)
            ]
            settled = (t - at >= float(command["min_observe"]) and not running
                       and t - last_bad[0] >= float(command["settle"]))  # fmt: skip
            if settled or t - at >= float(command["window"]):
                loop.stop()
                done.callback(result(at, t))

        loop = LoopingCall(check)
        loop.clock = reactor
        loop.start(0.25, now=False)
        return done

    def result(at: float, ended: float) -> dict[str, Any]:
        return {
            "fault_at": at, "ended_at": ended,
            "players": [p.record() for p in world.players],
            "matches": [v.record() for v in world.matches.values()],
            "running_at_fault": sorted(observing["running"]),
            "probes": list(world.probes),
            "probes_open": [{"started": s} for s in world.probes_in_flight.values()],
            "requests": dict(world.requests),
            "players_unanswered": len(world.unanswered_players),
            "unanswered": dict(world.unanswered),
            "errors": dict(world.errors),
        }  # fmt: skip

    def running(command: dict[str, Any]) -> dict[str, Any]:
        return {"ports": [v.port for v in world.matches.values()
                          if v.connected and v.ended_at is None]}  # fmt: skip

    control = start_control(reactor, {"fault": fault, "running": running})

    def failed(failure: Any) -> None:
        control.emit("error", message=str(failure.value), traceback=failure.getTraceback())

    async def start() -> None:
        for player in world.players:
            # Spread over two seconds: matches that all start together end together.
            reactor.callLater(world.rng.uniform(0, 2), lambda p=player: Deferred.fromCoroutine(
                p.run()).addErrback(failed))  # fmt: skip
        # Ready once every waiter is queued and the steady players have played a while.
        for waiter in waiters:
            await waiter.queued_once
        probes.start(float(settings["probe_every"]))
        deadline = now() + 60
        steady = world.players[: int(settings["steady"])]
        while sum(p.matches_played for p in steady) < len(steady):
            if now() > deadline:
                raise RuntimeError("the steady players did not finish their first matches")
            await deferLater(reactor, 0.2, lambda: None)
        await deferLater(reactor, float(settings["warmup"]), lambda: None)
        running = sum(1 for v in world.matches.values() if v.connected and v.ended_at is None)
        control.emit("ready", running=running, matches=len(world.matches))

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()).addErrback(failed))
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
