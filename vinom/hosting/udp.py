"""The game host's UDP port: a thin Twisted adapter over a sans-I/O `IDatagramCore`.

`GameHostProtocol` does what aioquic's asyncio protocol does for a QUIC
connection: it feeds every datagram to the core with the time, transmits
what the core then has to send, hands the core's events to `on_event` (the
hosting layer), and keeps one reactor timer (a `WakeUp`) at the core's
`get_timer()`, calling its `handle_timer` when it fires. It knows nothing of
sessions or rooms (vinom.hosting.core has them). Nothing raises out of
`datagramReceived`: bad packets are the core's counted drops, and a failure
in the core is logged and counted in `errors`. After calling the core
directly (adding a match, shutting it down), its owner calls `transmit()`.

Datagrams go out through the listening port's socket directly (`sendto`) when
the transport has one (Twisted's `udp.Port` does): `Port.write` validates the
address of every datagram (`isIPAddress`, about a fifth of the host's cost per
packet in the play benchmark), and ours are always the IP literals `recvfrom`
gave us. Like `Port.write`, a refused send (EWOULDBLOCK, ENOBUFS, ECONNREFUSED,
EMSGSIZE, ...) never raises; unlike it, every one is counted in `send_errors`.

When a datagram arrives, the datagrams already waiting behind it (up to
`batch`, default 64) are read and handled too before anything is sent: what the
host owes one session within that batch (say two states, after both players
of a room moved) goes out in one packet, and the sends (a system call each,
the largest single cost of the host per move) are fewer. Nothing waits for
more datagrams to arrive: only those already queued are batched. A batch is
timed once, as it was read (its replies when they leave). On Twisted's
`udp.Port` the adapter does the reading itself (it replaces the port's
`doRead`): Port.doRead would ask the socket once more after every drained
batch, a failed system call per wake-up. On Linux, an IPv4 port reads each
batch with one `recvmmsg` call (vinom.hosting.mmsg), which also tells when
the socket is drained, so no read fails; elsewhere one `recvfrom` per
datagram.

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

from twisted.internet import udp
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface.verify import verifyObject

from vinom.hosting.interfaces import IDatagramCore
from vinom.hosting.mmsg import BatchReader, batch_reader
from vinom.net.wakeup import WakeUp

_log = Logger()
# Log only the first few failures of a kind; they are counted either way, and a
# hostile peer must not be able to fill the log.
_MAX_LOGGED = 10
SOCKET_BUFFER = 4 * 1024 * 1024
# Datagrams handled before the replies to them are sent (see the module docstring).
BATCH = 64
# What the host reads per datagram (as listen_game_host's maxPacketSize): larger
# than any valid packet, so an oversized one is read whole and dropped.
_MAX_READ = 2048
# Read errors that end a read quietly, as in Port.doRead (its own lists, which
# differ on Windows): "nothing (more) to read now", and an earlier send's ICMP
# refusal, which an unconnected socket may report on a read.
_READ_DONE = frozenset(udp._sockErrReadIgnore) | frozenset(udp._sockErrReadRefuse)


class GameHostProtocol(DatagramProtocol):
    """Serves one game host port for `core` (see module docstring).

    `on_event(event)` receives each of the core's events, after the datagrams
    owed at that moment were sent; it may call the core and then `transmit()`.
    """

    def __init__(self, core: IDatagramCore, clock: IReactorTime,
                 on_event: Callable[[object], object] | None = None,
                 socket_buffer: int = SOCKET_BUFFER, batch: int = BATCH,
                 recvmmsg: bool = True) -> None:
        # Checked here, so that a core missing a method fails now rather than
        # inside the reactor's read of a datagram.
        verifyObject(IDatagramCore, core, tentative=True)
        self.core = core
        self.on_event = on_event
        self._socket_buffer = socket_buffer
        self._batch = max(1, batch)
        self._use_recvmmsg = recvmmsg
        self._reader: BatchReader | None = None
        self._read_size = _MAX_READ
        self._ipv6 = False
        self._clock = clock
        self._wake_up = WakeUp(clock, self._on_timer)
        self._running = False
        # The listening socket, written to directly (see the module docstring).
        self._socket: socket.socket | None = None
        self._read_limit = 256 * 1024
        # Exceptions caught (core or on_event bugs), datagrams the OS refused, and
        # reads that failed other than for want of data (the read then stops).
        self.errors = 0
        self.send_errors = 0
        self.read_errors = 0

    # -- Twisted ----------------------------------------------------------

    def startProtocol(self) -> None:
        self._running = True
        sock = getattr(self.transport, "socket", None)
        self._socket = sock if isinstance(sock, socket.socket) else None
        if self._socket is not None:
            self._ipv6 = self._socket.family == socket.AF_INET6
            self._read_size = int(getattr(self.transport, "maxPacketSize", _MAX_READ))
            if isinstance(self.transport, udp.Port):
                # Read in batches ourselves (see _do_read); the reactor calls the
                # port's doRead, which this instance attribute replaces.
                self._read_limit = int(self.transport.maxThroughput)
                self.transport.doRead = self._do_read
                if self._use_recvmmsg:
                    self._reader = batch_reader(self._socket, self._batch, self._read_size)
        if self._socket is not None and self._socket_buffer > 0:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):  # else: the system's default
                    self._socket.setsockopt(socket.SOL_SOCKET, option, self._socket_buffer)
        self.transmit()

    def stopProtocol(self) -> None:
        self._running = False
        self._socket = None
        self._reader = None
        self._wake_up.cancel()

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        batch = [(data, addr)]
        if self._socket is not None:
            self._read_more(self._socket, batch)
        self._handle_datagrams(batch)

    # -- reading ----------------------------------------------------------

    def _do_read(self) -> None:
        """The listening port's doRead (installed by startProtocol): Port.doRead's
        loop, in batches, stopping at the first empty read.

        Port.doRead would ask the socket once more after every batch drained it,
        a failed system call per wake-up (about 1.5 us) that an idle host pays
        for nearly every datagram. Errors are never raised (Port.doRead raises
        unknown ones, which closes the port): they end the read, and unexpected
        ones are counted in `read_errors`.
        """
        sock = self._socket
        if sock is None:
            return
        if self._reader is not None:
            self._read_batches(self._reader, sock.fileno())
            return
        limit = self._read_limit
        read = 0
        while read < limit:
            batch: list[tuple[bytes, Any]] = []
            drained = self._read_more(sock, batch)
            if batch:
                read += self._handle_datagrams(batch)
            if drained:
                return

    def _read_more(self, sock: socket.socket, batch: list[tuple[bytes, Any]]) -> bool:
        """Append what `recvfrom` finds waiting to `batch`, up to `batch` datagrams in
        all; whether the socket was drained (or failed: counted if unexpected)."""
        recvfrom = sock.recvfrom
        size = self._read_size
        ipv6 = self._ipv6
        for _ in range(self._batch - len(batch)):
            try:
                data, addr = recvfrom(size)
            except OSError as e:
                if e.errno not in _READ_DONE:
                    self.read_errors += 1
                return True
            if ipv6:
                addr = addr[:2]
            batch.append((data, addr))
        return False

    def _read_batches(self, reader: BatchReader, fd: int) -> None:
        """_do_read with recvmmsg: a batch per call; a short one means drained."""
        limit = self._read_limit
        full = reader.count
        read = 0
        while read < limit:
            try:
                datagrams = reader.read(fd)
            except OSError as e:
                if e.errno not in _READ_DONE:
                    self.read_errors += 1
                return
            if not datagrams:
                return
            read += self._handle_datagrams(datagrams)
            if len(datagrams) < full or self._reader is None:
                return  # drained (or the port stopped meanwhile)

    def _handle_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> int:
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
    reactor: IReactorUDP,
    port: int,
    core: IDatagramCore,
    clock: IReactorTime,
    interface: str = "",
) -> tuple[GameHostProtocol, IListeningPort]:
    """Serve `core` on UDP `port` (0: any free port); returns the protocol and port."""
    protocol = GameHostProtocol(core, clock)
    listening = reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=2048)
    return protocol, listening
