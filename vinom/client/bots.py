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
from typing import Any

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, DeferredList

from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import LobbyClient, connect_lobby
from vinom.games.interfaces import IBot, IGame


@frozen
class LobbyAddress:
    """Where a lobby listens, and the certificate to trust (None: the platform's CAs)."""

    host: str
    port: int
    trust: str | None = None


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
    lobby: LobbyAddress,
    game: IGame,
    name: str,
    *,
    rng: random.Random | None = None,
    think_time: float = 0.0,
    on_session: Callable[[GameSession], object] | None = None,
) -> BotReport:
    """One bot: hello, queue for `game`, connect over UDP, play to the end, disconnect."""
    player_id: str | None = None
    match_id: str | None = None
    client: LobbyClient | None = None
    try:
        client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        welcome = await client.hello(name)
        player_id = welcome.player_id
        found = await client.queue(game.name)
        match_id = found.game_id
        session = await connect_game(reactor, found)
    except Exception as e:  # a bot reports what went wrong; it does not crash its runner
        return BotReport(name, player_id, match_id, "error", error=f"{type(e).__name__}: {e}")
    finally:
        # The lobby closes the connection after match_found; on any other way out
        # (an error, a cancelled bot) close it ourselves.
        if client is not None and not client.protocol.closed.called:
            client.close()
    driver = BotDriver(session, game.make_bot(welcome.player_id, rng or random.Random()),
                       think_time, reactor)
    driver.attach()
    if on_session is not None:
        on_session(session)
    # The match ends with a final phase; a session that closes first (the host
    # timed it out, or shut down) ends the bot's game too.
    ended: Deferred[dict[str, Any]] = Deferred()
    session.finished.addCallback(_fire, ended)
    session.on_closed = lambda closed: _fire(
        {"p": "error", "reason": f"session closed: {closed['reason']}"}, ended
    )
    final = await ended
    driver.cancel()
    await session.disconnect()
    return BotReport(
        name,
        player_id,
        match_id,
        str(final["p"]),
        result=final.get("result"),
        actions_sent=driver.actions_sent,
        actions_rejected=driver.actions_rejected,
        error=final.get("reason"),
    )


def _fire(value: dict[str, Any], d: Deferred[dict[str, Any]]) -> dict[str, Any]:
    if not d.called:
        d.callback(value)
    return value


def run_bots(
    reactor: Any,
    lobby: LobbyAddress,
    game: IGame,
    count: int,
    *,
    seed: int | None = None,
    think_time: float = 0.0,
    name_prefix: str = "bot",
) -> Deferred[list[BotReport]]:
    """Run `count` bots at once; fires with their reports in order."""
    master = random.Random(seed)
    bots = [
        Deferred.fromCoroutine(
            play_bot(reactor, lobby, game, f"{name_prefix}{i}",
                     rng=random.Random(master.random()), think_time=think_time)
        )
        for i in range(count)
    ]
    d = DeferredList(bots, consumeErrors=True)
    return d.addCallback(_reports)


def _reports(results: Sequence[tuple[bool, Any]]) -> list[BotReport]:
    reports = []
    for i, (ok, value) in enumerate(results):
        if ok:
            reports.append(value)
        else:
            reports.append(BotReport(f"bot{i}", None, None, "error", error=str(value.value)))
    return reports
