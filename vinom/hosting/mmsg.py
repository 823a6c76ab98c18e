"""Many datagrams from a UDP socket with one system call: Linux's `recvmmsg`, through ctypes.

A game host reads every datagram with its own `recvfrom` otherwise: about
2.4 us each on the reference machine, and one more failed call (an
exception, about 2 us) to learn that the socket is empty. `recvmmsg` returns
all the datagrams waiting (up to `count`) for about 1 us each including the
Python that copies them out, and a short batch tells that the socket is
drained without asking again. (Its sending twin, `sendmmsg`, measured no
faster than `sendto` here: on loopback the kernel's per-datagram work, not
the system call, is what a send costs.)

Only for IPv4 sockets: an IPv6 peer's address would come back without the
scope id that `recvfrom` gives link-local addresses, so IPv6 hosts keep
`recvfrom`. Where the C library has no `recvmmsg` (macOS, Windows),
`batch_reader` returns None and the host reads one datagram at a time.

The buffers are filled by the kernel and copied out before `read` returns,
so one reader can serve every socket of a process from one thread (the
reactor's): `batch_reader` hands out one shared reader per batch shape, so
that a host started per match does not build 128 KiB of buffers and 64
ctypes headers each time (a tenth of the server's CPU in the match
benchmark when it did).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import sys
from typing import Any

# recvmmsg's flag: return at once when nothing is waiting (the socket may be
# blocking; Twisted's ports are not, but say it anyway).
_MSG_DONTWAIT = 0x40
_SOCKADDR_IN = 16
_NAME_WORDS = _SOCKADDR_IN // 8
# Sender addresses a reader remembers (about 150 bytes each) before it starts over.
MAX_SENDERS = 16384


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _load_recvmmsg() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p,
    ]  # fmt: skip
    function.restype = ctypes.c_int
    return function


_recvmmsg = _load_recvmmsg()


class BatchReader:
    """Reads up to `count` datagrams of up to `size` bytes each per call (module docstring).

    A datagram longer than `size` comes back cut to `size` bytes, as with
    `recvfrom(size)`.
    """

    def __init__(self, count: int, size: int) -> None:
        if _recvmmsg is None:
            raise RuntimeError("recvmmsg is not available here")
        self.count = count
        self.size = size
        self._data = ctypes.create_string_buffer(count * size)
        self._names = ctypes.create_string_buffer(count * _SOCKADDR_IN)
        self._iovecs = (_IoVec * count)()
        self._headers = (_MMsgHdr * count)()
        data_base = ctypes.addressof(self._data)
        names_base = ctypes.addressof(self._names)
        for i in range(count):
            iov = self._iovecs[i]
            iov.iov_base = data_base + i * size
            iov.iov_len = size
            header = self._headers[i].msg_hdr
            header.msg_name = names_base + i * _SOCKADDR_IN
            # Every address of an IPv4 socket is a sockaddr_in: the length the
            # kernel writes back is the one given, so it never needs resetting.
            header.msg_namelen = _SOCKADDR_IN
            header.msg_iov = ctypes.pointer(iov)
            header.msg_iovlen = 1
        self._headers_address = ctypes.addressof(self._headers)
        # The first 8 bytes of each sockaddr_in (family, port, address) as one
        # integer: the key senders are remembered by, without a slice per datagram.
        self._name_words = memoryview(self._names).cast("B").cast("Q")
        # Each msg_len read through a view of the headers as 32-bit words: indexing
        # the ctypes array would build a structure object per datagram.
        self._lengths = memoryview(self._headers).cast("B").cast("I")
        stride = ctypes.sizeof(_MMsgHdr) // 4
        first = _MMsgHdr.msg_len.offset // 4
        # Per slot: where its data starts, its sender's key word, its length word.
        self._slots = [(i * size, i * _NAME_WORDS, first + i * stride) for i in range(count)]
        # Senders by their raw port and address: a game host hears from the same
        # few hundred peers over and over. Bounded, against spoofed floods.
        self._senders: dict[int, tuple[str, int]] = {}

    def read(self, fd: int) -> list[tuple[bytes, tuple[str, int]]]:
        """The datagrams waiting on `fd` with their senders; [] if none.

        OSError for any failure but "nothing waiting" (ECONNREFUSED, for one: an
        ICMP refusal of an earlier send, reported on a read).
        """
        n = _recvmmsg(fd, self._headers_address, self.count, _MSG_DONTWAIT, None)
        if n <= 0:
            if n == 0:
                return []
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return []
            raise OSError(code, "recvmmsg: " + errno.errorcode.get(code, str(code)))
        # A c_char array: a slice of it is bytes, copied once (typeshed says a list).
        data: Any = self._data
        names = self._name_words
        lengths = self._lengths
        senders = self._senders
        out: list[tuple[bytes, tuple[str, int]]] = []
        append = out.append
        for start, name, length in self._slots[:n]:
            key = names[name]
            sender = senders.get(key)
            if sender is None:
                sender = self._sender(key)
            append((data[start : start + lengths[length]], sender))
        return out

    def _sender(self, key: int) -> tuple[str, int]:
        senders = self._senders
        if len(senders) >= MAX_SENDERS:
            senders.clear()
        raw = key.to_bytes(8, sys.byteorder)  # family, port (big-endian), address
        sender = senders[key] = (socket.inet_ntoa(raw[4:]), (raw[2] << 8) | raw[3])
        return sender


_shared: dict[tuple[int, int], BatchReader] = {}


def batch_reader(sock: socket.socket, count: int, size: int) -> BatchReader | None:
    """The process's reader for `sock` where recvmmsg can serve it (IPv4, Linux), else
    None. Readers are shared (see the module docstring): use them from the reactor's
    thread only."""
    if _recvmmsg is None or sock.family != socket.AF_INET or count < 2:
        return None
    reader = _shared.get((count, size))
    if reader is None:
        reader = _shared[count, size] = BatchReader(count, size)
    return reader
