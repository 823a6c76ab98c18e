"""What `twistd vinom` checks and says as it starts: secrets read from files, listeners that
fail in one line, a Redis that must answer, and the addresses a person opens.

An operator's mistake at start-up (a port in use, an unusable directory, a
Redis that refuses connections, a bad option) ends the process with one line
naming the option that fixes it: `StartupError`, a `SystemExit` carrying that
line, never a traceback. Once everything listens, `Announcement` logs where to
go: the web client, the dashboard, and the lobby with the certificate to trust.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import ssl
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
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

from vinom.cluster.blocking import ReplyError, ask, error_code
from vinom.cluster.client import parse_redis_url
from vinom.cluster.settings import RedisSettings
from vinom.server.endpoints import listening_fields

_log = Logger()

# How long a starting server waits for its Redis to answer before it gives up:
# long enough for a Redis started alongside it, short enough to say so soon.
REDIS_START_WAIT = 5.0
REDIS_PASSWORD_ENV = "VINOM_REDIS_PASSWORD"
REDIS_SENTINEL_PASSWORD_ENV = "VINOM_REDIS_SENTINEL_PASSWORD"
# Error replies of a Redis that will answer soon: loading its data set at start,
# running a long script, or (cluster) a slot moving.
REDIS_BUSY_REPLIES = frozenset({"LOADING", "BUSY", "TRYAGAIN"})


# The youngest generation's collection threshold for a running server (Python's
# default is 700 allocations). A server's turn allocates a few hundred
# short-lived objects per client (frames, Deferreds, records), most freed by
# reference counting; collecting every 700 allocations traverses the same
# in-flight connections' objects over and over. What the collector must free
# is cyclic: each ended match's host (core, endpoint, router, port) and each
# closed lobby connection, about 65 objects per player in `match`. At 10,000 a
# 2,000-player `match --returning` ran 15 young and 1 middle collections,
# 0.21-0.34 s (6-9% of the server's CPU); at 50,000, 3 young ones, 0.05-0.10 s
# (4 runs each, issue #41), for a few MB of garbage held a little longer.
GC_YOUNG_THRESHOLD = 50_000


def settle_garbage_collection() -> None:
    """Tune the collector for a long-running server, once it has started.

    Everything alive now (modules, classes, the service tree: tens of thousands
    of objects, none of them garbage) moves to the collector's
    permanent generation (`gc.freeze`), so a full collection walks only what
    the server made since; and the youngest generation is collected every
    `GC_YOUNG_THRESHOLD` allocations. Without this, the collector took about a
    tenth of the server's CPU in the `match` benchmark (docs/performance.md).
    Cycles made later are collected as before.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


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


def redis_password(
    path: str | None, environ: Mapping[str, str], *, sentinel: bool = False
) -> str | None:
    """The Redis password of --redis-password-file, else of $VINOM_REDIS_PASSWORD, else None;
    with `sentinel`, the sentinels' of --redis-sentinel-password-file, else of
    $VINOM_REDIS_SENTINEL_PASSWORD, else None."""
    if path is not None:
        option = "--redis-sentinel-password-file" if sentinel else "--redis-password-file"
        return read_secret(option, path)
    return environ.get(REDIS_SENTINEL_PASSWORD_ENV if sentinel else REDIS_PASSWORD_ENV) or None


def redis_settings(
    url: str,
    password_file: str | None = None,
    sentinel_password_file: str | None = None,
    ca_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    user: str | None = None,
) -> RedisSettings:
    """--redis and what goes with it (password, sentinel password, CA files, the ACL user),
    as `twistd vinom` reads them; raises `usage.UsageError` saying which is wrong."""
    if environ is None:
        environ = os.environ  # read now: a test, or a caller, may have replaced it
    try:
        settings = parse_redis_url(url)
    except ValueError as e:
        raise usage.UsageError(f"--redis: {e}") from None
    password = redis_password(password_file, environ)
    if password is not None:
        settings = attrs.evolve(settings, password=password)
    if user is not None:
        if not user or any(c.isspace() for c in user):
            raise usage.UsageError(f"--redis-user must be a Redis ACL user's name, not {user!r}")
        if settings.password is None:
            raise usage.UsageError("--redis-user needs the user's password: "
                                   "--redis-password-file or $VINOM_REDIS_PASSWORD")
        settings = attrs.evolve(settings, username=user)
    if settings.sentinels:
        sentinel_password = redis_password(sentinel_password_file, environ, sentinel=True)
        settings = attrs.evolve(settings, sentinel_password=sentinel_password)
    elif sentinel_password_file is not None:
        raise usage.UsageError("--redis-sentinel-password-file is for a redis+sentinel:// --redis")
    if ca_file is not None:
        if not settings.tls:
            raise usage.UsageError("--redis-ca-file is for a rediss:// (TLS) --redis")
        settings = attrs.evolve(settings, ca_file=ca_file)
        try:
            settings.tls_options()
        except ValueError as e:
            raise usage.UsageError(f"--redis-ca-file {e}") from None
    return settings


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


