"""The match records a real server writes are its owner's only: a record holds its
match's seed and every player's input. Files 0600 in a record directory the server
makes 0700; a directory the operator made looser is one warning line at start,
saying how to tighten it (docs/operations.md, "Match records").

A whole server of `twistd vinom` runs in this process on real sockets; two bots
play a match to its end through its lobby.
"""

from __future__ import annotations

import os
import random
import stat

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.support.servers import start_server
from vinom.client.bots import play_bot
from vinom.games.registry import GameRegistry


class RecordModesTests(TestCase):
    async def play_a_match(self, *args: str) -> str:
        """A match played to its end on a server with `args`; its data directory."""
        server = await start_server(self, *args, ports=2)
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(reactor, server.lobby, tictactoe, f"bot{n}",
                                            rng=random.Random(n)))
            for n in range(2)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        return server.data_dir

    def modes(self, directory: str) -> tuple[int, list[int]]:
        files = [os.path.join(directory, name) for name in os.listdir(directory)]
        self.assertTrue(files)
        return (stat.S_IMODE(os.stat(directory).st_mode),
                [stat.S_IMODE(os.stat(path).st_mode) for path in files])  # fmt: skip

    async def test_records_are_written_0600_in_a_directory_made_0700(self) -> None:
        data_dir = await self.play_a_match()
        directory, files = self.modes(os.path.join(data_dir, "records"))
        self.assertEqual(oct(directory), oct(0o700))
        self.assertEqual({oct(m) for m in files}, {oct(0o600)})

    async def test_a_looser_record_directory_is_one_warning_line_at_start(self) -> None:
        lines: list[str] = []
        observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        records = os.path.abspath(self.mktemp())
        os.makedirs(records)
        os.chmod(records, 0o755)
        await self.play_a_match("--record-dir", records)
        said = [line for line in lines if "--record-dir" in line]
        self.assertEqual(said, [
            f"vinom: --record-dir {records} can be read by others (mode 755); "
            f"make it private: chmod 700 {records}"
        ])  # fmt: skip
        # The operator's directory is left as they made it; the files are private.
        directory, files = self.modes(records)
        self.assertEqual(oct(directory), oct(0o755))
        self.assertEqual({oct(m) for m in files}, {oct(0o600)})
