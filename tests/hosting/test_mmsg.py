"""vinom.hosting.mmsg: many datagrams per recvmmsg call, on real IPv4 sockets."""

from __future__ import annotations

import errno
import socket
import sys

from twisted.trial.unittest import SynchronousTestCase

from vinom.hosting import mmsg
from vinom.hosting.mmsg import BatchReader, batch_reader

LINUX = sys.platform.startswith("linux")


class BatchReaderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.server.close)
        self.server.bind(("127.0.0.1", 0))
        self.server.setblocking(False)
        self.address = self.server.getsockname()
        self.senders = []
        for _ in range(3):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sender.close)
            sender.bind(("127.0.0.1", 0))
            self.senders.append(sender)

    def reader(self, count: int = 8, size: int = 64) -> BatchReader:
        reader = batch_reader(self.server, count, size)
        if reader is None:
            # Only where the C library has no recvmmsg; on Linux it must exist.
            self.assertFalse(LINUX, "recvmmsg should be available on Linux")
            raise self.skipTest("no recvmmsg on this platform")  # type: ignore[misc]
        return reader

    def test_nothing_waiting_is_an_empty_batch(self) -> None:
        self.assertEqual(self.reader().read(self.server.fileno()), [])

    def test_datagrams_come_back_with_their_senders_in_order(self) -> None:
        reader = self.reader()
        sent = []
        for n in range(6):
            sender = self.senders[n % 3]
            data = b"datagram %d " % n + bytes(n * 7)
            sender.sendto(data, self.address)
            sent.append((data, sender.getsockname()))
        self.assertEqual(reader.read(self.server.fileno()), sent)
        self.assertEqual(reader.read(self.server.fileno()), [])

    def test_at_most_count_per_call(self) -> None:
        reader = self.reader(count=4)
        for n in range(10):
            self.senders[0].sendto(b"%d" % n, self.address)
        batches = [reader.read(self.server.fileno()) for _ in range(4)]
        self.assertEqual([len(b) for b in batches], [4, 4, 2, 0])
        self.assertEqual([d for b in batches for d, _ in b], [b"%d" % n for n in range(10)])

    def test_a_long_datagram_is_cut_to_size_like_recvfrom(self) -> None:
        reader = self.reader(size=64)
        self.senders[0].sendto(bytes(range(100)), self.address)
        self.senders[0].sendto(b"short", self.address)
        (first, _), (second, _) = reader.read(self.server.fileno())
        self.assertEqual(first, bytes(range(64)))
        self.assertEqual(second, b"short")

    def test_buffers_are_copied_out(self) -> None:
        """A batch stays intact after the next call reuses the buffers."""
        reader = self.reader()
        self.senders[0].sendto(b"first", self.address)
        batch = reader.read(self.server.fileno())
        self.senders[0].sendto(b"second", self.address)
        reader.read(self.server.fileno())
        self.assertEqual(batch[0][0], b"first")

    def test_failures_raise_oserror(self) -> None:
        reader = self.reader()
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fd = closed.fileno()
        closed.close()
        with self.assertRaises(OSError) as caught:
            reader.read(fd)
        self.assertEqual(caught.exception.errno, errno.EBADF)

    def test_one_reader_per_shape_serves_every_socket(self) -> None:
        reader = self.reader()
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(other.close)
        other.bind(("127.0.0.1", 0))
        self.assertIs(batch_reader(other, 8, 64), reader)
        self.assertIsNot(batch_reader(other, 16, 64), reader)
        self.senders[0].sendto(b"to the first", self.address)
        self.senders[0].sendto(b"to the other", other.getsockname())
        sender = self.senders[0].getsockname()
        self.assertEqual(reader.read(other.fileno()), [(b"to the other", sender)])
        self.assertEqual(reader.read(self.server.fileno()), [(b"to the first", sender)])

    def test_remembered_senders_are_bounded(self) -> None:
        """Sender addresses are remembered, up to MAX_SENDERS; beyond, it starts over
        and still names every sender right."""
        self.reader()  # recvmmsg is here
        reader = BatchReader(8, 64)  # a fresh one: its own memory of senders
        self.patch(mmsg, "MAX_SENDERS", 2)
        for _ in range(2):
            for n, sender in enumerate(self.senders):
                sender.sendto(b"%d" % n, self.address)
            got = reader.read(self.server.fileno())
            self.assertEqual(got, [(b"%d" % n, s.getsockname())
                                   for n, s in enumerate(self.senders)])
            self.assertLessEqual(len(reader._senders), 2)

    def test_not_for_ipv6_sockets(self) -> None:
        """IPv6 peers keep recvfrom (scope ids): no reader for an IPv6 socket."""
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            raise self.skipTest("no IPv6 here") from None  # type: ignore[misc]
        with sock:
            self.assertIsNone(batch_reader(sock, 8, 64))
        self.assertIsNone(batch_reader(self.server, 1, 64))  # a batch of one: recvfrom
