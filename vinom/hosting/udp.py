"""The game host's UDP port: a thin Twisted adapter over a sans-I/O `IDatagramCore`.

`GameHostProtocol` does what aioquic's asyncio protocol does for a QUIC
connection: it feeds every datagram to the core with the time, transmits
what the core then has to send, hands the core's events to `on_event` (the
hosting layer), and keeps one reactor timer (a `WakeUp`) at the core's
`get_timer()`, calling its `handle_timer` when it fires. It knows nothing of
sessions or rooms (vinom.hosting.core has them). Nothing raises out of
`datagramReceived`: bad packets are the core's counted drops, and a failure
in the core is logged and counted in `errors`. When the core has no timer
left, the reactor timer is cancelled. After calling the core
directly (adding a match, shutting it down), its owner calls `transmit()`.

Datagrams go out through the listening port's socket directly (`sendto`) when
the transport has one (Twisted's `udp.Port` does): `Port.write` validates the
address of every datagram (`isIPAddress`, about a fifth of the host's cost per
packet in the play benchmark), and ours are always the IP literals `recvfrom`
gave us. Like `Port.write`, a refused send (EWOULDBLOCK, ENOBUFS, ECONNREFUSED,
EMSGSIZE, ...) never raises; unlike it, every one is counted in `send_errors`.

Datagrams are read in batches (vinom.hosting.datagrams): those already waiting
behind one that arrives are handled with it before anything is sent, and
timed once, as they were read (their replies when they leave). On a
`GameHostPort` (`listen_game_host`) the port's `doRead` is this protocol's
`read_waiting`; on any other port, `datagramReceived` reads what waits behind
the datagram it is given.

The socket's receive and send buffers are raised to 4 MiB (as netcode.io does;
the kernel caps them at net.core.rmem_max / wmem_max): the default buffer holds
only about 256 small datagrams, so a host serving hundreds of players that is
descheduled for a few milliseconds would drop their packets, and each drop
costs a resend timeout of latency.

Installed builds compile this module with mypyc (setup.py, COMPILED): there its
declared types are checked at run time and its classes' methods cannot be
replaced on an instance. tox runs the suite on both builds.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IListeningPort, IReactorFDSet, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface.verify import verifyObject

from vinom.hosting.datagrams import BATCH, Datagram, DatagramReader, GameHostPort
from vinom.hosting.interfaces import IDatagramCore
from vinom.net.wakeup import WakeUp

_log = Logger()
# Log only the first few failures of a kind; they are counted either way, and a
# hostile peer must not be able to fill the log.
_MAX_LOGGED = 10
SOCKET_BUFFER = 4 * 1024 * 1024
# What the host reads per datagram (listen_game_host's maxPacketSize): its sessions
# send at most 1200 bytes (vinom.protocol.wire.MAX_DATAGRAM); a bit more is read so
# that an oversized datagram is read whole and dropped, not truncated.
READ_SIZE = 2048


# The classes of core whose instances passed `verifyObject` (GameHostProtocol).
_VERIFIED_CORES: set[type] = set()


class GameHostProtocol(DatagramProtocol):
    """Serves one game host port for `core` (see module docstring).

    `on_event(event)` receives each of the core's events, after the datagrams
    owed at that moment were sent; it may call the core and then `transmit()`.
    """

    # Twisted would log "Starting protocol" and "Stopping protocol" for every
    # match's port; the hosting service logs a match's start and end once.
    noisy = False

    def __init__(self, core: IDatagramCore, clock: IReactorTime,
                 on_event: Callable[[object], object] | None = None,
                 socket_buffer: int = SOCKET_BUFFER, batch: int = BATCH,
                 recvmmsg: bool = True) -> None:
        # Checked here, so that a core missing a method fails now rather than
        # inside the reactor's read of a datagram; once per class of core (a
        # host starts one protocol per match, and the check was a third of that).
        if type(core) not in _VERIFIED_CORES:
            verifyObject(IDatagramCore, core, tentative=True)
            _VERIFIED_CORES.add(type(core))
        self.core = core
        self.on_event = on_event
        self._socket_buffer = socket_buffer
        self._batch = max(1, batch)
        self._use_recvmmsg = recvmmsg
        self._reading: DatagramReader | None = None
        self._clock = clock
        self._wake_up = WakeUp(clock, self._on_timer)
        self._running = False
        # The listening socket, written to directly (see the module docstring).
        self._socket: socket.socket | None = None
        # Exceptions caught (core or on_event bugs), and datagrams the OS refused.
        self.errors = 0
        self.send_errors = 0
        self._read_errors_before = 0

    @property
    def read_errors(self) -> int:
        """Reads that failed other than for want of data (the read then stopped)."""
        reading = self._reading
        return self._read_errors_before + (0 if reading is None else reading.read_errors)

    @property
    def reading(self) -> DatagramReader | None:
        """What reads this port's socket in batches, while it listens."""
        return self._reading

    # -- Twisted ----------------------------------------------------------

    def startProtocol(self) -> None:
        self._running = True
        sock = getattr(self.transport, "socket", None)
        self._socket = sock if isinstance(sock, socket.socket) else None
        if self._socket is not None:
            self._reading = DatagramReader(
                self._socket, self._handle_datagrams, batch=self._batch,
                read_size=int(getattr(self.transport, "maxPacketSize", READ_SIZE)),
                read_limit=int(getattr(self.transport, "maxThroughput", 256 * 1024)),
                recvmmsg=self._use_recvmmsg and isinstance(self.transport, GameHostPort),
            )  # fmt: skip
            if self._socket_buffer > 0:
                for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                    with contextlib.suppress(OSError):  # else: the system's default
                        self._socket.setsockopt(socket.SOL_SOCKET, option, self._socket_buffer)
        self.transmit()

    def stopProtocol(self) -> None:
        self._running = False
        self._socket = None
        if self._reading is not None:
            self._reading.close()
            self._read_errors_before += self._reading.read_errors
            self._reading = None
        self._wake_up.cancel()

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        batch = [(data, addr)]
        if self._reading is not None:
            self._reading.read_more(batch)
        self._handle_datagrams(batch)

    def read_waiting(self) -> None:
        """Read and handle every datagram waiting (a `GameHostPort`'s doRead)."""
        if self._reading is not None:
            self._reading.read_waiting()

    def _handle_datagrams(self, datagrams: list[Datagram]) -> int:
        """Feed a batch to the core, then transmit what is owed for all of it; returns
        the bytes handled. The batch is timed once, as it was read: every datagram
        in it had arrived by then."""
        receive = self.core.receive_datagram
        read = 0
        now = self._clock.seconds()
        for data, addr in datagrams:
            read += len(data)
            try:
                receive(data, addr, now)
            except Exception:
                self._error("the core failed on a datagram")
        self.transmit()
        return read

    # -- the core's output ------------------------------------------------

    def transmit(self) -> None:
        """Send what the core owes now, hand its events to `on_event`, re-arm the timer."""
        # Replies are stamped when they leave, not when their batch was read.
        now = self._clock.seconds()
        core = self.core
        try:
            out = core.datagrams_to_send(now)
        except Exception:
            self._error("the core failed building datagrams")
            out = []
        if out:
            sock = self._socket
            if sock is not None:
                sendto = sock.sendto
                for datagram, addr in out:
                    try:
                        sendto(datagram, addr)
                    except OSError:
                        # ENOBUFS, EWOULDBLOCK, EMSGSIZE, unreachable networks: UDP
                        # may lose it anyway.
                        self.send_errors += 1
            elif self.transport is not None:
                write = self.transport.write
                for datagram, addr in out:
                    try:
                        write(datagram, addr)
                    except Exception:
                        self.send_errors += 1
        event = core.next_event()
        while event is not None:
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    self._error("the host's event handler failed")
            event = core.next_event()
        if self._running:
            try:
                when = core.get_timer()
            except Exception:
                self._error("the core failed computing its timer")
                return
            if when is not None:
                self._wake_up.at(when, now)
            else:
                # Nothing is due any more (its sessions closed): no reactor wake-up
                # for nothing, as a reused host's would be between two matches.
                self._wake_up.cancel()

    def _on_timer(self) -> None:
        try:
            self.core.handle_timer(self._clock.seconds())
        except Exception:
            self._error("the core failed handling its timer")
        self.transmit()

    def _error(self, what: str) -> None:
        self.errors += 1
        if self.errors <= _MAX_LOGGED:
            _log.failure("game host: {what} (error {n})", what=what, n=self.errors)


def listen_game_host(
    reactor: Any,
    port: int,
    core: IDatagramCore | GameHostProtocol,
    clock: IReactorTime,
    interface: str = "",
) -> tuple[GameHostProtocol, IListeningPort]:
    """Serve `core` (or a protocol built for it) on UDP `port` (0: any free port); returns
    the protocol and port. Raises CannotListenError.

    On a reactor that watches file descriptors (every POSIX reactor) the port is a
    `GameHostPort`, which reads in batches; on any other (Windows' IOCP) it is the
    reactor's own, where `datagramReceived` reads what waits behind each datagram.
    """
    protocol = core if isinstance(core, GameHostProtocol) else GameHostProtocol(core, clock)
    if not IReactorFDSet.providedBy(reactor):
        return protocol, reactor.listenUDP(
            port, protocol, interface=interface, maxPacketSize=READ_SIZE
        )
    listening = GameHostPort(port, protocol, interface, READ_SIZE, reactor)
    listening.startListening()
    return protocol, listening
