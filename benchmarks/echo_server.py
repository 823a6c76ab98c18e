"""Server worker of the udp-echo scenario: a bare Twisted echo, or vinom's session echo.

`python -m benchmarks.echo_server --mode bare` serves a plain
`DatagramProtocol` that writes every datagram back to its sender: the
baseline of what Twisted's UDP costs on this machine. `--mode vinom` serves
the same echo through vinom's secure session protocol: a `ServerEndpoint`
driven by the real `GameHostProtocol` adapter, whose sink sends every
message back to its session on the channel it came in on. Both print
`{"type": "ready", "port": ...}` once listening and run until standard
input closes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.python import usage

from benchmarks.worker import cpu_seconds, global_reactor, run_guarded, start_control


class BareEcho(DatagramProtocol):
    """Every datagram straight back to its sender."""

    def __init__(self) -> None:
        self.count = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.count += 1
        assert self.transport is not None
        self.transport.write(data, addr)


class Options(usage.Options):
    optParameters = [
        ["mode", None, "bare", "bare or vinom"],
        ["interface", None, "127.0.0.1", "address to listen on"],
        ["port", None, "0", "UDP port (0: any free port)"],
        ["key", None, None, "vinom mode: the connect-token key, hex"],
    ]


def main() -> None:
    options = Options()
    options.parseOptions(sys.argv[1:])
    reactor = global_reactor()

    if options["mode"] == "bare":
        echo = BareEcho()
        port = reactor.listenUDP(int(options["port"]), echo, interface=options["interface"])

        def counters_now() -> dict[str, Any]:
            return {"datagrams_received": echo.count, "datagrams_sent": echo.count}

    elif options["mode"] == "vinom":
        from benchmarks.sessions_server import start_echo_host

        host = start_echo_host(
            reactor, bytes.fromhex(options["key"]), options["interface"], int(options["port"])
        )
        port = host.port

        def counters_now() -> dict[str, Any]:
            return host.counters()

    else:
        raise usage.UsageError(f"unknown mode {options['mode']!r}")

    def mark(command: dict[str, Any]) -> dict[str, Any]:
        return {"cpu_s": cpu_seconds(), "counters": counters_now()}

    control = start_control(reactor, {"mark": mark})
    control.emit("ready", port=port.getHost().port, pid=os.getpid())
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
