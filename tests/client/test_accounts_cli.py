"""`vinom accounts` as an operator runs it: a child process on the database a
server's store uses (SQLite in its data directory, and PostgreSQL), what it
prints, and what the server's store then sees."""

# slow: runs `vinom accounts` as a child process, and starts PostgreSQL

from __future__ import annotations

import json
import os
import sys
import time

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.support.postgres_server import postgres_database
from tests.support.servers import ROOT
from vinom.accounts.interfaces import Identity
from vinom.accounts.records import RankedResult
from vinom.accounts.schema import LATEST, MIGRATIONS
from vinom.accounts.sql import SQLITE_FILE, SqlAccountStore, open_store

RUN_CLI = "import sys; from vinom.cli import main; sys.exit(main())"


class AccountsCommandTests(TestCase):
    timeout = 120

    async def server_store(self, database: str | None = None) -> SqlAccountStore:
        """The store a server keeps open on its data directory's database."""
        self.data_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.data_dir)
        store = await open_store(database, self.data_dir)
        self.addCleanup(store.close)
        return store

    async def vinom(self, *args: str) -> tuple[str, str, int]:
        """`vinom accounts ARGS` in a child process, in the server's working directory."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_CLI, "accounts", *args], env=env,
            path=os.path.dirname(self.data_dir),
        )  # fmt: skip
        return out.decode(), err.decode(), code

    async def test_an_operator_shows_bans_unbans_and_links_an_account(self) -> None:
        store = await self.server_store()
        ann = await store.account_for(Identity("jwt", "ann-sub"), "Ann", 1_700_000_000.0)
        where = ["--data-dir", os.path.basename(self.data_dir)]

        out, err, code = await self.vinom("show", ann.account_id, *where)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"account {ann.account_id}\n  name:       Ann\n", out)
        self.assertIn("  created:    2023-11-14T22:13:20Z\n", out)
        self.assertIn("  identities: jwt:ann-sub\n  banned:     no\n", out)
        self.assertIn("  ratings:    none\n", out)

        # Ann wins a ranked match against Bob: her rating there, as players are shown it.
        bob = await store.account_for(Identity("jwt", "bob-sub"), "Bob", 1_700_000_000.0)
        result = RankedResult("m-1", "tictactoe", "ranked", ((ann.account_id,),
                                                             (bob.account_id,)), (1, 2))
        after = (await store.record_match(result, 1_700_000_100.0))[ann.account_id].after
        out, err, code = await self.vinom("show", ann.account_id, *where)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"  ratings:    tictactoe ranked: {after.shown:.2f} (mu {after.mu:.2f}, "
                      f"sigma {after.sigma:.2f}), 1 match: 1 won, 0 lost, 0 drawn\n", out)
        out, err, code = await self.vinom("show", "jwt:bob-sub", "--json", *where)
        lost = (await store.ratings_of([bob.account_id], "tictactoe", "ranked"))[bob.account_id]
        self.assertEqual(json.loads(out)["ratings"], [{
            "game": "tictactoe", "queue": "ranked", "rating": round(lost.shown, 2),
            "mu": round(lost.mu, 2), "sigma": round(lost.sigma, 2), "matches": 1, "wins": 0,
            "losses": 1, "draws": 0}])  # fmt: skip

        out, err, code = await self.vinom("ban", "jwt:ann-sub", "--reason", "aimbot",
                                          "--duration", "7d", *where)  # fmt: skip
        self.assertEqual((code, err), (0, ""), out)
        # The server's own store sees the ban at once (its next hello is refused).
        banned = await store.get(ann.account_id)
        assert banned is not None and banned.ban is not None
        self.assertEqual(banned.ban.reason, "aimbot")
        assert banned.ban.until is not None
        self.assertLess(abs(banned.ban.until - (time.time() + 7 * 86400)), 60)
        self.assertIn("  banned:     aimbot (until ", out)

        out, err, code = await self.vinom("unban", ann.account_id, "--json", *where)
        self.assertEqual((code, err), (0, ""))
        shown = json.loads(out)
        self.assertEqual((shown["account_id"], shown["banned"]), (ann.account_id, None))
        self.assertIsNone((await store.get(ann.account_id)).ban)  # type: ignore[union-attr]

        out, err, code = await self.vinom("link", ann.account_id, "device:phone-000001", *where)
        self.assertEqual((code, err), (0, ""))
        # The player signs in with the linked identity and is the same player.
        by_device = await store.account_for(Identity("device", "phone-000001"), "A", 2e9)
        self.assertEqual(by_device.account_id, ann.account_id)

        out, err, code = await self.vinom("unlink", ann.account_id, "jwt:ann-sub", *where)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("  identities: device:phone-000001\n", out)

    async def test_refusals_are_one_line(self) -> None:
        store = await self.server_store()
        ann = await store.account_for(Identity("jwt", "ann"), "Ann", 1.0)
        where = ["--data-dir", os.path.basename(self.data_dir)]
        cases = [
            (("show", "a-0000000000000000"), 1, "vinom: no account a-0000000000000000"),
            (("unlink", ann.account_id, "jwt:ann"), 1, f"vinom: {ann.account_id} would have no "
             "identity left to sign in with"),
            # Usage mistakes exit 2, as docs/accounts.md says, with nothing done.
            (("ban", ann.account_id, "--reason", "x", "--duration", "soon"), 2,
             "vinom: a duration is a positive number with s, m, h or d: 'soon'"),
            (("ban", ann.account_id, "--reason", "x", "--duration", "3x"), 2,
             "vinom: a duration is a positive number with s, m, h or d: '3x'"),
            (("ban", ann.account_id, "--reason", "x", "--duration", "0d"), 2,
             "vinom: a duration is"),
            (("link", ann.account_id, "nocolon"), 2, "vinom: an identity is PROVIDER:SUBJECT"),
            (("unlink", ann.account_id, ":ann"), 2, "vinom: an identity is PROVIDER:SUBJECT"),
            (("show", "ann"), 2, "vinom: an identity is PROVIDER:SUBJECT"),
            (("show",), 2, "vinom: usage: vinom accounts show ACCOUNT"),
            (("link", ann.account_id), 2, "vinom: usage: vinom accounts link ACCOUNT"),
            (("show", ann.account_id, "--colour"), 2, "vinom: option --colour not recognized"),
            (("ban", ann.account_id), 2, "vinom: a ban needs --reason"),
            (("show", ann.account_id, "--database", "mysql://db/game"), 2,
             "vinom: --database 'mysql://db/game': a postgresql:// URL or a SQLite file"),
        ]  # fmt: skip
        cases = [(args + tuple(where), status, line) for args, status, line in cases]
        cases.append((("show", ann.account_id, "--data-dir", "nowhere"), 1,
                      "vinom: no account database at nowhere/accounts.sqlite3"))  # fmt: skip
        for args, status, line in cases:
            out, err, code = await self.vinom(*args)
            self.assertEqual(code, status, (args, out, err))
            self.assertTrue(err.startswith(line), (args, err))
            self.assertEqual(err.count("\n"), 1, (args, err))
        self.assertIsNone((await store.get(ann.account_id)).ban)  # type: ignore[union-attr]

    async def test_a_database_newer_than_the_command_is_refused_in_one_line(self) -> None:
        newer = [*MIGRATIONS, ("CREATE TABLE later_one (x TEXT)",)]
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        store = await open_store(None, data_dir, migrations=newer)
        store.close()
        self.data_dir = data_dir
        _out, err, code = await self.vinom("show", "a-0000000000000000", "--database",
                                          os.path.join(data_dir, SQLITE_FILE))  # fmt: skip
        self.assertEqual(code, 1)
        self.assertEqual(err, f"vinom: the account database is at schema version {LATEST + 1}, "
                         f"newer than this vinom's {LATEST}: run a vinom at least as new as "
                         f"the one that migrated it\n")  # fmt: skip

    async def test_the_same_commands_on_postgresql(self) -> None:
        url = await postgres_database(self)
        store = await self.server_store(url)
        ann = await store.account_for(Identity("jwt", "ann"), "Ann", 1.0)
        out, err, code = await self.vinom("ban", "jwt:ann", "--reason", "smurfing",
                                          "--database", url)  # fmt: skip
        self.assertEqual((code, err), (0, ""))
        self.assertIn("  banned:     smurfing (until never)\n", out)
        banned = await store.get(ann.account_id)
        assert banned is not None
        self.assertEqual(banned.banned_at(1e12), banned.ban)
        self.assertIsNotNone(banned.ban)
