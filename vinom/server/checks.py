"""The checks behind `twistd vinom`'s options: each option's coerce column and the
checks of values that need more than the option's text (certificates,
games, the public URL).

A coercer takes the option's name and its text and returns its value, or raises
usage.UsageError saying what is wrong in one line ("--limit frame-rate must be a
number greater than 0, not '0'"); `param` binds the name into an option's row,
`limit` into a row of `--limit NAME=VALUE`.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import ipaddress
import math
import os
import re
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.ssl import PrivateCertificate
from twisted.python import usage

from vinom.errors import UnknownGame
from vinom.games.registry import GameRegistry
from vinom.matchmaking.windows import RatingWindow
from vinom.protocol.address import HostAddress
from vinom.protocol.tokens import MAX_TIMEOUT_MS, token_host_bytes
from vinom.server.endpoints import endpoint_port, is_tls
from vinom.server.startup import warn_if_readable

TOKEN_KEY_BYTES = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def needs_extra(option: str, extra: str, *modules: str) -> None:
    """A UsageError, one line naming vinom's `extra` (setup.py, extras_require), where
    `option` was given and one of the `modules` that extra installs is not. Looked up,
    not imported: txredisapi installs the global reactor when it is imported."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise usage.UsageError(
            f"{option} needs vinom's {extra} extra ({missing[0]} is not installed): "
            f"pip install 'vinom[{extra}]'"
        )


def parse_port_range(text: str, option: str = "--udp-ports") -> tuple[int, int]:
    """'7400-7499' -> (7400, 7499); a single port 'N' is the range N-N."""
    first, sep, last = text.strip().partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise usage.UsageError(
            f"{option} must look like 7400-7499 (first-last), not {text!r}"
        ) from None
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        raise usage.UsageError(f"{option}: ports must be within 1-65535, not {text!r}")
    if low > high:
        raise usage.UsageError(f"{option}: the range {text!r} is inverted (first > last)")
    return low, high


def read_token_key(path: str, option: str = "--token-key-file") -> bytes:
    """A shared key (the connect-token key, the relay key): 32 bytes, raw, hex or base64."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise usage.UsageError(f"{option} {path!r}: {e.strerror}") from None
    warn_if_readable(option, path)
    if len(raw) == TOKEN_KEY_BYTES:
        return raw
    text = raw.strip()
    for decode in (binascii.unhexlify, base64.b64decode):
        try:
            key = decode(text)
        except (binascii.Error, ValueError):
            continue
        if len(key) == TOKEN_KEY_BYTES:
            return key
    raise usage.UsageError(
        f"{option} {path!r} must hold {TOKEN_KEY_BYTES} bytes (raw, hex or base64)"
    )


def relay_address(name: str, value: str) -> tuple[str, range]:
    """'HOST:PORT' or 'HOST:FIRST-LAST' (IPv6 in brackets): a UDP relay's public address."""
    text = value.strip()
    host, sep, ports = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        low, high = parse_port_range(ports, f"--{name}")
    except usage.UsageError:
        low = high = 0  # said below as this option's one line
    if not sep or not host or not low:
        raise usage.UsageError(
            f"--{name} must look like relay.example.com:7800 or HOST:7800-7809, not {value!r}"
        )
    return public_host(name, host), range(low, high + 1)


# -- the coerce column: each takes the option's name and its text, and returns its value
# or raises usage.UsageError saying what is wrong in one line.

Coercer = Callable[[str, str], Any]


def param(
    name: str, short: str | None, default: Any, doc: str, coerce: Coercer | None = None
) -> list[Any]:
    """One row of `optParameters`, its coerce column bound to the option's name."""
    row = [name, short, default, doc]
    return row if coerce is None else [*row, partial(coerce, name)]


def limit(name: str, default: Any, doc: str, coerce: Coercer) -> list[Any]:
    """One row of a group's `optLimits`: a value given as `--limit NAME=VALUE`, whose
    coerce column says what is wrong as `--limit NAME ...` in one line."""
    return [name, None, default, doc, partial(coerce, f"limit {name}")]


def positive_int(name: str, value: str) -> int:
    number = _whole(name, value)
    if number < 1:
        raise usage.UsageError(f"--{name} must be at least 1, not {number}")
    return number


def udp_port(name: str, value: str) -> int:
    """A UDP port to listen on, 1-65535."""
    number = _whole(name, value)
    if not 0 < number < 65536:
        raise usage.UsageError(f"--{name} must be a port from 1 to 65535, not {number}")
    return number


def non_negative_int(name: str, value: str) -> int:
    number = _whole(name, value)
    if number < 0:
        raise usage.UsageError(f"--{name} must be at least 0, not {number}")
    return number


