"""What `twistd vinom` checks and says as it starts: secrets read from files, listeners that
fail in one line, and the addresses a person opens.

An operator's mistake at start-up (a port in use, an unusable directory, a
bad option; a fleet's own, such as a Redis that refuses connections) ends the process with one line
naming the option that fixes it: `StartupError`, a `SystemExit` carrying that
line, never a traceback. Once everything listens, `Announcement` logs where to
go: the web client, the dashboard, and the lobby with the certificate to trust.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen
from twisted.application import service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from vinom.server.endpoints import listening_fields

_log = Logger()


class StartupError(SystemExit, Exception):
    """The server cannot start; the message is one line naming what to change.

    A `SystemExit`, so that the process ends with that line and status 1, no
    traceback; and an `Exception` too, because that is what twistd cleans up
    after when the start fails (it removes its pidfile, and tells the parent
    of a daemon why), where a bare `SystemExit` would leave a stale pidfile."""

    def __init__(self, message: str) -> None:
        super().__init__(f"vinom: {message}")


class PluginOptions(usage.Options):
    """The options of a twistd plugin of vinom's (`command`: its name): as usage.Options,
    but under twistd a bad option ends the start with its one-line message (twistd
    itself would print its whole --help before it)."""

    command = "vinom"

    def opt_version(self) -> None:
        """Display vinom's version and build, and Twisted's, and exit."""
        from vinom.server.build import version_line

        print(version_line())
        raise SystemExit(0)

    def read_argv(self, argv: list[str]) -> list[str]:
        """The arguments to parse, from those given (as they are: a subclass may read
        older spellings)."""
        return argv

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            argv = list(sys.argv[1:] if options is None else options)
            super().parseOptions(self.read_argv(argv))
        except usage.UsageError as e:
            # Parsed on its own (tests, tools) the caller reports; as a subcommand of
            # another of vinom's, that one does (naming the subcommand).
            if self.parent is None or isinstance(self.parent, PluginOptions):
                raise
            command = self.command
            if self.subCommand is not None:
                command += f" {self.subCommand}"
            raise StartupError(f"{e} (twistd {command} --help lists the options)") from None


def check_record_dir(directory: str) -> None:
    """That the game hosts can write match records in `directory` (--record-dir): made if
    missing (private, as the game hosts make it: records hold their matches' seeds), and
    a file made and removed in it; else the start ends in one line."""
    import tempfile

    from vinom.hosting.records import RECORD_DIRECTORY_MODE

    try:
        os.makedirs(directory, mode=RECORD_DIRECTORY_MODE, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".vinom-write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StartupError(
            f"cannot write match records in --record-dir {directory!r}: "
            f"{e.strerror or e}; name a directory this server's user may write with "
            "--record-dir, or record nothing with --no-record"
        ) from None


def warn_if_readable(option: str, path: str) -> None:
    """One warning line when a secret's file (or a directory of secrets, the match
    records) may be read by its group or by anyone."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warn(
            "vinom: {option} {path} can be read by others (mode {mode:o}); "
            "make it private: chmod {private} {path}",
            option=option, path=path, mode=stat.S_IMODE(mode),
            private="700" if stat.S_ISDIR(mode) else "600",
        )  # fmt: skip


