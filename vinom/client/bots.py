"""Bots that play through the real client stack: TLS lobby, connect token, UDP session.

`play_bot` takes one bot from `hello` to the end of its match and returns a
`BotReport`; `run_bots` runs many at once (the `vinom bots` command, end-to-end
tests and load generators use it). A bot keeps one action in flight: it acts
on a newer state once its previous action was applied (the state's `i` echoes
it) or rejected (an `error` echoes it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, cast

from attrs import define, field, frozen
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from vinom.client.failover import DEFAULT_POLICY, FailoverPolicy, LobbyPlayer, NoLobbyAvailable
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import Auth, LobbyAddress, MatchFound
from vinom.client.udp import ConnectFailedError
from vinom.games.interfaces import IBot, IGame
from vinom.match import NORMAL_QUEUE


@frozen
class BotReport:
    """How one bot's match went."""

    name: str
    player_id: str | None
    match_id: str | None
    outcome: str  # finished, aborted, error
    result: dict[str, Any] | None = None
    actions_sent: int = 0
    actions_rejected: int = 0
    error: str | None = None
    # Game sessions resumed (or matches rejoined) through `reconnect`.
    reconnects: int = 0
    # Times a lobby failed and the bot moved to the next address.
    lobby_changes: int = 0

    @property
    def won(self) -> bool:
        return bool(self.result and self.player_id in self.result.get("winners", ()))


@define(eq=False)
class BotDriver:
    """Feeds a session's newest states to an `IBot`, one action in flight."""

    session: GameSession
    bot: IBot
    think_time: float = 0.0
    clock: Any = None
    in_flight: int | None = None
    actions_sent: int = 0
    actions_rejected: int = 0
    _pending_call: Any = field(default=None, repr=False)

    def attach(self) -> None:
        self.session.on_state = self._on_state
        self.session.on_error = self._on_error
        self.session.on_phase = lambda message: self._maybe_act()
        self.session.on_welcome = self._on_welcome
        # A session already playing (a driver attached mid-match) is acted on now,
        # from its newest view, not at the next state, which may be long in coming
        # in a turn-based game whose turn is this player's.
        self._maybe_act()

    def _on_welcome(self, message: dict[str, Any]) -> None:
        # After a reconnection the action in flight may have been lost with the old session.
        self.in_flight = None

    def _on_state(self, state: dict[str, Any]) -> None:
        if self.in_flight is not None and (state.get("i") or 0) >= self.in_flight:
            self.in_flight = None
        self._maybe_act()

    def _on_error(self, message: dict[str, Any]) -> None:
        self.actions_rejected += 1
        if message.get("i") == self.in_flight:
            self.in_flight = None
            self._maybe_act()

    def _maybe_act(self) -> None:
        if self.in_flight is not None or self._pending_call is not None:
            return
        if self.session.phase != "playing" or self.session.view is None:
            return
        if self.think_time > 0 and self.clock is not None:
            self._pending_call = self.clock.callLater(self.think_time, self._act_now)
        else:
            self._act_now()

    def _act_now(self) -> None:
        self._pending_call = None
        view = self.session.view
        if self.session.phase != "playing" or view is None or not self.session.connected:
            return
        action = self.bot.choose_action(view)
        if action is None:
            return
        self.in_flight = self.session.send_action(action)
        self.actions_sent += 1

    def cancel(self) -> None:
        if self._pending_call is not None and self._pending_call.active():
            self._pending_call.cancel()
        self._pending_call = None


async def play_bot(
    reactor: Any,
    lobby: LobbyAddress | Sequence[LobbyAddress],
    game: IGame,
    name: str,
    *,
    rng: random.Random | None = None,
    think_time: float = 0.0,
    on_session: Callable[[GameSession], object] | None = None,
    start: int = 0,
    policy: FailoverPolicy = DEFAULT_POLICY,
    auth: Auth | None = None,
    queue: str = "normal",
) -> BotReport:
    """One bot: hello, queue for `game`, connect over UDP, play to the end, disconnect.

    `lobby` is one address or several (`start`: the index of the first to try); a
    lost lobby connection moves the bot to the next (`vinom.client.failover`). A lost
    game session is resumed through `reconnect`, and a match aborted for
    `players_missing` is followed by the next one from the place kept at the head of
    the queue: the report is of the last match. A first connect to the game host
    that fails is followed through `reconnect` too: the host may have died since
    `match_found`, and a match ended `host_crashed` keeps every one of its players a
    place, those not yet connected too. `auth`: the bot's credentials, for a
    server with authentication (docs/lobby.md, "Authentication"); `queue`: "normal" or
    "ranked" (where a server with authentication rates the match).
    """
    player = LobbyPlayer(reactor, lobby, name, start=start, policy=policy, auth=auth)
    rng = rng or random.Random()
    reconnects = 0
    try:
        found = await player.find_match(game.name, queue=queue)
        try:
            session = await connect_game(reactor, found)
        except ConnectFailedError as failed:
            try:
                found, session = await _rejoin(reactor, player, None, policy)
            except Exception as e:
                reason = f"{_describe(failed)}; {_describe(e)}"
                return _report(name, player, None, {"p": "error", "reason": reason}, [], 0)
            reconnects += 1
    except Exception as e:  # a bot reports what went wrong; it does not crash its runner
        return _report(name, player, None, {"p": "error", "reason": _describe(e)}, [], 0)
    drivers: list[BotDriver] = []
    try:
        while True:
            assert player.welcome is not None
            if not drivers or drivers[-1].session is not session:
                driver = BotDriver(session, game.make_bot(player.welcome.player_id, rng),
                                   think_time, reactor)  # fmt: skip
                driver.attach()
                drivers.append(driver)
                if on_session is not None:
                    on_session(session)
            final = await _play(session)
            drivers[-1].cancel()
            if not _worth_rejoining(final):
                break
            try:
                found, session = await _rejoin(reactor, player, session, policy)
            except Exception as e:
                ended = "session closed" if final["p"] == "closed" else str(final["p"])
                final = {"p": "error",
                         "reason": f"{ended}: {final.get('reason')}; {_describe(e)}"}  # fmt: skip
                break
            reconnects += 1
    finally:
        # Also when the bot is cancelled mid-match (a runner's deadline): its timer
        # stops and its port is released.
        if drivers:
            drivers[-1].cancel()
        await session.disconnect()
    return _report(name, player, found.game_id, final, drivers, reconnects)


