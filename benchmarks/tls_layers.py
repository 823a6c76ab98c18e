"""What TLS costs the server per move of play's duel, layer against layer, in memory.

    python -m benchmarks.tls_layers [--rooms 100] [--moves 100000] [--rounds 5]

`play --transport websocket` serves `/game` over vinom's TLS layer
(`vinom.net.tls.TLSLayer`, the standard library's `ssl.SSLObject` on memory
BIOs), which replaced Twisted's (`twisted.protocols.tls.TLSMemoryBIOProtocol`,
pyOpenSSL's memory BIOs; the gateway keeps it). This measures both on the same
work, the TLS part of a duel move: one move frame in (the client's masked
WebSocket frame of `{"seq": n}`, as benchmarks/websocket_load.py sends it),
decrypted and handed to the protocol above, which writes a state frame (a duel
`state` of about 90 bytes, as vinom's room sends it) to both players of the
room, each encrypted on its own connection. `none` runs the same protocol with
no TLS (the harness's own cost, subtracted from the others). TLS 1.3 with each
side's default cipher (AES-256-GCM), `--rooms` rooms of two connections each,
moves round robin over the rooms; the clients are `ssl.SSLObject`s whose work is
not timed.

No sockets: each figure is the TLS layer's CPU per move alone, without the
reads and writes, which are the same with TLS or without (what a
TLS-terminating proxy in front of plain `ws://` costs is
`play --transport ws --tls-proxy haproxy`: its own process, its own reads
and writes). The three layers run alternately, `--rounds` times; each
result is the median of the rounds with their range, and the ratio of the
layer's net cost (minus `none`) to Twisted's.
"""

from __future__ import annotations

import json
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python import usage

from benchmarks.common import positive_int
from benchmarks.websocket_load import BINARY, frame
from vinom.rooms.messages import encode_state

try:
    from vinom.rooms.client_messages import encode_action
except ImportError:  # a build from before vinom.rooms.client_messages (compare's baseline)
    from vinom.rooms.messages import encode_action

LAYERS = ("none", "twisted", "vinom")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = __doc__
    optParameters = [
        ["rooms", None, "100", "Rooms of two TLS connections each."],
        ["moves", None, "100000", "Moves timed in each run."],
        ["rounds", None, "5", "Runs of each layer, alternated."],
    ]

    def postOptions(self) -> None:
        for name in ("rooms", "moves", "rounds"):
            self[name] = positive_int(self, name)


def server_frame(payload: bytes) -> bytes:
    """An unmasked final binary frame, as the server sends (payloads under 126 bytes)."""
    return bytes((0x80 | BINARY, len(payload))) + payload


STATE = server_frame(encode_state(
    1234, "playing", 3500.0, {"seq": {"p-000001-0": 617, "p-000001-1": 617}},
    tick=12, server_time=123456,
))  # fmt: skip
MOVE = frame(BINARY, encode_action({"seq": 618}))


class Seat(Protocol):
    """The protocol above TLS: a move frame in writes the state to both seats of the room."""

    other: Seat

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(STATE)  # type: ignore[union-attr]
        self.other.transport.write(STATE)  # type: ignore[union-attr]