def read_secret(option: str, path: str) -> str:
    """A password or token kept in a file (one line; surrounding whitespace dropped)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise usage.UsageError(f"{option} {path!r}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise usage.UsageError(f"{option} {path!r} must hold UTF-8 text") from None
    if not text or "\n" in text:
        raise usage.UsageError(f"{option} {path!r} must hold one non-empty line")
    warn_if_readable(option, path)
    return text


def is_loopback(interface: str) -> bool:
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


class Listener(service.Service):
    """Listens on a strports description while running (its endpoint built by
    `serverFromString`, vinom.server.endpoints); a description it cannot build or a
    failure to listen ends the start in one line naming the option that moves it
    (`--ops-port`, `--lobby`, `--websocket`, `--gateway`). `port()` gives the
    listening port.

    It listens in `privilegedStartService` (before twistd gives up root, for a port
    below 1024), or in `startService` when that was not called."""

    def __init__(self, description: str, factory: Any, reactor: Any, option: str) -> None:
        self.description = description
        self.option = option
        try:
            self.endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
        except Exception as e:  # a parser's own word: checked when the options were read
            raise StartupError(f"cannot listen for --{option} on {description!r}: {e}") from None
        self.factory = factory
        self._listening: IListeningPort | Failure | None = None
        self._waiting: list[Deferred[IListeningPort]] = []
        self._in_listen = False

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        listening, self._listening = self._listening, None
        if isinstance(listening, Failure) or listening is None:
            return None
        stopped: Deferred[None] | None = listening.stopListening()
        return stopped

    def port(self) -> Deferred[IListeningPort]:
        """Fires with the listening port once it listens (at once if it does), or fails
        with the reason it could not listen."""
        d: Deferred[IListeningPort] = Deferred()
        if self._listening is None:
            self._waiting.append(d)
        elif isinstance(self._listening, Failure):
            d.errback(self._listening)
        else:
            d.callback(self._listening)
        return d

    def _listen(self) -> None:
        if self._listening is not None:
            return
        # Endpoints that bind a socket (tcp, ssl, unix) answer at once: a failure is
        # raised here, inside twistd's start, as the one line.
        self._in_listen = True
        try:
            self.endpoint.listen(self.factory).addCallbacks(self._listened, self._failed)
        finally:
            self._in_listen = False
        if isinstance(self._listening, Failure):
            failure = self._listening
            raise StartupError(self._reason(failure)) from None

    def _listened(self, port: IListeningPort) -> None:
        self._listening = port
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(port)

    def _failed(self, failure: Failure) -> None:
        self._listening = failure
        if not self._in_listen:  # later than the start: said here, as one line
            _log.error("vinom: {reason}", reason=self._reason(failure))
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(failure)

    def _reason(self, failure: Failure) -> str:
        if isinstance(failure.value, CannotListenError | OSError):
            return self._cannot_listen(failure.value)
        return f"cannot listen for --{self.option}: {failure.getErrorMessage()}"

    def _cannot_listen(self, error: CannotListenError | OSError) -> str:
        if isinstance(error, OSError):
            # Raised as it is by a unix socket's endpoint (the directory of its lock
            # file missing, say), naming that file or another: the description says where.
            positional, named = listening_fields(self.description)
            path = named.get("address", positional[1] if len(positional) > 1 else "")
            unix = positional[0].lower() == "unix"
            where = f"unix socket {path}" if unix else self.description
            reason = error.strerror or str(error)
        else:
            # A unix socket's error carries its path where a TCP one's has its port.
            if isinstance(error.port, bytes | str):
                where = f"unix socket {os.fsdecode(error.port)}"
            else:
                where = f"{error.interface or '*'}:{error.port}"
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        return (
            f"cannot listen on {where} for --{self.option}: {reason.lower()}; "
            f"choose another with --{self.option}"
        )


@frozen
class Address:
    """One line of the start-up announcement: what it is and the listener it is on."""

    label: str
    listener: Listener
    # Makes the line from the host and port a person reaches.
    line: Callable[[str, int], str]


class Announcement(service.Service):
    """Logs, once every listener listens, what runs (`lines`: a log format and its
    fields each) and the addresses a person opens (module docstring). Nothing of it
    is said before: a start that fails to listen has claimed nothing."""

    def __init__(
        self, addresses: list[Address], public_host: str,
        lines: Sequence[tuple[str, Mapping[str, object]]] = (),
    ) -> None:  # fmt: skip
        self.addresses = addresses
        self.public_host = public_host
        self.lines = lines

    def startService(self) -> None:
        super().startService()
        ports = [a.listener.port() for a in self.addresses]
        DeferredList(ports, consumeErrors=True).addCallback(self._announce)

    def _announce(self, results: list[tuple[bool, Any]]) -> None:
        for text, fields in self.lines:
            _log.info(text, **fields)
        for address, (ok, port) in zip(self.addresses, results, strict=True):
            if not ok:
                continue
            bound = port.getHost()
            if isinstance(bound, UNIXAddress):
                # A unix socket (`--ops-port unix:PATH`) has a path, not a host and port:
                # reached on this machine only, by whatever the operator points at it.
                _log.info("vinom: {label}: unix socket {path}", label=address.label,
                          path=os.fsdecode(bound.name or b""))  # fmt: skip
                continue
            host = getattr(bound, "host", "")
            if not host or host in ("0.0.0.0", "::"):
                host = self.public_host
            if ":" in host:
                host = f"[{host}]"
            _log.info("vinom: {label}: {line}", label=address.label,
                      line=address.line(host, bound.port))  # fmt: skip
