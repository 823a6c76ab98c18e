"""A fleet on Redis: its settings as `twistd vinom --redis` reads them, and the check that
the Redis answers before a server starts.

`redis_settings` reads --redis and the files that go with it (password,
sentinel password, CA, ACL user), each mistake one `usage.UsageError`;
`check_redis` blocks until the Redis (or the master its sentinels name)
answers, so that a Redis that refuses connections is one line and a non-zero
exit (`vinom.server.startup.StartupError`), not a server logging reconnections.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.python import usage

from vinom.cluster.client import parse_redis_url
from vinom.cluster.settings import RedisSettings
from vinom.server.checks import needs_extra
from vinom.server.startup import StartupError, read_secret

_log = Logger()

# How long a starting server waits for its Redis to answer before it gives up:
# long enough for a Redis started alongside it, short enough to say so soon.
REDIS_START_WAIT = 5.0
REDIS_PASSWORD_ENV = "VINOM_REDIS_PASSWORD"
REDIS_SENTINEL_PASSWORD_ENV = "VINOM_REDIS_SENTINEL_PASSWORD"
# Error replies of a Redis that will answer soon: loading its data set at start,
# running a long script, or (cluster) a slot moving.
REDIS_BUSY_REPLIES = frozenset({"LOADING", "BUSY", "TRYAGAIN"})


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
    as `twistd vinom` reads them; raises `usage.UsageError` saying which is wrong, or
    that vinom's cluster extra is not installed."""
    needs_extra("--redis", "cluster", "txredisapi", "hiredis")
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

    from vinom.cluster.blocking import ReplyError, error_code

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
    # hiredis's (the cluster extra's): this module is loaded with the fleet's options,
    # which every `twistd vinom` reads, the extra installed or not.
    from vinom.cluster.blocking import ask

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
    from vinom.cluster.blocking import ReplyError, error_code

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