def _report(
    name: str,
    player: LobbyPlayer,
    match_id: str | None,
    final: dict[str, Any],
    drivers: Sequence[BotDriver],
    reconnects: int,
) -> BotReport:
    return BotReport(
        name,
        player.welcome.player_id if player.welcome is not None else None,
        match_id,
        "error" if final["p"] == "closed" else str(final["p"]),
        result=final.get("result"),
        actions_sent=sum(d.actions_sent for d in drivers),
        actions_rejected=sum(d.actions_rejected for d in drivers),
        error=(f"session closed: {final['reason']}" if final["p"] == "closed"
               else final.get("reason")),
        reconnects=reconnects,
        lobby_changes=player.lobby_changes,
    )  # fmt: skip


# A match aborted for these reasons keeps its connected players (for host_crashed:
# all of them) a place at the head of the queue, claimed with `reconnect`
# (docs/lobby.md).
PLACE_KEPT_REASONS = ("players_missing", "host_crashed")


def _worth_rejoining(final: dict[str, Any]) -> bool:
    if final["p"] == "closed":
        return True
    return final["p"] == "aborted" and final.get("reason") in PLACE_KEPT_REASONS


async def _play(session: GameSession) -> dict[str, Any]:
    """The final phase of the match, or {"p": "closed", "reason": r} if the UDP session
    closed first (the host timed it out, shut down, or this client was away)."""
    ended: Deferred[dict[str, Any]] = Deferred()
    session.finished.addCallback(_fire, ended)
    session.on_closed = lambda closed: _fire({"p": "closed", "reason": closed["reason"]}, ended)
    if session.finished.called or not session.connected:
        _fire(cast("dict[str, Any]", session.finished.result) if session.finished.called
              else {"p": "closed", "reason": session.close_reason or "closed"}, ended)  # fmt: skip
    return await ended


async def _rejoin(
    reactor: Any, player: LobbyPlayer, session: GameSession | None, policy: FailoverPolicy
) -> tuple[MatchFound, GameSession]:
    """Back through the lobbies: the same match on the same `session` (a fresh token for
    the seat), or a new match after a place kept in the queue; `session` None: the
    player never connected to their match. A game host that turns the fresh token
    away (it has not noticed the old session ended) is tried again after a backoff,
    for at most `give_up_after`."""
    deadline = reactor.seconds() + policy.give_up_after
    failures = 0
    rng = random.Random()
    while True:
        found = await player.rejoin()
        same = (
            session is not None
            and not session.finished.called
            and session.welcome is not None
            and session.welcome.get("match") == found.game_id
        )
        try:
            if same:
                return found, await connect_game(reactor, found, session=session)
            return found, await connect_game(reactor, found)
        except ConnectFailedError:
            if reactor.seconds() >= deadline:
                raise
        await deferLater(reactor, policy.backoff.delay(failures, rng), lambda: None)
        failures += 1


def _describe(error: BaseException) -> str:
    if isinstance(error, NoLobbyAvailable):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _fire(value: dict[str, Any], d: Deferred[dict[str, Any]]) -> dict[str, Any]:
    if not d.called:
        d.callback(value)
    return value


# -- many bots at once (`vinom bots`) --------------------------------------------


def bot_line(report: BotReport) -> str:
    """One line per finished bot."""
    parts = [report.name, report.player_id or "-", report.match_id or "-", report.outcome]
    if report.outcome == "finished":
        winners = (report.result or {}).get("winners")
        parts.append("won" if report.won else "lost" if winners else "no winner")
    parts.append(f"actions {report.actions_sent}")
    if report.actions_rejected:
        parts.append(f"rejected {report.actions_rejected}")
    if report.reconnects:
        parts.append(f"reconnected {report.reconnects}")
    if report.lobby_changes:
        parts.append(f"lobby changes {report.lobby_changes}")
    if report.error and report.outcome != "finished":
        parts.append(f"({report.error})")
    return "  ".join(parts)