def _whole(name: str, value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a whole number, not {value!r}") from None


def positive_float(name: str, value: str) -> float:
    number = _number(name, value)
    if not (number > 0 and math.isfinite(number)):
        raise usage.UsageError(f"--{name} must be a number greater than 0, not {value!r}")
    return number


def non_negative_float(name: str, value: str) -> float:
    number = _number(name, value)
    if not (number >= 0 and math.isfinite(number)):
        raise usage.UsageError(f"--{name} must be a number of at least 0, not {value!r}")
    return number


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None


def choice(values: Sequence[str]) -> Coercer:
    """A coercer that takes one of `values`."""

    def coerce(name: str, value: str) -> str:
        if value not in values:
            raise usage.UsageError(f"--{name} must be one of {', '.join(values)}, not {value!r}")
        return value

    return coerce


def session_timeout(name: str, value: str) -> float:
    seconds = positive_float(name, value)
    if seconds * 1000 > MAX_TIMEOUT_MS:
        raise usage.UsageError(f"--{name} must be at most {MAX_TIMEOUT_MS // 1000} seconds")
    return seconds


def existing_file(name: str, value: str) -> str:
    if not os.path.isfile(value):
        raise usage.UsageError(f"--{name} {value!r}: no such file")
    return value


def directory(name: str, value: str) -> str:
    if not value.strip():
        raise usage.UsageError(f"--{name} must name a directory (empty here)")
    return value


def public_host(name: str, value: str) -> str:
    """The address put into connect tokens: an IP address or an ASCII (IDNA) host name."""
    host = value.strip()
    try:
        token_host_bytes(HostAddress(host, 1))
    except ValueError as e:
        raise usage.UsageError(f"--{name} {host!r}: {e}") from None
    return host


def bind_address(name: str, value: str) -> str:
    if value and not (isIPAddress(value) or isIPv6Address(value)):
        raise usage.UsageError(f"--{name} must be an IP address to bind to, not {value!r}")
    return value


def game_url(public_web_url: str | None, websocket: str | None, public_host: str) -> str | None:
    """The public URL of this process's `/game` WebSocket (match_found's `game_url`), or
    None when there is none (`--websocket none`) or it cannot be known (plain HTTP or
    port 0 without --public-web-url)."""
    if public_web_url is not None:
        if websocket is None:
            raise usage.UsageError("--public-web-url needs the web server (--websocket)")
        parts = urlsplit(public_web_url.strip())
        scheme = WEB_SCHEMES.get(parts.scheme.lower())
        try:
            port = parts.port
        except ValueError:
            port = None
            scheme = None
        if scheme is None or not parts.hostname or parts.fragment:
            raise usage.UsageError(
                f"--public-web-url must look like wss://games.example.com[:port][/prefix]"
                f"[?query], not {public_web_url!r}"
            )
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        netloc = host if port is None else f"{host}:{port}"
        # A query stays on game_url: a gateway may route on it (docs/gateway.md, by_query).
        query = f"?{parts.query}" if parts.query else ""
        return f"{scheme}://{netloc}{parts.path.rstrip('/')}/game{query}"
    if websocket is None or not is_tls(websocket):
        return None
    port = endpoint_port(websocket)
    if not port:
        return None
    host = f"[{public_host}]" if isIPv6Address(public_host) else public_host
    return f"wss://{host}:{port}/game"


# The schemes --public-web-url takes, and the WebSocket scheme each means.
WEB_SCHEMES = {"wss": "wss", "https": "wss", "ws": "ws", "http": "ws"}


def check_certificate(certificate: str, private_key: str) -> None:
    """The certificate and key must be PEM and belong together: say so before listening,
    in one line naming the file and what is wrong with it."""
    cert_pem = _read_pem_file("--certificate", certificate)
    key_pem = _read_pem_file("--private-key", private_key)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise usage.UsageError(
            f"--certificate {certificate!r} holds no PEM certificate (a "
            f"'-----BEGIN CERTIFICATE-----' block){_der_hint(certificate, cert_pem, 'x509')}"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:  # cryptography's word for a key that needs a password
        raise usage.UsageError(
            f"--private-key {private_key!r} is encrypted: the server cannot ask for its "
            f"passphrase; give it decrypted (openssl pkey -in {private_key} -out KEY.pem)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise usage.UsageError(
            f"--private-key {private_key!r} holds no PEM private key (a "
            f"'-----BEGIN PRIVATE KEY-----' block){_der_hint(private_key, key_pem, 'pkey')}"
        ) from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise usage.UsageError(
            f"--certificate {certificate!r} and --private-key {private_key!r} do not belong "
            "together: the key is not the certificate's"
        )
    try:
        PrivateCertificate.loadPEM(key_pem + b"\n" + cert_pem).options()
    except SSL.Error as e:  # PEM that OpenSSL will not serve with (a key too small, ...)
        raise usage.UsageError(
            f"--certificate {certificate!r} / --private-key {private_key!r}: OpenSSL "
            f"refuses them ({_openssl_reasons(e)})"
        ) from None


def _read_pem_file(option: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise usage.UsageError(f"{option} {path!r}: {e.strerror or e}") from None


def _der_hint(path: str, data: bytes, kind: str) -> str:
    """What to run when `data` is the binary (DER) form of what was asked for."""
    try:
        if kind == "x509":
            x509.load_der_x509_certificate(data)
        else:
            serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return ""
    return f"; it is DER, convert it: openssl {kind} -inform der -in {path} -out PEM_FILE"


def _openssl_reasons(error: SSL.Error) -> str:
    # pyOpenSSL's errors carry a list of (library, function, reason) from OpenSSL's queue.
    reasons = [str(entry[-1]) for entry in (error.args[0] if error.args else [])
               if isinstance(entry, tuple) and entry]  # fmt: skip
    return "; ".join(reasons) or str(error)


def offered_games(names: str | None) -> GameRegistry:
    """The games --games names (all offered by default if None), from the installed plugins."""
    installed = GameRegistry.from_plugins()
    if names is None:
        offered = installed.offered()
    else:
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        if not wanted:
            raise usage.UsageError("--games needs at least one game name")
        try:
            offered = installed.offered(wanted)
        except UnknownGame as error:
            raise usage.UsageError(
                f"--games: no game {error.args[0]!r} (installed: {', '.join(installed.names())})"
            ) from None
    if not len(offered):
        raise usage.UsageError("no game to offer: install a game plugin or name one in --games")
    return offered


def match_size_overrides(registry: GameRegistry, sizes: dict[str, int]) -> dict[str, int]:
    """--match-size overrides, each within its game's player range."""
    for name, size in sizes.items():
        if name not in registry:
            raise usage.UsageError(
                f"--match-size {name}={size}: no game {name!r} (offered: "
                f"{', '.join(registry.names())})"
            )
        game = registry.get(name)
        if not game.min_players <= size <= game.max_players:
            raise usage.UsageError(
                f"--match-size {name}={size}: {name} takes {game.min_players} to "
                f"{game.max_players} players"
            )
        team_size = registry.rules()[name].team_size
        if team_size is not None and size % team_size:
            raise usage.UsageError(
                f"--match-size {name}={size}: {name} has teams of {team_size}; the match "
                "size must be a multiple of it"
            )
    return sizes


def rating_windows(
    registry: GameRegistry, overrides: dict[str, RatingWindow]
) -> dict[str, RatingWindow]:
    """Each offered game's ranked window: --rating-window, else the game's own
    `rating_window`; games with neither get the matchmaker's default."""
    for name in overrides:
        if name not in registry:
            raise usage.UsageError(
                f"--rating-window {name}=...: no game {name!r} (offered: "
                f"{', '.join(registry.names())})"
            )
    windows = {name: rules.rating_window for name, rules in registry.rules().items()}
    return {**{name: w for name, w in windows.items() if w is not None}, **overrides}


# A Kubernetes label value: up to 63 characters, alphanumerics with '-', '_' or '.'
# inside (an empty value is allowed by Kubernetes, not here: a realm has a name).
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def label_value(name: str, value: str) -> str:
    """A Kubernetes label value (--realm)."""
    if not _LABEL_VALUE.fullmatch(value):
        raise usage.UsageError(
            f"--{name} must be a Kubernetes label value (1-63 letters, digits, '-', '_' or "
            f"'.', starting and ending with a letter or digit), not {value!r}"
        )
    return value


def trusted_proxies(name: str, value: str) -> frozenset[IPNetwork]:
    """Comma-separated IP addresses or networks in CIDR notation (`10.0.0.5`,
    `10.244.0.0/16`, `fd00::/8`): the peers a PROXY header is taken from. A network
    fits gateways whose addresses change (Kubernetes pods: their pod network)."""
    found: set[IPNetwork] = set()
    for part in value.split(","):
        part = part.strip()
        try:
            found.add(ipaddress.ip_network(part, strict=True))
        except ValueError:
            raise usage.UsageError(
                f"--{name}: {part!r} is not an IP address or network (give ADDR or "
                "ADDR/PREFIX, comma-separated; a network's host bits are zero)"
            ) from None
    return frozenset(found)
