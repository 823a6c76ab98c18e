"""Relay worker of `udp-echo --relay`: vinom's UDP relay (vinom.gateway.relay) alone.

`python -m benchmarks.relay_worker --key HEX` runs `relay_service` on one UDP
port of 127.0.0.1, its routes' sockets on 127.0.0.1 too, prints
`{"type": "ready", "port": ...}` once listening, answers `mark` with its CPU
seconds and the relay's counters, and runs until standard input closes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.python import usage

from benchmarks.worker import cpu_seconds, global_reactor, run_guarded, start_control
from vinom.gateway.relay import relay_service


class Options(usage.Options):
    optParameters = [
        ["key", None, None, "the route-token key, hex"],
        ["interface", None, "127.0.0.1", "address of the public port and the routes' sockets"],
    ]


def main() -> None:
    options = Options()
    options.parseOptions(sys.argv[1:])
    reactor = global_reactor()
    service = relay_service(
        reactor, key=bytes.fromhex(options["key"]), ports=range(0, 1),
        interface=options["interface"], host_interface=options["interface"],
    )  # fmt: skip
    service.startService()
    core = service.relay.core

    def mark(command: dict[str, Any]) -> dict[str, Any]:
        return {
            "cpu_s": cpu_seconds(),
            "counters": {
                "forwarded": core.to_host + core.to_player,
                "dropped": sum(core.drops.values()),
                "routes": core.route_count,
            },
        }

    control = start_control(reactor, {"mark": mark})
    control.emit("ready", port=service.relay.public[0].getHost().port, pid=os.getpid())
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