def summarize(game: str, reports: Sequence[BotReport], wall_s: float) -> dict[str, Any]:
    outcomes: dict[str, int] = {"finished": 0, "aborted": 0, "error": 0, "timeout": 0}
    for report in reports:
        outcomes[report.outcome] = outcomes.get(report.outcome, 0) + 1
    errors = sorted({r.error for r in reports if r.outcome in ("error", "timeout") and r.error})
    return {
        "game": game,
        "bots": len(reports),
        "matches": len({r.match_id for r in reports if r.match_id}),
        **outcomes,
        "wins": sum(1 for r in reports if r.won),
        "actions_sent": sum(r.actions_sent for r in reports),
        "actions_rejected": sum(r.actions_rejected for r in reports),
        "wall_s": round(wall_s, 3),
        "errors": errors[:10],
    }


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['game']}: {plural(summary['bots'], 'bot')} in "
        f"{plural(summary['matches'], 'match', 'matches')}, {summary['wall_s']:.2f} s",
        "  "
        + "  ".join(
            f"{key} {summary[key]}" for key in ("finished", "aborted", "error", "timeout")
        ),
        f"  wins {summary['wins']}  actions sent {summary['actions_sent']}, "
        f"rejected {summary['actions_rejected']}",
    ]
    lines += [f"  error: {text}" for text in summary["errors"]]
    return "\n".join(lines)


def run_bots(
    reactor: Any,
    lobby: LobbyAddress | Sequence[LobbyAddress],
    game: IGame,
    count: int,
    *,
    seed: int | None = None,
    think_time: float = 0.0,
    name_prefix: str = "bot",
    timeout: float = 0.0,
    on_report: Callable[[BotReport], object] | None = None,
    auths: Sequence[Auth | None] | None = None,
    queue: str = NORMAL_QUEUE,
) -> Deferred[list[BotReport]]:
    """Run `count` bots at once (named `name_prefix` and their number); fires with their
    reports in order. After `timeout` (if > 0) the bots still running are cancelled,
    reported `timeout`.

    Given several lobbies, bot i starts at the i-th (modulo their number) and each moves
    to the next when its lobby is lost; `auths`, one per bot: its credentials (None: a
    guest); `queue`: normal or ranked; `on_report` is told each report as its bot ends.
    """
    master = random.Random(seed)
    names = [f"{name_prefix}{i}" for i in range(count)]
    running: list[Deferred[BotReport]] = []
    for i, name in enumerate(names):
        d = Deferred.fromCoroutine(
            play_bot(
                reactor, lobby, game, name,
                rng=random.Random(master.random()), think_time=think_time, start=i,
                auth=None if auths is None else auths[i], queue=queue,
            )
        )
        d.addCallback(_report_ok, timeout)
        if on_report is not None:
            d.addCallback(_tell, on_report)
        running.append(d)
    timer = reactor.callLater(timeout, _cancel_all, running) if timeout > 0 else None

    def reports(results: list[tuple[bool, Any]]) -> list[BotReport]:
        if timer is not None and timer.active():
            timer.cancel()
        return [_failed_or(name, ok, value, timeout)
                for name, (ok, value) in zip(names, results, strict=True)]  # fmt: skip

    return DeferredList(running, consumeErrors=True).addCallback(reports)


def _tell(report: BotReport, on_report: Callable[[BotReport], object]) -> BotReport:
    on_report(report)
    return report


def _cancel_all(running: Sequence[Deferred[BotReport]]) -> None:
    for d in running:
        if not d.called:
            d.cancel()


def _report_ok(report: BotReport, timeout: float) -> BotReport:
    # play_bot reports a cancellation before its match as an error: call it what it is.
    if report.outcome == "error" and report.error and "CancelledError" in report.error:
        return BotReport(
            report.name, report.player_id, report.match_id, "timeout",
            error=f"no match within {timeout:g} s",
        )
    return report


def _failed_or(name: str, ok: bool, value: Any, timeout: float) -> BotReport:
    """A bot's report, or one made from how it failed."""
    if ok:
        report: BotReport = value
        return report
    failure: Failure = value
    if failure.check(CancelledError):
        return BotReport(name, None, None, "timeout", error=f"still playing after {timeout:g} s")
    error = failure.value
    return BotReport(name, None, None, "error", error=f"{type(error).__name__}: {error}")


def report_json(report: BotReport) -> dict[str, Any]:
    return {
        "name": report.name,
        "player_id": report.player_id,
        "match_id": report.match_id,
        "outcome": report.outcome,
        "won": report.won,
        "actions_sent": report.actions_sent,
        "actions_rejected": report.actions_rejected,
        "reconnects": report.reconnects,
        "lobby_changes": report.lobby_changes,
        "error": report.error,
    }
