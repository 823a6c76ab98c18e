"""One Redis conversation on a blocking socket of its own, before a reactor runs.

The start-up check of `twistd vinom` (vinom.server.startup) asks Redis, or its
sentinels, whether it answers before the reactor starts, and the tests' and
benchmarks' Sentinel launchers ask the sentinels which server is the master:
neither has a reactor to run txredisapi on. `ask` opens a connection (TLS with a
context), sends each command in turn and returns the last reply, parsed by
hiredis's reader (a bulk string as `str`; an error reply returned, not raised,
as a `hiredis.ReplyError`, so that a caller reads its code).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import hiredis

ReplyError = hiredis.ReplyError


def encode(words: Sequence[bytes | str]) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings."""
    encoded = [w.encode() if isinstance(w, str) else w for w in words]
    return b"*%d\r\n" % len(encoded) + b"".join(
        b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded
    )


def error_code(reply: object) -> str | None:
    """The code of an error reply (`LOADING`, `NOAUTH`, ...), None for any other."""
    return str(reply).split(" ", 1)[0] if isinstance(reply, ReplyError) else None


def ask(
    address: tuple[str, int],
    *commands: Sequence[bytes | str],
    password: str | None = None,
    timeout: float = 2.0,
    tls: ssl.SSLContext | None = None,
    username: str | None = None,
) -> Any:
    """AUTH with `password` (if any; as `username` when given), then `commands` in turn, at
    `address`; the last
    reply, or the first error reply. Raises OSError (ssl.SSLError included) when the
    connection fails or closes before a whole reply, ValueError when what comes back
    is not the Redis protocol."""
    auth: list[Sequence[bytes | str]] = [] if password is None else [
        ("AUTH", password) if username is None else ("AUTH", username, password)]
    with socket.create_connection(address, timeout=timeout) as raw:
        conn: socket.socket = raw
        if tls is not None:
            conn = tls.wrap_socket(raw, server_hostname=address[0])
        reader = hiredis.Reader(encoding="utf-8", errors="replace")
        reply: Any = None
        for words in [*auth, *commands]:
            conn.sendall(encode(words))
            reply = _read(conn, reader)
            if isinstance(reply, ReplyError):
                return reply
        return reply


def _read(conn: socket.socket, reader: Any) -> Any:
    try:
        reply = reader.gets()
        while reply is False:
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
    except hiredis.ProtocolError as e:
        raise ValueError(f"not a Redis reply ({e})") from None
    return reply
