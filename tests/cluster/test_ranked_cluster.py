"""A real cluster rates every ranked match exactly once while one of its lobbies dies.

Two `twistd vinom lobby` processes and two `twistd vinom host` processes on a
real Redis share one real PostgreSQL account database (tests/support); the
lobbies sign players in with `--auth signed`. Bots, each with a token made as
docs/operations.md's example makes one, play rounds of ranked tictactoe through
both lobbies, and the first lobby is killed (SIGKILL) partway through: its bots
go on through the other. A match whose players all queued through the dead lobby
is followed by no living lobby; its end reaches the survivor through the ranked
results stream (vinom.cluster.ranked), as does any end the dead lobby read and
had not rated. Afterwards, read from the database as the lobbies left it: every
match a bot finished is in each of its players' histories exactly once, each
player's rating counts exactly the matches they finished, and the leaderboard
equals a replay of the history, match by match, with openskill itself (not
vinom's rating code).
"""

# slow: starts Redis, PostgreSQL and four twistd vinom processes

from __future__ import annotations

import collections
import os
import random
import sys
from functools import partial
from typing import Any

from openskill.models import PlackettLuce
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.server.test_ops import http_get, metric_value
from tests.support.doc_examples import python_example
from tests.support.ports import free_tcp_port
from tests.support.postgres_server import postgres_database
from tests.support.waiting import until
from vinom.accounts.interfaces import Identity
from vinom.accounts.records import HistoryEntry
from vinom.accounts.sql import open_store
from vinom.client.bots import BotReport, play_bot
from vinom.client.lobby import signed_auth
from vinom.cluster.ranked import CLAIM_AFTER

# 80 players, 5 rounds each: 200 ranked matches of two.
PLAYERS = 80
ROUNDS = 5
MATCHES = PLAYERS * ROUNDS // 2
# The first lobby is killed once this many matches have finished.
KILL_AFTER = MATCHES // 4
KEY = ("5e7a" * 16).encode()


