"""The settings of the Redis wing, in one place, with one validator.

`RedisSettings` is where Redis is and how the process's pool talks to it
(`key_prefix` starts every key). The matchmaker, the party store and the
placement channel each have settings of their own, because each has its own
timings; their key namespaces (`prefix`, which the part follows with `:`) sit
under `key_prefix` (`twistd vinom` gives them `<key_prefix>mm` and
`<key_prefix>party`), and every TTL and interval is in seconds and positive
(`positive`). Nothing here imports txredisapi (which installs the default
reactor), so settings can be built before the reactor is chosen.
"""

from __future__ import annotations

from typing import Any

from attrs import field, frozen, validators


def positive(instance: object, attribute: Any, value: float) -> None:
    """An attrs validator: `value` must be above zero."""
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_PREFIX = "vinom:"


def _host_url(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@frozen
class RedisSettings:
    """Where Redis is and how vinom talks to it.

    `timeout` bounds connecting, each reply and each whole call (waiting for a
    free connection included), in seconds. With `tls` (a `rediss://` URL) every
    connection is TLS, and Redis's certificate must be issued for `host` by a
    certificate in `ca_file` (PEM), or by one the system trusts when there is none.

    With `sentinels` (a `redis+sentinel://` URL) `host` and `port` are unused:
    the master is the one the sentinels name `master_name`, asked before every
    connection, so that the process follows a failover. `password` is the
    master's (and its replicas'); the sentinels ask for `sentinel_password`
    (their own `requirepass`), or for none.
    """

    host: str = "127.0.0.1"
    port: int = field(default=DEFAULT_PORT, validator=validators.and_(
        validators.ge(1), validators.le(65535)))  # fmt: skip
    db: int = field(default=0, validator=validators.ge(0))
    # Kept out of repr so that logging the settings never logs the password.
    password: str | None = field(default=None, repr=False)
    # The Redis ACL user the password is of (AUTH user password); None: Redis's `default`.
    username: str | None = None
    pool_size: int = field(default=4, validator=positive)
    timeout: float = field(default=2.0, validator=positive)
    key_prefix: str = DEFAULT_PREFIX
    tls: bool = False
    ca_file: str | None = None
    # Redis Sentinel: (host, port) of each sentinel, and the name of the master they watch.
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if bool(self.sentinels) != (self.master_name is not None):
            raise ValueError("sentinels and master_name go together")
        if self.sentinels and self.tls:
            raise ValueError("TLS through Sentinel is not supported")

    @property
    def url(self) -> str:
        """The settings as a URL, without the password."""
        if self.sentinels:
            hosts = ",".join(_host_url(host, port) for host, port in self.sentinels)
            return f"redis+sentinel://{hosts}/{self.master_name}/{self.db}"
        return f"{'rediss' if self.tls else 'redis'}://{_host_url(self.host, self.port)}/{self.db}"

    def tls_options(self) -> Any:
        """The client TLS options of a `rediss://` connection (None without TLS): Redis's
        certificate is verified against `ca_file`, else the system's trusted roots.

        Raises ValueError when `ca_file` cannot be read or holds no PEM certificate.
        """
        if not self.tls:
            return None
        import OpenSSL.crypto
        from twisted.internet.ssl import (
            Certificate,
            optionsForClientTLS,
            trustRootFromCertificates,
        )

        if self.ca_file is None:
            return optionsForClientTLS(self.host)
        try:
            with open(self.ca_file, "rb") as handle:
                pem = handle.read()
        except OSError as error:
            raise ValueError(f"{self.ca_file!r}: {error.strerror}") from None
        end = b"-----END CERTIFICATE-----"
        blocks = [block + end for block in pem.split(end) if b"-----BEGIN" in block]
        try:
            roots = [Certificate.loadPEM(block) for block in blocks]
        except (OpenSSL.crypto.Error, ValueError):  # a block that is not a certificate
            roots = []
        if not roots:
            raise ValueError(f"{self.ca_file!r} holds no PEM certificate")
        return optionsForClientTLS(self.host, trustRoot=trustRootFromCertificates(roots))


@frozen
class RedisMatchmakerSettings:
    """How a `RedisMatchmaker` uses Redis; the defaults suit a production lobby."""

    prefix: str = DEFAULT_PREFIX + "mm"
    # A lobby's lease: its tickets are matched only while it holds it (and its
    # presence connection is open), and dropped once it has lapsed, this long
    # after the lobby last renewed it. Several times `tick_every`.
    lobby_lease: float = field(default=3.0, validator=positive)
    # Heartbeat (renewing the lease), and a matching pass over every queue, this often.
    tick_every: float = field(default=1.0, validator=positive)
    # No call waits longer for Redis.
    call_timeout: float = field(default=5.0, validator=positive)
    # Matches one pass may form; a pass that forms as many runs again at once.
    matches_per_pass: int = field(default=64, validator=positive)
    # The oldest tickets of a ranked queue one pass considers; in a normal queue,
    # how many unmatched tickets (parties that fit no match yet) a pass reads past.
    ranked_scan_limit: int = field(default=500, validator=positive)
    # How long a matched ticket is remembered, so it is never put back.
    matched_memory: float = field(default=120.0, validator=positive)
    # Matches kept in the log a reconnecting lobby reads what it missed from.
    match_log_length: int = field(default=10_000, validator=positive)
    # The most tickets one enqueue call carries (one script run: Redis runs
    # nothing else meanwhile, so this bounds how long it waits on one call).
    enqueue_batch: int = field(default=128, validator=positive)
    # The party store's prefix (RedisPartySettings.prefix): a party's ticket is
    # matched only while the lobby holding each of its members is live.
    party_prefix: str = DEFAULT_PREFIX + "party"
    # The watch guard's key (vinom.cluster.watch: `<key_prefix>watch`).
    watch_key: str = DEFAULT_PREFIX + "watch"
    # The placement channel's prefix (vinom.cluster.channel): a lobby a player
    # reconnects through while their match is placed joins the match's followers.
    placement_prefix: str = DEFAULT_PREFIX

    def __attrs_post_init__(self) -> None:
        # A lease renewed less often than it lasts would lapse between renewals.
        if not self.lobby_lease > self.tick_every:
            raise ValueError(
                f"lobby_lease ({self.lobby_lease:g} s) must be longer than tick_every "
                f"({self.tick_every:g} s), which renews it"
            )


DEFAULT_MATCHMAKER = RedisMatchmakerSettings()


@frozen
class RedisPartySettings:
    """How a `RedisPartyStore` uses Redis; `prefix` starts every key it writes."""

    prefix: str = DEFAULT_PREFIX + "party"
    # A party's keys (and a member's) lapse this long after their last refresh.
    party_ttl: float = field(default=60.0, validator=positive)
    refresh_every: float = field(default=15.0, validator=positive)
    # How often a lobby looks for members of its players' parties whose lobby's
    # lease has lapsed (they are taken out of their party, told as `left`).
    check_every: float = field(default=1.0, validator=positive)
    # The watch guard's key (vinom.cluster.watch: `<key_prefix>watch`): a lapsed lease
    # counts once Redis has been watched for the lobbies' lease and tick.
    watch_key: str = DEFAULT_PREFIX + "watch"


DEFAULT_PARTIES = RedisPartySettings()


# Which game host with a free slot reads a request first (--placement): `spread` the
# least loaded, `pack` the most loaded (fewest hosts busy: idle ones can be scaled
# down, docs/kubernetes.md).
PLACEMENTS = ("spread", "pack")


@frozen
class PlacementSettings:
    """Timings of the placement channel, in seconds; the same in every process."""

    # Every lobby's bound on one match's placement, from when it heard the match: the
    # request waits this long in its realm's stream for a host with a free slot.
    place_timeout: float = field(default=20.0, validator=positive)
    # A request a host read and did not place for this long is taken by another host
    # (`XCLAIM`): its reader died or is paused (its registration gone). Longer than a
    # match takes to start.
    claim_after: float = field(default=6.0, validator=positive)
    # How often a lobby re-reads the live hosts (and ends the matches of departed ones).
    refresh_every: float = field(default=0.5, validator=positive)
    # A host renews its registration this often (its heartbeat).
    heartbeat_every: float = field(default=0.5, validator=positive)
    # A host's registration lapses this long after its last heartbeat: it is dead, and
    # its matches are ended (`host_crashed`). Long enough that a host stalled for up
    # to host_ttl - heartbeat_every (2.5 s) keeps its healthy matches.
    host_ttl: float = field(default=3.0, validator=positive)
    # A host not heard from for this long gets no new match (it may be dead; one that
    # only stalled gets matches again with its next heartbeat).
    silent_after: float = field(default=1.0, validator=positive)
    # A host whose registration lapsed but whose presence connection is still open (a
    # paused process: SIGSTOP, a VM pause, a long collection) is departed only once it
    # has been silent this long: as long as the players' --limit reconnect-grace, which holds
    # their seats for as long. A killed host's connections close at once: no wait.
    stall_grace: float = field(default=30.0, validator=positive)
    # Lifetime of the outcome, requested-marker and request-stream keys.
    key_ttl: float = field(default=120.0, validator=positive)


DEFAULT_PLACEMENT = PlacementSettings()
