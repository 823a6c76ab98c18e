"""Load worker of the udp-echo scenario: keeps a window of datagrams in flight and times them.

Every datagram carries its send time (8 bytes, `perf_counter_ns`) padded to
the payload size; when the echo comes back the round trip is recorded and
the next datagram leaves at once, so exactly `window` messages are in
flight (split across `clients` sockets). A window lost on the network is
refilled after half a second of silence and counted in `refills`.

`--mode bare` sends raw datagrams. `--mode vinom` runs one sans-I/O
`ClientConnection` per socket: each completes vinom's handshake with a token
sealed here with the shared key, and the payloads travel as messages on the
unreliable channel, encrypted and sequence-numbered, exactly as a game
client's would.

`--relay-key K --relay-to PORT` (bare mode) sends through vinom's UDP relay
at `--port`: each socket prefixes its datagrams with a route token of its
own, sealed here with K, to the echo at `--host`:PORT (udp-echo --relay).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.python import usage

from benchmarks.loadgen import DONE, Latencies, Timeline
from benchmarks.worker import emit, run_guarded

if TYPE_CHECKING:
    from benchmarks.session_load import Poller

STAMP = struct.Struct("<q")
SILENCE_REFILL_S = 0.5


class Options(usage.Options):
    optParameters = [
        ["mode", None, "bare", "bare or vinom"],
        ["host", None, "127.0.0.1", "server address"],
        ["port", None, None, "server UDP port"],
        ["key", None, None, "vinom mode: the connect-token key, hex"],
        ["size", None, "100", "payload bytes"],
        ["window", None, "32", "messages in flight in total"],
        ["clients", None, "32", "sockets (vinom: sessions) sharing the window"],
        ["warmup", None, "1", "seconds before measuring"],
        ["duration", None, "5", "seconds measured"],
        ["channel", None, "0", "vinom mode: channel of the echoed messages"],
        ["relay-key", None, None, "bare mode through the UDP relay at --port: its key, hex"],
        ["relay-to", None, None, "with --relay-key: the echo's UDP port behind the relay"],
    ]


def split_window(window: int, clients: int) -> list[int]:
    """`window` messages spread as evenly as possible over `clients` (each at least 1)."""
    base, extra = divmod(max(window, clients), clients)
    return [base + (1 if i < extra else 0) for i in range(clients)]


class EchoWindow:
    """What both halves' load loops share: the poller over their sockets and, once per
    poll, the measuring window, the count of echoes in it, and refills of sockets
    silent for SILENCE_REFILL_S.

    The loops keep their running count and `measuring` flag in locals (the
    per-datagram path) and hand them to `tick`, which gives back the values to
    go on with.
    """

    def __init__(self, options: Any, clients: int, refill: Callable[[int], None]) -> None:
        self.latencies = Latencies()
        self.count = 0
        self.refills = 0
        self.measuring = False
        self.done = False
        self.last_heard = [time.perf_counter()] * clients
        self._refill = refill
        self._poller: Poller | None = None
        self.timeline = Timeline(
            float(options["warmup"]),
            float(options["duration"]),
            on_measure=self._on_measure,
            progress=lambda: {"count": self.count},
        )

    def start(self, sockets: list[socket.socket]) -> tuple[Callable[[float], list[int]],
                                                        dict[int, int]]:
        """Start the timeline, send every socket its share of the window and poll the
        sockets (and standard input): the poll function and each socket's index by
        file descriptor. `close` closes the poller."""
        from benchmarks.session_load import poll_sockets

        self._poller, by_fd = poll_sockets(sockets)
        self.timeline.start()
        for index in range(len(self.last_heard)):
            self._refill(index)
        return self._poller.poll, by_fd

    def close(self) -> None:
        if self._poller is not None:
            self._poller.close()
            self._poller = None

    def _on_measure(self) -> None:
        self.latencies.clear()
        self.count = 0
        self.refills = 0
        self.measuring = True

    def heard(self, index: int) -> None:
        self.last_heard[index] = time.perf_counter()

    def tick(self, now: float, count: int) -> tuple[int, bool]:
        """The loop's count in; (count, measuring) to go on with out; `done` once the
        window is over."""
        self.count = count
        self.done = self.timeline.check(now) == DONE
        for index, heard in enumerate(self.last_heard):
            if now - heard > SILENCE_REFILL_S:
                self.refills += 1
                self.last_heard[index] = now
                self._refill(index)
        return self.count, self.measuring

    def result(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "window_s": self.timeline.window_s,
            "load_cpu_s": self.timeline.load_cpu_s,
            "refills": self.refills,
            "histogram": self.latencies.encoded(),
        }


def run_bare(options: Options) -> dict[str, Any]:
    address = (options["host"], int(options["port"]))
    size = max(int(options["size"]), STAMP.size)
    clients = int(options["clients"])
    shares = split_window(int(options["window"]), clients)
    sockets = []
    for _ in range(clients):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(address)
        sock.setblocking(False)
        sockets.append(sock)
    buffer = bytearray(size)
    pack_into = STAMP.pack_into
    unpack_from = STAMP.unpack_from
    clock_ns = time.perf_counter_ns

    prefixes = [b""] * clients
    if options["relay-key"]:
        from vinom.protocol.route_token import RouteTokenIssuer

        issuer = RouteTokenIssuer(bytes.fromhex(options["relay-key"]))
        prefixes = [issuer.issue(options["host"], int(options["relay-to"]), time.time())
                    for _ in range(clients)]  # fmt: skip
    relayed = bool(options["relay-key"])

    def send_share(index: int) -> None:
        for _ in range(shares[index]):
            pack_into(buffer, 0, clock_ns())
            sockets[index].send(prefixes[index] + buffer if relayed else buffer)

    window = EchoWindow(options, clients, send_share)
    poll, by_fd = window.start(sockets)
    record = window.latencies.record
    count = 0
    measuring = window.measuring
    try:
        while not window.done:
            for fd in poll(0.05):
                index = by_fd.get(fd, -1)
                if index < 0:
                    return {"aborted": True}
                sock = sockets[index]
                # At most as many reads as the socket has echoes in flight: one, by
                # default. Reading on to EAGAIN would cost a failed system call and an
                # exception per echo (the load then limited the bare half); epoll is
                # level-triggered and reports the socket again if more is queued.
                for _ in range(shares[index]):
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError:
                        continue
                    now_ns = clock_ns()
                    if measuring:
                        record((now_ns - unpack_from(data)[0]) // 1000)
                        count += 1
                    pack_into(buffer, 0, now_ns)
                    sock.send(prefixes[index] + buffer if relayed else buffer)
                window.heard(index)
            count, measuring = window.tick(time.perf_counter(), count)
    finally:
        window.close()
    for sock in sockets:
        sock.close()
    return window.result()


def main() -> None:
    options = Options()
    options.parseOptions(sys.argv[1:])
    if options["mode"] == "bare":
        result = run_bare(options)
    elif options["mode"] == "vinom":
        from benchmarks.session_load import run_echo

        result = run_echo(options)
    else:
        raise usage.UsageError(f"unknown mode {options['mode']!r}")
    emit("result", **result)


if __name__ == "__main__":
    run_guarded(main)
