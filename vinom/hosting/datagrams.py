"""Reading a game host's UDP socket in batches, and the port that reads through them.

When a datagram arrives, the datagrams already waiting behind it (up to
`batch`, default 64) are read and handled too before anything is sent: what
the host owes one session within that batch (say two states, after both
players of a room moved) goes out in one packet, and the sends (a system call
each, the largest single cost of the host per move) are fewer. Nothing waits
for more datagrams to arrive: only those already queued are batched.

`GameHostPort` is Twisted's `udp.Port` with its `doRead` calling the
protocol's `read_waiting`: Port.doRead would ask the socket once more after
every drained batch, a failed system call per wake-up. On Linux, an IPv4 port
reads each batch with one `recvmmsg` call (vinom.hosting.mmsg), which also
tells when the socket is drained, so no read fails; elsewhere one `recvfrom`
per datagram. Read errors never raise (Port.doRead raises unknown ones, which
closes the port): they end the read, and unexpected ones are counted.

Installed builds compile this module with mypyc (setup.py, COMPILED).
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import udp

from vinom.hosting.mmsg import BatchReader, batch_reader

# Datagrams handled before the replies to them are sent.
BATCH = 64
# Read errors that end a read quietly, as Port.doRead's: "nothing (more) to read
# now", and an earlier send's ICMP refusal, which an unconnected socket may
# report on a read (Windows says both its own way).
if sys.platform == "win32":  # pragma: no cover
    READ_DONE = frozenset({
        errno.WSAEINTR, errno.WSAEWOULDBLOCK, errno.WSAEMSGSIZE, errno.WSAEINPROGRESS,
        errno.WSAECONNREFUSED, errno.WSAECONNRESET, errno.WSAENETRESET, errno.WSAETIMEDOUT,
    })  # fmt: skip
else:
    READ_DONE = frozenset({errno.EAGAIN, errno.EINTR, errno.EWOULDBLOCK, errno.ECONNREFUSED})

Datagram = tuple[bytes, Any]


class DatagramReader:
    """Reads what waits on `sock` in batches of up to `batch` datagrams of up to
    `read_size` bytes, handing each batch to `handle` (which returns the bytes it
    handled); one wake-up reads at most `read_limit` bytes, as Port.doRead."""

    def __init__(
        self, sock: socket.socket, handle: Callable[[list[Datagram]], int], *,
        batch: int = BATCH, read_size: int = 2048, read_limit: int = 256 * 1024,
        recvmmsg: bool = True,
    ) -> None:  # fmt: skip
        self.sock = sock
        self.handle = handle
        self.batch = max(1, batch)
        self.read_size = read_size
        self.read_limit = read_limit
        self.ipv6 = sock.family == socket.AF_INET6
        self.mmsg: BatchReader | None = (
            batch_reader(sock, self.batch, read_size) if recvmmsg else None
        )
        self.open = True
        # Reads that failed other than for want of data (the read then stops).
        self.read_errors = 0

    def close(self) -> None:
        """No more reads: the port stopped (perhaps while a batch was handled)."""
        self.open = False

    def read_waiting(self) -> None:
        """Read and handle everything waiting, batch by batch, up to `read_limit` bytes."""
        if not self.open:
            return
        if self.mmsg is not None:
            self._read_mmsg(self.mmsg, self.sock.fileno())
            return
        limit = self.read_limit
        read = 0
        while read < limit:
            batch: list[Datagram] = []
            drained = self.read_more(batch)
            if batch:
                read += self.handle(batch)
            if drained or not self.open:
                return

    def read_more(self, batch: list[Datagram]) -> bool:
        """Append what `recvfrom` finds waiting to `batch`, up to `batch` datagrams in
        all; whether the socket was drained (or failed: counted if unexpected)."""
        recvfrom = self.sock.recvfrom
        size = self.read_size
        ipv6 = self.ipv6
        for _ in range(self.batch - len(batch)):
            try:
                data, addr = recvfrom(size)
            except OSError as e:
                if e.errno not in READ_DONE:
                    self.read_errors += 1
                return True
            if ipv6:
                addr = addr[:2]
            batch.append((data, addr))
        return False

    def _read_mmsg(self, reader: BatchReader, fd: int) -> None:
        """read_waiting with recvmmsg: a batch per call; a short one means drained."""
        limit = self.read_limit
        full = reader.count
        read = 0
        while read < limit:
            try:
                datagrams = reader.read(fd)
            except OSError as e:
                if e.errno not in READ_DONE:
                    self.read_errors += 1
                return
            if not datagrams:
                return
            read += self.handle(datagrams)
            if len(datagrams) < full or not self.open:
                return  # drained (or the port stopped meanwhile)


class GameHostPort(udp.Port):
    """Twisted's UDP port, reading through its protocol's `read_waiting` (a
    `GameHostProtocol`'s batches) instead of one datagram per `datagramReceived`."""

    def doRead(self) -> None:
        self.protocol.read_waiting()
