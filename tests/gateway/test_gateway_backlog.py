"""`twistd vinom gateway` as an operator starts it: its public listener queues as many
connections as the kernel lets a listener queue (a backlog of 1024, capped by
somaxconn), read from the kernel with `ss`."""

# slow: starts twistd vinom gateway (a child process)

from __future__ import annotations

import json
import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, TestCase

from tests.support.ports import free_tcp_port
from tests.support.servers import start_twistd


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on TCP `port`, as the kernel has it: `ss`
    shows it as a listening socket's Send-Q."""
    shown = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    # State, Recv-Q, Send-Q, local address, peer address.
    return int(shown[2])


class ListenBacklogTests(TestCase):
    """The player-facing listeners queue as many connections as the kernel lets them."""

    timeout = 60

    async def test_the_gateway_listens_with_the_backlog_of_the_lobby(self) -> None:
        if shutil.which("ss") is None:
            raise SkipTest("needs ss (iproute2) to read a listening socket's backlog")
        with open("/proc/sys/net/core/somaxconn") as f:
            expected = min(1024, int(f.read()))  # the kernel caps a backlog at somaxconn
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        rules = os.path.join(directory, "rules.json")
        with open(rules, "w") as f:
            json.dump({"backends": {"a": {"address": f"127.0.0.1:{free_tcp_port()}"}},
                       "pools": {"lobbies": {"backends": ["a"]}},
                       "routes": [{"kind": "any", "pool": "lobbies"}]}, f)  # fmt: skip
        port = free_tcp_port()
        await start_twistd(
            self, {}, "--gateway", f"tcp:{port}:interface=127.0.0.1",
            "--gateway-rules", rules, game_server=False, role="gateway",
            ready=b"vinom: the gateway (every client kind):",
        )
        self.assertEqual(listen_backlog(port), expected)
