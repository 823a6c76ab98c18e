"""One address tries to take every game port of a real server (#12): it gets at most
`--limit max-matches-per-ip`, and an honest pair from another address is placed at once.

The whole server of `twistd vinom` runs in this process on real sockets. The
attacker's players connect from 127.0.0.1, the honest pair from 127.0.0.2
(another loopback address, so another client address to the lobby's limits).
The attacker never connects over UDP: its matches would hold their ports until
the connect deadline, and players who connect and then only send keepalives
are ended by the games' idle rule (tests/hosting/test_hosting_core.py, IdlePlayerTests).
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from tests.test_integration_lobby import Frame, ScriptedPlayer, _abort


class OneAddressTakesThePortsTests(TestCase):
    timeout = 60

    async def connect(self, server: RunningServer, source: str, name: str) -> ScriptedPlayer:
        assert server.lobby.trust is not None
        with open(server.lobby.trust, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        endpoint = SSL4ClientEndpoint(
            reactor, "127.0.0.1", server.lobby.port, optionsForClientTLS("localhost", trust),
            bindAddress=(source, 0),
        )
        player = ScriptedPlayer(name, "tictactoe")
        await connectProtocol(endpoint, player)
        self.addCleanup(_abort, player)
        return player

    async def test_default_limits_leave_ports_for_everyone_else(self) -> None:
        # 20 ports; with the default limits one address may be in at most 16 matches,
        # counting each of its queued players as a match it may make.
        server = await start_server(self, ports=20)
        lobby = server.service("lobby")
        attackers = [await self.connect(server, "127.0.0.1", f"a{n}") for n in range(32)]
        await gatherResults([p.when(_answered) for p in attackers])

        def settled() -> bool:
            answers = sum(1 for p in attackers if p.of_type("match_found") or p.of_type("error"))
            return answers >= 31

        await until(settled)
        found = {f["game_id"] for p in attackers for f in p.of_type("match_found")}
        errors = [f["code"] for p in attackers for f in p.of_type("error")]
        waiting = [p for p in attackers if not p.of_type("match_found") and not p.of_type("error")]
        # 30 matched in 15 matches, one queued (a 16th match it may make), one refused.
        self.assertEqual((len(found), len(waiting), errors), (15, 1, ["rate_limited"]))
        self.assertEqual(lobby.pending_from("127.0.0.1"), 31)
        # Honest players from another address are placed at once: the first one with
        # the attacker's queued player (its 16th match, the most it can have), the
        # next two together; nobody waits for a server.
        honest = [await self.connect(server, "127.0.0.2", f"h{n}") for n in range(3)]
        placed = await gatherResults([p.when(_found) for p in honest])
        self.assertEqual(lobby.matches_from("127.0.0.1"), 16)
        self.assertEqual(placed[1]["game_id"], placed[2]["game_id"])
        for player in honest:
            self.assertNotIn("waiting_for_server", [f.get("status") for f in player.frames])
        self.assertEqual(server.hosting.running_games, 17)


def _answered(frame: Frame) -> bool:
    return frame["type"] in ("match_found", "queued", "error")


def _found(frame: Frame) -> bool:
    return frame["type"] == "match_found"
