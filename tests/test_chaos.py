"""The chaos scenario (`python -m benchmarks chaos`, issue #25): its report, and one short
fault end to end.

The analysis of the players' records is checked on records made up here
(each outcome, and when the cluster was whole again); the smoke run starts
the real thing (Redis, two lobbies, two hosts, the players), kills a lobby
with its waiters queued, and checks that the report is well formed and adds
up: it does not judge the outcome, which is what the suite measures.
"""

# slow: starts child processes

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from twisted.trial import unittest

from benchmarks.chaos import FAULTS, SENTINEL_MISSING, analyse, table
from tests.test_bench import ROOT, bench_env, run_bench

AT = 1000.0


def match(game_id: str, outcomes: dict[str, str], *, found: float = AT + 1, ghost: bool = False,
          connected: int = 2) -> dict[str, Any]:  # fmt: skip
    return {"game_id": game_id, "port": 1, "found_at": found, "roster": [], "ghost": ghost,
            "connected": connected, "outcomes": outcomes, "players": ["a", "b"],
            "ended_at": None}  # fmt: skip


def records(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "fault_at": AT,
        "ended_at": AT + 30,
        "players": [
            {"name": "a", "intervals": [], "open_since": None, "matches": 3},
            {"name": "b", "intervals": [], "open_since": None, "matches": 3},
        ],
        "matches": [],
        "running_at_fault": [],
        "probes": [],
        "probes_open": [],
        "requests": {"hello": 4, "queue": 4},
        "players_unanswered": 0,
        "unanswered": {},
        "errors": {},
    }
    result.update(changes)
    return result


class AnalyseTests(unittest.TestCase):
    def test_each_match_is_counted_once_by_what_its_players_saw(self) -> None:
        outcome = analyse(records(matches=[
            match("before", {"a": "finished", "b": "finished"}, found=AT - 10),
            match("running", {"a": "aborted:host_crashed", "b": "closed:timeout"}, found=AT - 2),
            match("fine", {"a": "finished", "b": "finished"}),
            match("ghost", {"a": "aborted:players_missing"}, ghost=True, connected=1),
            match("missing", {"a": "aborted:players_missing", "b": "aborted:players_missing"}),
            match("dead-host", {"a": "connect_failed:timeout", "b": "connect_failed:timeout"},
                  connected=0),
            match("playing", {"a": "finished"}),
        ], running_at_fault=["running"]), probe_bound=3.0)  # fmt: skip
        # The match that ended before the fault is not the fault's.
        self.assertEqual(outcome["matches"], 6)
        self.assertEqual(
            (outcome["finished"], outcome["matches_lost"], outcome["ghost_matches"],
             outcome["still_running"]),
            (1, 2, 2, 1),
        )  # fmt: skip
        self.assertEqual(outcome["running_at_fault"], 1)

    def test_whole_again_at_the_end_of_the_last_abnormal_interval_or_slow_probe(self) -> None:
        players = [
            {"name": "a", "intervals": [[AT - 5, AT - 4], [AT - 1, AT + 7]], "open_since": None,
             "matches": 2},
            {"name": "b", "intervals": [[AT + 2, AT + 4]], "open_since": None, "matches": 2},
        ]  # fmt: skip
        probes = [
            {"started": AT - 3, "ended": AT + 12, "took": 15.0, "ok": True},  # before the fault
            {"started": AT + 1, "ended": AT + 9.5, "took": 8.5, "ok": True},
            {"started": AT + 2, "ended": AT + 2.5, "took": 0.5, "ok": False},
            {"started": AT + 11, "ended": AT + 11.5, "took": 0.5, "ok": True},
        ]
        outcome = analyse(records(players=players, probes=probes), probe_bound=3.0)
        self.assertEqual(outcome["whole_s"], 9.5)
        self.assertEqual((outcome["probes"], outcome["probes_slow"]), (3, 2))
        self.assertEqual(outcome["anomalies_before_fault"], 1)
        self.assertEqual(analyse(records(), probe_bound=3.0)["whole_s"], 0.0)

    def test_not_whole_while_a_player_or_a_probe_is_still_stuck(self) -> None:
        stuck = [{"name": "a", "intervals": [], "open_since": AT + 1, "matches": 0}]
        outcome = analyse(records(players=stuck), probe_bound=3.0)
        self.assertIsNone(outcome["whole_s"])
        self.assertEqual(outcome["players_not_whole"], 1)
        waiting = analyse(records(probes_open=[{"started": AT + 20}]), probe_bound=3.0)
        self.assertIsNone(waiting["whole_s"])
        self.assertIn("> 30", table([{"fault": "host-kill", **outcome}]))

    def test_the_table_names_a_skipped_fault_and_why(self) -> None:
        text = table([{"fault": "redis-failover", "skipped": SENTINEL_MISSING}])
        self.assertIn("redis-failover", text)
        self.assertIn(SENTINEL_MISSING, text)


class ChaosCommandTests(unittest.TestCase):
    def test_an_unknown_fault_is_one_clear_line(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", "chaos", "--fault", "meteor"],
            capture_output=True, env=bench_env(), cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        self.assertEqual(done.returncode, 2)
        self.assertIn("--fault must be one of " + ", ".join(FAULTS), done.stderr.decode())

    def test_one_short_fault_end_to_end_reports_what_adds_up(self) -> None:
        steady, waiters = 4, 4
        code, result, stderr = run_bench(
            "chaos", "--fault", "lobby-kill", "--json", "--steady", str(steady),
            "--waiters", str(waiters), "--think", "0.1", "--warmup", "1", "--window", "12",
            "--settle", "3", "--probe-every", "1", "--seed", "3",
            timeout=100.0,
        )  # fmt: skip
        self.assertEqual(code, 0, stderr[-4000:])
        self.assertEqual((result["scenario"], result["fault"]), ("chaos", "lobby-kill"))
        self.assertIn("build", result)
        self.assertEqual(result["players"], steady + waiters)
        # Every match our players were told of since the fault has one outcome.
        self.assertEqual(
            result["finished"] + result["matches_lost"] + result["ghost_matches"]
            + result["still_running"],
            result["matches"],
        )  # fmt: skip
        # The steady players went on playing.
        self.assertGreater(result["finished"], 0)
        self.assertLessEqual(result["unanswered"], result["requests"])
        self.assertEqual(sum(result["unanswered_by_request"].values()), result["unanswered"])
        self.assertLessEqual(result["probes_slow"], result["probes"])
        self.assertGreater(result["probes"], 0)
        self.assertLessEqual(result["watched_s"], 12 + 1)
        whole = result["whole_s"]
        self.assertTrue(whole is None or 0 <= whole <= result["watched_s"], whole)
        if result["players_not_whole"]:
            self.assertIsNone(whole)
        for key in ("critical", "tracebacks", "running_at_fault", "anomalies_before_fault"):
            self.assertGreaterEqual(result[key], 0, key)
        print(f"\nchaos lobby-kill smoke: {json.dumps(result, sort_keys=True)}", file=sys.stderr)
