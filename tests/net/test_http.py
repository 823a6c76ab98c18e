"""The quiet HTTP client on the real reactor against a real HTTP server: answers come
back, and the requests write nothing to the log."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import readBody
from twisted.web.error import SchemeNotSupported

from tests.support.http import capture_log, health_site
from vinom.net.http import quiet_agent


class QuietAgentTests(TestCase):
    timeout = 20

    async def test_requests_are_answered_and_write_no_log_line(self) -> None:
        port = health_site(self)
        lines = capture_log(self)
        agent = quiet_agent(reactor, 5.0)
        for _ in range(5):
            response: Any = await agent.request(b"GET", f"http://127.0.0.1:{port}/health".encode())
            self.assertEqual((response.code, await readBody(response)), (200, b"ok\n"))
        self.assertEqual(lines, [])

    async def test_an_https_url_is_refused(self) -> None:
        with self.assertRaises(SchemeNotSupported):
            await quiet_agent(reactor).request(b"GET", b"https://127.0.0.1:1/")