class Sink:
    """The transport under the server's TLS: keeps what it is given until taken."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.data.extend(data)

    def take(self) -> bytes:
        out = b"".join(self.data)
        self.data.clear()
        return out

    def getPeer(self) -> Any:
        return None

    getHost = getPeer

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def loseConnection(self) -> None:
        self.disconnecting = True


class Plain:
    """No TLS: the same protocol on the bare transport."""

    def __init__(self, wrapped: Protocol, transport: Sink) -> None:
        self.transport = transport
        self.wrapped = wrapped
        wrapped.makeConnection(transport)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        self.wrapped.dataReceived(data)


def credentials() -> tuple[str, str]:
    """A certificate and key file (vinom's development certificate)."""
    from vinom.server.certs import make_self_signed

    cert, key = make_self_signed("localhost")
    directory = tempfile.mkdtemp(prefix="vinom-tls-layers-")
    paths = (f"{directory}/cert.pem", f"{directory}/key.pem")
    for path, pem in zip(paths, (cert, key), strict=True):
        with open(path, "wb") as f:
            f.write(pem)
    return paths


class Connection:
    """One player's connection: its client `SSLObject` (or none) and the server's layer."""

    def __init__(self, layer: str, seat: Seat, paths: tuple[str, str], clock: Clock) -> None:
        self.sink = Sink()
        self.client: ssl.SSLObject | None = None
        self.server: Any
        if layer == "none":
            self.server = Plain(seat, self.sink)
            return
        if layer == "twisted":
            from twisted.internet.ssl import PrivateCertificate
            from twisted.protocols.tls import TLSMemoryBIOFactory

            with open(paths[0], "rb") as c, open(paths[1], "rb") as k:
                options = PrivateCertificate.loadPEM(c.read() + k.read()).options()
            # Twisted's TLS transport holds small writes until the reactor's next
            # iteration (one delayed call): `clock` stands for that reactor.
            factory = TLSMemoryBIOFactory(
                options, False, Factory.forProtocol(lambda: seat), clock=clock
            )
            self.server = factory.buildProtocol(None)
            self.server.makeConnection(self.sink)
        else:
            from vinom.net.tls import TLSFiles, TLSLayerFactory

            context = TLSFiles(paths[1], paths[0]).context()
            self.server = TLSLayerFactory(context, Factory.forProtocol(lambda: seat)).buildProtocol(
                None
            )
            self.server.makeConnection(self.sink)
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        self.c_in, self.c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client_context.wrap_bio(self.c_in, self.c_out, server_hostname="localhost")
        while True:
            try:
                self.client.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.server.dataReceived(self.c_out.read())
                clock.advance(0)
                self.c_in.write(self.sink.take())
        # The client's Finished (and anything after it) to the server.
        self.server.dataReceived(self.c_out.read())
        clock.advance(0)
        self.c_in.write(self.sink.take())

    def record(self, data: bytes) -> bytes:
        """What the client puts on the wire to send `data`."""
        if self.client is None:
            return data
        self.client.write(data)
        return self.c_out.read()


def run_layer(layer: str, rooms: int, moves: int, paths: tuple[str, str]) -> float:
    """Microseconds of server CPU per move through `layer` (its whole TLS work per move,
    a reactor iteration's delayed calls included: `Clock.advance` in every layer)."""
    connections = []
    reactor = Clock()
    for _ in range(rooms):
        a, b = Seat(), Seat()
        a.other, b.other = b, a
        connections += [Connection(layer, a, paths, reactor), Connection(layer, b, paths, reactor)]
    advance = reactor.advance
    clock: Callable[[], int] = time.thread_time_ns
    spent = 0
    count = len(connections)
    for n in range(moves):
        index = n % count
        mover = connections[index]
        other = connections[index ^ 1]
        wire = mover.record(MOVE)
        started = clock()
        mover.server.dataReceived(wire)
        advance(0)  # the reactor's next iteration (Twisted's TLS writes then)
        spent += clock() - started
        if not (mover.sink.data and other.sink.data):
            raise RuntimeError(f"{layer}: a move did not reach both seats")
        mover.sink.data.clear()
        other.sink.data.clear()
    return spent / 1000 / moves


def main(argv: list[str] | None = None) -> int:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nerror: {e}\n")
        return 2
    paths = credentials()
    runs: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    for _ in range(options["rounds"]):
        for layer in LAYERS:
            runs[layer].append(run_layer(layer, options["rooms"], options["moves"], paths))
    medians = {layer: statistics.median(values) for layer, values in runs.items()}
    net = {layer: medians[layer] - medians["none"] for layer in LAYERS}
    result = {
        "scenario": "tls_layers",
        "rooms": options["rooms"],
        "moves": options["moves"],
        "rounds": options["rounds"],
        "openssl": {"stdlib": ssl.OPENSSL_VERSION, "pyopenssl": _pyopenssl_openssl()},
        "us_per_move": {layer: round(medians[layer], 2) for layer in LAYERS},
        "us_per_move_range": {
            layer: [round(min(v), 2), round(max(v), 2)] for layer, v in runs.items()
        },
        "tls_us_per_move": {layer: round(net[layer], 2) for layer in LAYERS[1:]},
        "vinom_over_twisted": round(net["vinom"] / net["twisted"], 3) if net["twisted"] else None,
    }
    for layer in LAYERS:
        low, high = result["us_per_move_range"][layer]
        print(f"{layer:<8} {medians[layer]:7.2f} us per move ({low}-{high}), "
              f"TLS {net[layer]:6.2f} us")  # fmt: skip
    print(json.dumps(result, sort_keys=True))
    return 0


def _pyopenssl_openssl() -> str:
    from OpenSSL import SSL

    return SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode()


if __name__ == "__main__":
    sys.exit(main())