def check_redis(
    settings: RedisSettings,
    wait: float = REDIS_START_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
) -> None:
    """Block until the Redis of `settings` answers PING (after AUTH, over TLS for
    rediss://), trying for `wait` seconds; else raise StartupError saying why. With
    Sentinel (redis+sentinel://), the sentinels are asked where the master is first,
    and the server they name must answer as a master; the master found is logged.

    Run before the reactor starts: a Redis that refuses connections is one clear
    line and a non-zero exit, not a server that logs reconnection attempts. `sleep`
    and `now` are the clock it waits on (a test's)."""
    deadline = now() + wait
    while True:
        if settings.sentinels:
            found, trouble = _sentinel_trouble(settings)
        else:
            found, trouble = None, _redis_trouble(settings)
        if trouble is None:
            if found is not None:
                _log.info("vinom: Redis Sentinel: master {name} is at {found}",
                          name=settings.master_name, found=found)  # fmt: skip
            return
        refused, why = trouble
        if refused:
            raise StartupError(f"Redis at {settings.url} {why}; correct --redis and its options")
        if now() >= deadline:
            raise StartupError(
                f"Redis at {settings.url} did not answer for {wait:g} s ({why}); start it "
                "or correct --redis"
            )
        sleep(0.25)


def _sentinel_trouble(settings: RedisSettings) -> tuple[str | None, tuple[bool, str] | None]:
    """(where the master is and which sentinel named it, None) if a sentinel names a master
    that answers as one; else (None, trouble) as `_redis_trouble` gives it."""
    # What went wrong -> whether it is final, and the sentinels it went wrong with.
    troubles: dict[str, tuple[bool, list[str]]] = {}

    def note(refused: bool, why: str, sentinel: str) -> None:
        troubles.setdefault(why, (refused, []))[1].append(sentinel)

    question = [b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", (settings.master_name or "").encode()]
    for host, port in settings.sentinels:
        sentinel = _address(host, port)
        password = settings.sentinel_password
        try:
            reply = _ask(settings, (host, port), password, question)
        except (OSError, ValueError) as e:
            note(False, str(getattr(e, "strerror", None) or e), sentinel)
            continue
        if isinstance(reply, ReplyError):
            text = str(reply)
            if error_code(reply) in ("NOAUTH", "WRONGPASS") or text.startswith("ERR AUTH"):
                return None, (True, f"refused the connection: {text} (asked sentinel "
                                    f"{sentinel}; the sentinels' own password is given with "
                                    "--redis-sentinel-password-file or "
                                    f"${REDIS_SENTINEL_PASSWORD_ENV})")  # fmt: skip
            note(False, text, sentinel)
            continue
        if not isinstance(reply, list) or len(reply) != 2:
            note(True, f"knows no master named {settings.master_name!r}", sentinel)
            continue
        master = (reply[0], int(reply[1]))
        trouble = _redis_trouble(settings, master, role=True)
        if trouble is None:
            return f"{_address(*master)} (named by the sentinel at {sentinel})", None
        refused, why = trouble
        which = why if refused else f"does not answer as a master ({why})"
        note(refused, f"names master {_address(*master)}, which {which}", sentinel)
    # Final only when every sentinel's answer is (none is down, none mid-failover).
    final = all(refused for refused, _ in troubles.values())

    def sentinels(addresses: list[str]) -> str:
        return f"sentinel{'s' if len(addresses) > 1 else ''} {', '.join(addresses)}"

    if final:
        text = "; ".join(f"{why} (asked {sentinels(at)})" for why, (_, at) in troubles.items())
    else:
        text = "; ".join(f"{sentinels(at)}: {why}" for why, (_, at) in troubles.items())
    return None, (final, text)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ask(
    settings: RedisSettings, address: tuple[str, int], password: str | None,
    *commands: list[bytes], username: str | None = None,
) -> Any:  # fmt: skip
    """AUTH (with `password`, as `username` when given) then `commands` on a connection of
    their own (TLS for rediss://); the last reply, or the first error reply (a
    `ReplyError`)."""
    tls = ssl.create_default_context(cafile=settings.ca_file) if settings.tls else None
    return ask(address, *commands, password=password, timeout=settings.timeout, tls=tls,
               username=username)  # fmt: skip


def _redis_trouble(
    settings: RedisSettings, address: tuple[str, int] | None = None, role: bool = False
) -> tuple[bool, str] | None:
    """None if Redis (at `address`, else the settings') answers PING, and with `role`
    answers ROLE as a master; else whether it refused (no use trying again) and what
    went wrong, in a few words. A Redis still loading its data set or busy with a
    script answers -LOADING or -BUSY: worth asking again; so is a replica (a failover
    is under way)."""
    commands = [[b"PING"], *([[b"ROLE"]] if role else [])]
    try:
        reply = _ask(settings, address or (settings.host, settings.port), settings.password,
                     *commands, username=settings.username)  # fmt: skip
    except ssl.SSLCertVerificationError as e:
        return True, f"presented a certificate that is not trusted ({e.verify_message})"
    except (OSError, ValueError) as e:
        return False, str(getattr(e, "strerror", None) or e)
    if isinstance(reply, ReplyError):
        if error_code(reply) in REDIS_BUSY_REPLIES:
            return False, str(reply)
        return True, f"refused the connection: {reply}"
    if role and not (isinstance(reply, list) and reply and reply[0] == "master"):
        return False, f"ROLE answers {reply[0] if isinstance(reply, list) else reply}"
    return None


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
