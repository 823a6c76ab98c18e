"""Hidden information stays hidden: a game written from docs/games.md with a secret per player.

Rock-paper-scissors, written only with the public `vinom.games` API and
installed as a Twisted plugin (a `twisted/plugins/` module), like a
third-party game. It leaves `shared_view` out, so each player must get their
own view: two real clients play it through a real server (TLS lobby, UDP
game sessions), and each sees its own throw and never the other's until both
have thrown.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

import twisted.plugins
from tests.support.servers import start_server
from tests.support.waiting import until
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby

PLUGIN = '''
"""Rock-paper-scissors: each player throws in secret; both throws show once both are in."""

import random
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve, frozen

from vinom.games import Game, IllegalAction, Outcome, Seat

BEATS = {"rock": "scissors", "paper": "rock", "scissors": "paper"}


@frozen
class RpsState:
    players: tuple[str, ...]
    throws: tuple[str | None, ...] = (None, None)
    scores: tuple[int, ...] = (0, 0)
    left: tuple[bool, ...] = (False, False)
    winners: tuple[str, ...] = ()
    finished: bool = False
    reason: str = ""


class RpsGame(Game[RpsState]):
    name = "rps-hidden-test"
    description = "Rock-paper-scissors (a test game with a secret per player)"

    def create(
        self, seats: Sequence[Seat], options: Mapping[str, Any], rng: random.Random
    ) -> RpsState:
        return RpsState(tuple(seat.player_id for seat in seats))

    def on_throw(
        self, state: RpsState, seat: Seat, action: Mapping[str, Any], rng: random.Random
    ) -> Outcome:
        throw = action["throw"]
        if throw not in BEATS or state.finished:
            raise IllegalAction("illegal_move", "throw rock, paper or scissors")
        if state.throws[seat.index] is not None:
            raise IllegalAction("illegal_move", "you have thrown already")
        throws = tuple(throw if i == seat.index else t for i, t in enumerate(state.throws))
        state = evolve(state, throws=throws)
        if None not in throws:
            a, b = throws
            winners = () if a == b else (state.players[0 if BEATS[a] == b else 1],)
            state = evolve(state, winners=winners, finished=True, reason="thrown")
        return Outcome(state)

    def leave(self, state: RpsState, seat: Seat) -> Outcome:
        if state.finished:
            return Outcome(state)
        left = tuple(gone or i == seat.index for i, gone in enumerate(state.left))
        other = state.players[1 - seat.index]
        ended = evolve(state, left=left, winners=(other,), finished=True, reason="opponent_left")
        return Outcome(ended)

    def view(self, state: RpsState, player_id: str | None) -> Mapping[str, Any]:
        mine = state.throws[state.players.index(player_id)] if player_id in state.players else None
        return {
            "me": player_id,
            "mine": mine,
            "thrown": [p for p, t in zip(state.players, state.throws) if t is not None],
            # Every throw, but only once the round is over.
            "throws": dict(zip(state.players, state.throws)) if state.finished else None,
            "finished": state.finished,
        }


rps = RpsGame()
'''


class HiddenInformationTests(TestCase):
    timeout = 30

    def install_plugin(self) -> None:
        """Put the game's plugin module where `getPlugins` looks, as `pip install` would."""
        root = Path(self.mktemp()).resolve() / "twisted" / "plugins"
        root.mkdir(parents=True)
        (root / "rps_hidden_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
        paths = twisted.plugins.__path__
        paths.append(str(root))
        self.addCleanup(paths.remove, str(root))

    async def test_each_player_sees_only_their_own_throw(self) -> None:
        self.install_plugin()
        server = await start_server(self, ports=2)
        sessions: dict[str, GameSession] = {}
        seen: dict[str, list[dict[str, Any]]] = {}
        ids: dict[str, str] = {}

        async def join(name: str) -> None:
            lobby = await connect_lobby(
                reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust
            )
            self.addCleanup(lobby.close)
            ids[name] = (await lobby.hello(name)).player_id
            found = await lobby.queue("rps-hidden-test")
            session = await connect_game(reactor, found)
            self.addCleanup(session.disconnect)
            seen[name] = []
            session.on_state = lambda message: seen[name].append(message["s"])
            sessions[name] = session

        ann, bob = "ann", "bob"
        # Both queue at once; the matchmaker pairs them.
        await gatherResults([Deferred.fromCoroutine(join(ann)), Deferred.fromCoroutine(join(bob))])
        await until(lambda: all(s.phase == "playing" and s.view for s in sessions.values()))

        sessions[ann].send_action({"throw": "rock"})
        # Bob learns that Ann has thrown, and never what.
        await until(lambda: ids[ann] in (sessions[bob].view or {}).get("thrown", []))
        await until(lambda: (sessions[ann].view or {}).get("mine") == "rock")
        sessions[bob].send_action({"throw": "paper"})
        await sessions[ann].finished
        await sessions[bob].finished
        await until(lambda: all((s.view or {}).get("finished") for s in sessions.values()))

        for name, views in seen.items():
            self.assertTrue(views)
            for view in views:
                self.assertEqual(view["me"], ids[name], f"{name} was sent another player's view")
        # Until the end, each saw its own throw and never the other's.
        for view in seen[bob]:
            if not view["finished"]:
                self.assertIn(view["mine"], (None, "paper"))
        for view in seen[ann]:
            if not view["finished"]:
                self.assertIn(view["mine"], (None, "rock"))
        final = sessions[bob].view
        assert final is not None
        self.assertEqual(final["throws"], {ids[ann]: "rock", ids[bob]: "paper"})
        self.assertEqual(sessions[bob].result, {"winners": [ids[bob]], "reason": "thrown",
                                                "scores": {ids[ann]: 0, ids[bob]: 0}})

