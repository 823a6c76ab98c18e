"""The game host's UDP port: a thin Twisted adapter over the sans-I/O `ServerEndpoint`.

`GameHostProtocol` feeds every datagram to the endpoint, hands the endpoint's
events to an `ISessionSink` (the session manager), transmits what the endpoint
wants sent, and drives the endpoint's timer with one `callLater` from the
injected clock. It provides `ISessionSender` to the session manager. Nothing
raises out of `datagramReceived`: bad packets are the endpoint's counted drops,
and a failure in the sink or the endpoint is logged and counted in `errors`.

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
timed once, as it was read (its replies when they leave), and the sink hears
each datagram's events before the next datagram is handled. On Twisted's
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
from typing import Any

from twisted.internet import udp
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer
from zope.interface.verify import verifyObject

from vinom.hosting.mmsg import BatchReader, batch_reader
from vinom.protocol.events import MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.interfaces import ISessionSender, ISessionSink
from vinom.protocol.server import ServerEndpoint
from vinom.wakeup import WakeUp

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


@implementer(ISessionSender)
class GameHostProtocol(DatagramProtocol):
    """Serves one game host port (see module docstring)."""

    def __init__(self, endpoint: ServerEndpoint, sink: ISessionSink, clock: IReactorTime,
                 socket_buffer: int = SOCKET_BUFFER, batch: int = BATCH,
                 recvmmsg: bool = True) -> None:
        self.endpoint = endpoint
        self._socket_buffer = socket_buffer
        self._batch = max(1, batch)
        self._use_recvmmsg = recvmmsg
        self._reader: BatchReader | None = None
        self._read_size = _MAX_READ
        self._ipv6 = False
        # Checked here, so that a sink missing a method fails now rather than
        # inside the reactor's read of a datagram.
        verifyObject(ISessionSink, sink, tentative=True)
        self._sink = sink
        self._clock = clock
        self._wake_up = WakeUp(clock, self._on_timer)
        self._dispatching = False
        self._running = False
        # The listening socket, written to directly (see the module docstring).
        self._socket: socket.socket | None = None
        self._read_limit = 256 * 1024
        # Exceptions caught (endpoint or sink bugs), datagrams the OS refused, and
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
        self._flush(self._clock.seconds())

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
        """Feed a batch to the endpoint, each datagram's events to the sink, then send
        what is owed for all of them; returns the bytes handled.

        The batch is timed once, as it was read: every datagram in it had arrived
        by then. Each datagram's events go to the sink before the next datagram is
        handled; when called from inside the sink, the loop already delivering
        picks them up.
        """
        receive = self.endpoint.receive_datagram
        events = self.endpoint.events
        drain = self._drain_events
        read = 0
        now = self._clock.seconds()
        outer = self._dispatching
        self._dispatching = True
        try:
            for data, addr in datagrams:
                read += len(data)
                try:
                    receive(data, addr, now)
                except Exception:
                    self._error("endpoint failed on a datagram")
                if events and not outer:
                    drain()
        finally:
            self._dispatching = outer
        # Replies are stamped when they leave, not when the batch was read.
        self._flush(self._clock.seconds())
        return read

    # -- ISessionSender ---------------------------------------------------

    def send_message(self, session_id: int, channel: int, data: bytes) -> None:
        """Queue a message; it goes out now, or with the reply being built if we are
        inside the sink's handling of a datagram (so acks and replies share packets)."""
        self.endpoint.send_message(session_id, channel, data)
        if not self._dispatching:
            self._flush(self._clock.seconds())

    def close_session(self, session_id: int) -> None:
        self.endpoint.close_session(session_id)
        self._dispatch()
        if not self._dispatching:
            self._flush(self._clock.seconds())

    # -- plumbing ---------------------------------------------------------

    def _dispatch(self) -> None:
        if self._dispatching:
            return  # the outer loop picks the new events up
        self._dispatching = True
        try:
            self._drain_events()
        finally:
            self._dispatching = False

    def _drain_events(self) -> None:
        """Hand the sink every event waiting, in order; a sink failure spares the rest.

        Called with `_dispatching` set, so that events the sink causes meanwhile
        (a reply, a closed session, a datagram fed from inside it) are picked up
        by this loop, not by a nested one.
        """
        events = self.endpoint.events
        sink = self._sink
        while events:
            event = events.popleft()
            try:
                if isinstance(event, MessageReceived):
                    sink.message_received(*event)  # (session_id, channel, data)
                elif isinstance(event, SessionConnected):
                    sink.session_connected(event)
                elif isinstance(event, SessionClosed):
                    sink.session_closed(event)
            except Exception:
                self._error("session sink failed")

    def _flush(self, now: float) -> None:
        try:
            out = self.endpoint.datagrams_to_send(now)
        except Exception:
            self._error("endpoint failed building datagrams")
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
        if self._running:
            self._reschedule(now)

    def _reschedule(self, now: float) -> None:
        try:
            when = self.endpoint.get_timer()
        except Exception:
            self._error("endpoint failed computing its timer")
            return
        if when is not None:
            self._wake_up.at(when, now)

    def _on_timer(self) -> None:
        now = self._clock.seconds()
        try:
            self.endpoint.handle_timer(now)
        except Exception:
            self._error("endpoint failed handling its timer")
        self._dispatch()
        self._flush(now)

    def _error(self, what: str) -> None:
        self.errors += 1
        if self.errors <= _MAX_LOGGED:
            _log.failure("game host: {what} (error {n})", what=what, n=self.errors)


def listen_game_host(
    reactor: IReactorUDP,
    port: int,
    endpoint: ServerEndpoint,
    sink: ISessionSink,
    clock: IReactorTime,
    interface: str = "",
) -> tuple[GameHostProtocol, IListeningPort]:
    """Serve `endpoint` on UDP `port` (0: any free port); returns the protocol and port."""
    protocol = GameHostProtocol(endpoint, sink, clock)
    listening = reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=2048)
    return protocol, listening
