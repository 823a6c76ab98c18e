"""Guessing join codes from one address, as an attacker does, with a real lobby client
(vinom.client.lobby, TLS on 127.0.0.1) against a whole server of `twistd vinom`
running in this process: `spectate` by `code` is counted with `party_join`, one
count of every guess (docs/lobby.md, Limits), so that neither request, nor both
in turn, guesses faster than `--limit queue-rate` after a burst of `--limit queue-burst`.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.support.servers import start_server
from vinom.client.lobby import LobbyClient, connect_lobby
from vinom.errors import LobbyError

BURST = 8


class CodeGuessingTests(TestCase):
    async def guesser(self) -> LobbyClient:
        server = await start_server(self, "--limit", f"queue-burst={BURST}",
                                    "--limit", "queue-rate=0.01")  # fmt: skip
        where = server.lobby
        lobby = await connect_lobby(reactor, where.host, where.port, trust=where.trust)
        self.addCleanup(lobby.close)
        await lobby.hello("mallory")
        return lobby

    async def code_of(self, lobby: LobbyClient, guess: str) -> str:
        try:
            await lobby.spectate(code=guess)
        except LobbyError as e:
            return e.code
        return "spectating"

    async def test_spectate_guesses_past_the_burst_are_rate_limited(self) -> None:
        lobby = await self.guesser()
        answers = [await self.code_of(lobby, f"GUESS{n % 10}") for n in range(BURST + 3)]
        self.assertEqual(answers, BURST * ["no_active_match"] + 3 * ["rate_limited"])

    async def test_party_join_and_spectate_guesses_share_one_count(self) -> None:
        lobby = await self.guesser()
        for n in range(BURST // 2):
            reply = lobby.protocol.request({"type": "party_join", "code": f"GUESS{n}"})
            with self.assertRaises(LobbyError) as refused:
                await reply
            self.assertEqual(refused.exception.code, "unknown_party")
        answers = [await self.code_of(lobby, f"GUESS{n}") for n in range(BURST // 2 + 1)]
        self.assertEqual(answers, BURST // 2 * ["no_active_match"] + ["rate_limited"])
        with self.assertRaises(LobbyError) as refused:
            await lobby.protocol.request({"type": "party_join", "code": "GUESSX"})
        self.assertEqual(refused.exception.code, "rate_limited")