class RankedClusterTests(ClusterTestCase):
    timeout = 300

    async def test_every_ranked_match_is_rated_once_while_a_lobby_dies(self) -> None:
        database = await postgres_database(self)
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(KEY + b"\n")
        signed = ("--auth", "signed", "--auth-secret-file", key_file, "--database", database,
                  # Ratings are what is checked here, not rating windows: anyone matches.
                  "--rating-window", "tictactoe=100000,0",
                  # Every bot's account is made from one address.
                  "--limit", f"new-accounts-per-hour={PLAYERS * 2}")  # fmt: skip
        for _ in "ab":
            await self.start("host", ports=PLAYERS // 2)
        doomed = await self.start("lobby", *signed)
        ops = free_tcp_port()
        survivor = await self.start("lobby", *signed, "--ops-port",
                                    f"tcp:{ops}:interface=127.0.0.1")  # fmt: skip
        lobbies = [self.lobby_address(doomed), self.lobby_address(survivor)]
        token = python_example()
        rng = random.Random(50)
        reports: list[BotReport] = []
        waits = [0]
        started = reactor.seconds()

        async def play(i: int, round_: int, seed: float) -> BotReport | None:
            """One round of bot i; None while its `queue` is answered `already_queued`:
            it saw its last match end before the lobby did (the host tells the lobbies
            once the room is gone), and asks again (docs/lobby.md)."""
            report = await play_bot(
                reactor, lobbies, GAME, f"bot{i}", rng=random.Random(seed + round_),
                start=i % 2, auth=signed_auth(token(KEY, f"player-{i}")), queue="ranked",
            )  # fmt: skip
            if "already_queued" in (report.error or ""):
                waits[0] += 1
                refused[i] = report
                return None
            return report

        refused: dict[int, BotReport] = {}

        async def player(i: int) -> None:
            seed = rng.random()
            for round_ in range(ROUNDS):
                try:
                    report = await until(partial(play, i, round_, seed),
                                         f"bot{i} to queue again", 15, every=0.2)  # fmt: skip
                except AssertionError:
                    report = refused[i]
                assert isinstance(report, BotReport)
                reports.append(report)
                if report.outcome != "finished":
                    return  # (the assertions below say which and why)

        playing = gatherResults([Deferred.fromCoroutine(player(i)) for i in range(PLAYERS)])

        def over() -> bool:
            # Every bot played its rounds; or one gave up, and its remaining partners
            # would wait for it for good: they are stopped and the checks below say why.
            failed = [r for r in reports if r.outcome != "finished"]
            return playing.called or bool(failed and reactor.seconds() - last[0] > 15)

        last = [reactor.seconds()]
        count = [0]

        def progressed() -> bool:
            if len(reports) != count[0]:
                count[0], last[0] = len(reports), reactor.seconds()
            return over()

        def finished_matches() -> bool:
            return len({r.match_id for r in reports if r.outcome == "finished"}) >= KILL_AFTER

        await until(finished_matches, "matches to finish before the kill", 120, every=0.05)
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed = len({r.match_id for r in reports})
        await until(progressed, "every bot to play its rounds", 150, every=0.1)
        if not playing.called:
            playing.cancel()
        await playing.addErrback(lambda _: None)
        elapsed = reactor.seconds() - started

        # Nothing lost: every round of every bot finished, each match had two players.
        problems = [r for r in reports if r.outcome != "finished"]
        self.assertEqual(problems[:5], [], f"{len(problems)} of {len(reports)} did not finish")
        self.assertEqual(len(reports), PLAYERS * ROUNDS)
        by_match = collections.Counter(r.match_id for r in reports)
        self.assertEqual(set(by_match.values()), {2})
        self.assertEqual(len(by_match), MATCHES)
        # Bots of the dead lobby went on through the other.
        self.assertGreater(sum(r.lobby_changes for r in reports), 0)

        store = await open_store(database, os.path.abspath(self.mktemp()), reactor)
        self.addCleanup(store.close)
        played: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for r in reports:
            assert r.player_id is not None and r.match_id is not None
            played[r.player_id][r.match_id] += 1
        accounts = {await self.account(store, f"player-{i}") for i in range(PLAYERS)}
        self.assertEqual(accounts, set(played))

        # Rated exactly once: each finished match once in each of its players' histories,
        # and each rating counts exactly the player's matches.
        histories: dict[str, list[HistoryEntry]] = {}

        async def unrated() -> list[str]:
            for account_id in sorted(played):
                histories[account_id] = await store.history(account_id, 50)
            rated = {h.match_id for history in histories.values() for h in history}
            return sorted(set(by_match) - rated)

        # Nothing lost: every match the bots finished is rated, an end the dead lobby
        # read and did not rate once the survivor claims it (`CLAIM_AFTER`).
        lost: list[str] = []

        async def all_rated() -> bool:
            lost[:] = await unrated()
            return not lost

        try:
            await until(all_rated, "every finished match rated", CLAIM_AFTER * 3, every=0.5)
        except AssertionError:
            self.fail(f"{len(lost)} of {MATCHES} finished matches not rated: {lost[:5]}")
        # The operator sees the same: no end waits in the ranked results stream, none
        # pending on the dead lobby, none lost.
        async def stream_empty() -> bool:
            _, page = await http_get(f"http://127.0.0.1:{ops}/metrics")
            return all(metric_value(page, f"vinom_ranked_results_{name}") == 0
                       for name in ("backlog", "pending", "lost_total"))  # fmt: skip

        await until(stream_empty, "an empty ranked results stream on /metrics", 30, every=0.5)
        # Read again, every match now rated: `unrated` read one account after another,
        # and a match rated between two reads was in one history and not yet the other's
        # (run 65; a match's rating is one transaction for all its players).
        for account_id in sorted(played):
            histories[account_id] = await store.history(account_id, 50)
        for account_id, history in sorted(histories.items()):
            self.assertEqual(collections.Counter(h.match_id for h in history),
                             played[account_id], account_id)  # fmt: skip
        board = await store.top(GAME.name, "ranked", 100, reactor.seconds())
        self.assertEqual(len(board), PLAYERS)
        for row in board:
            self.assertEqual(row.rating.matches, ROUNDS, row)

        # The leaderboard equals a replay of the history from new ratings.
        replayed = replay(histories)
        expected = sorted(replayed.items(), key=lambda kv: (-(kv[1][0] - 3 * kv[1][1]), kv[0]))
        self.assertEqual([row.account_id for row in board], [a for a, _ in expected])
        for row in board:
            mu, sigma = replayed[row.account_id]
            self.assertAlmostEqual(row.rating.mu, mu, places=6)
            self.assertAlmostEqual(row.rating.sigma, sigma, places=6)
        print(f"\n{MATCHES} ranked matches of {PLAYERS} players through two lobbies, the "
              f"first killed after {killed} matches: {elapsed:.1f} s ({waits[0]} queue "
              f"requests answered already_queued)", file=sys.stderr)  # fmt: skip

    async def account(self, store: Any, subject: str) -> str:
        account = await store.account_for(Identity("signed", subject), "x", reactor.seconds())
        return str(account.account_id)


def replay(histories: dict[str, list[HistoryEntry]]) -> dict[str, tuple[float, float]]:
    """Every player's (mu, sigma) from openskill's Plackett-Luce on vinom's scale (mu
    1500, sigma 500, beta 250, tau 5: docs/accounts.md), rating each match of the
    histories once, each after its players' earlier matches (a player's rating before a
    match counts the matches that came before it)."""
    model = PlackettLuce(mu=1500.0, sigma=500.0, beta=250.0, tau=5.0)
    matches: dict[str, dict[str, HistoryEntry]] = collections.defaultdict(dict)
    for account_id, history in histories.items():
        for entry in history:
            matches[entry.match_id][account_id] = entry
    ratings = {account_id: model.rating() for account_id in histories}
    counts = collections.Counter[str]()
    pending = dict(matches)
    while pending:
        ready = [
            m for m, seats in pending.items()
            if all(e.change.before.matches == counts[a] for a, e in seats.items())
        ]  # fmt: skip
        assert ready, f"no match can come next: {sorted(pending)[:3]}"
        twice = collections.Counter(a for m in ready for a in pending[m])
        assert max(twice.values()) == 1, f"two matches rated from one rating: {twice}"
        for match_id in sorted(ready):
            seats = pending.pop(match_id)
            players = sorted(seats)
            rated = model.rate([[ratings[p]] for p in players],
                               ranks=[float(seats[p].place) for p in players])  # fmt: skip
            for p, (new,) in zip(players, rated, strict=True):
                ratings[p] = new
                counts[p] += 1
    return {p: (float(r.mu), float(r.sigma)) for p, r in ratings.items()}
