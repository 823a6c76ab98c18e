"""Reconnection secrets stay secret: never in a log line, and ids cannot be probed.

`SecretsInLogsTests` runs a whole server on a real Redis (tests/support/redis_server.py)
through the error paths that log a request: Redis stopped with SIGSTOP while
a `reconnect` and a `hello` wait on it (`unavailable`, logged at WARN), and a
player record made unreadable in Redis (`internal_error`, logged at CRITICAL
with its traceback). Every log event of the run, formatted and as its raw
fields, is searched for the secrets the lobby handed out.

`VerifySecretTests` checks through `verify_secret`'s public `compare`
parameter that a known and an unknown player id cost the same work: one
constant-time comparison of two SHA-256 digests each (a timing measurement
would be flaky; the structure is what makes the times equal).
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import hmac
import os
import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.lobby import said
from tests.lobby.test_lobby_contract import connect_raw, leave_before_the_end, redis_command
from tests.support.lobby_players import connect_player
from tests.support.redis_server import start_redis
from tests.support.servers import start_server
from vinom.client.lobby import Welcome
from vinom.identity import UNKNOWN_PLAYER_HASH, hash_secret, new_secret, verify_secret
from vinom.lobby.request_types import Reconnect


def event_text(event: dict[str, Any]) -> str:
    """Everything a log observer could write of one event."""
    parts = [formatEvent(event), repr(event)]
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        parts.append(failure.getTraceback())
    return "\n".join(parts)


class SecretsInLogsTests(TestCase):
    timeout = 60

    async def test_no_log_line_of_an_error_path_holds_a_secret(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        redis = await start_redis(self)
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        server = await start_server(
            self, "--redis", redis.url, "--token-key-file", key_file, "--games", "tictactoe",
            ports=2,
        )  # fmt: skip
        ann = await connect_player(self, server.lobby, "Ann")
        bob = await connect_player(self, server.lobby, "Bob")
        secrets = [ann.frames[0]["secret"], bob.frames[0]["secret"]]
        again = said({"type": "reconnect", "player_id": ann.player_id, "secret": secrets[0]})

        # Redis slow (stopped): a reconnect and a hello wait on it and are answered
        # `unavailable`; the lobby logs the request at WARN.
        waiting = [await connect_raw(self, server.lobby) for _ in range(2)]
        redis.transport.signalProcess(signal.SIGSTOP)
        try:
            answers = [waiting[0].request(again),
                       waiting[1].request({"type": "hello", "name": "Cat"})]  # fmt: skip
            for answer in answers:
                self.assertEqual((await answer).get("code"), "unavailable")
        finally:
            redis.transport.signalProcess(signal.SIGCONT)

        # An internal error: Ann's record is unreadable, her reconnect fails and the
        # lobby logs the request with a traceback (CRITICAL).
        await redis_command(redis.port, "SET", f"vinom:player:{ann.player_id}", "{not json")
        broken = await connect_raw(self, server.lobby)
        self.assertEqual((await broken.request(again)).get("code"), "internal_error")
        [failure] = self.flushLoggedErrors(ValueError)
        self.assertIn("unreadable player record", str(failure.value))
        # The pools are back: a wrong secret is refused as ever.
        wrong = await connect_raw(self, server.lobby)
        refused = await wrong.request({**again, "player_id": bob.player_id})
        self.assertEqual(refused.get("code"), "bad_secret")

        await redis_command(redis.port, "DEL", f"vinom:player:{ann.player_id}")
        await leave_before_the_end(redis.port, ann, bob, *waiting, broken, wrong)
        await deferLater(reactor, 0, lambda: None)
        logged = [event_text(event) for event in events]
        # The reconnect was logged at both levels, so a secret in it would be found.
        levels = {event["log_level"].name for event, text in zip(events, logged, strict=True)
                  if "Reconnect(" in text}  # fmt: skip
        self.assertTrue({"warn", "critical"} <= levels, levels)
        for text in logged:
            for secret in secrets:
                self.assertNotIn(secret, text)

    def test_a_reconnect_request_hides_its_secret(self) -> None:
        secret = new_secret()
        request = Reconnect(1, "p-0123456789abcdef", secret)
        self.assertNotIn(secret, repr(request))
        self.assertNotIn(secret, str(request))
        self.assertIn("p-0123456789abcdef", repr(request))
        # The client library's answer to hello too.
        welcome = Welcome("p-0123456789abcdef", "Ann", secret)
        self.assertNotIn(secret, repr(welcome))
        self.assertEqual(welcome.secret, secret)


class VerifySecretTests(SynchronousTestCase):
    def test_known_and_unknown_ids_make_the_same_constant_time_comparison(self) -> None:
        compared: list[tuple[str, str]] = []

        def counting(a: str, b: str) -> bool:
            compared.append((a, b))
            return hmac.compare_digest(a, b)

        secret = new_secret()
        known = hash_secret(secret)
        self.assertFalse(verify_secret("a wrong secret", known, compare=counting))
        self.assertFalse(verify_secret("a wrong secret", None, compare=counting))
        # An unknown id is refused whatever the secret, after the same comparison.
        self.assertFalse(verify_secret(secret, None, compare=counting))
        self.assertTrue(verify_secret(secret, known, compare=counting))
        self.assertEqual(len(compared), 4)
        # Each one: the presented secret's digest against a stored (or the dummy) one,
        # two 64-digit strings.
        self.assertEqual({(len(a), len(b)) for a, b in compared}, {(64, 64)})
        self.assertEqual([b for _, b in compared],
                         [known, UNKNOWN_PLAYER_HASH, UNKNOWN_PLAYER_HASH, known])  # fmt: skip
        self.assertEqual(compared[0][0], compared[1][0])

    def test_the_default_comparison_tells_right_from_wrong(self) -> None:
        secret = new_secret()
        self.assertTrue(verify_secret(secret, hash_secret(secret)))
        self.assertFalse(verify_secret(secret + "x", hash_secret(secret)))
        # A lone surrogate (valid JSON) hashes and fails to match; it does not raise.
        self.assertFalse(verify_secret("\ud800", hash_secret(secret)))
        self.assertFalse(verify_secret("\ud800", None))
