"""Signed-in bench clients: the server's `--auth` options and each client's credentials.

`match --auth KIND` runs the server with that authenticator (docs/operations.md,
"Authentication") and has every client sign in with its `hello`, as a player
of a studio's game does:

- `guest`: no `auth` (the server's default; anonymous players).
- `signed`: an HS256 token a studio's backend would sign with the key it shares
  with the server (`--auth-secret-file`), made by the load for each client.
- `jwt`: an RS256 JWT from an identity provider whose public key the server
  reads from a file (`--auth-key-file`, issuer and audience checked), signed
  by the load with the provider's private key.
- `device`: a device id and secret per player, the account made on the
  device's first sign-in.

Player i signs in as subject (or device) i of the run, so that a `--returning`
player signs in to the same account each time; the server's account database
is its default SQLite file in the run's data directory. The tokens are made
in the load process before its measured window, as a studio's backend would
make them elsewhere: an RS256 signature costs the load about a millisecond,
which made a `jwt` run's load slower, its matches longer and the server's
per-client share of its timers larger than in the guests' runs it is
compared with.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

KINDS = ("guest", "jwt", "signed", "device")
ISSUER = "https://idp.bench.invalid"
AUDIENCE = "vinom-bench"
KID = "bench-1"

Credentials = Callable[[int], "dict[str, Any] | None"]


def prepare(kind: str, data_dir: str) -> tuple[list[str], dict[str, Any]]:
    """The server's options for `kind` and what the load needs to sign its clients in
    (its `auth` setting); keys go in files under `data_dir`."""
    if kind == "guest":
        return [], {"kind": "guest"}
    os.makedirs(data_dir, exist_ok=True)
    run = secrets.token_hex(4)
    if kind == "signed":
        key = secrets.token_hex(32)
        path = _write(data_dir, "signed.key", (key + "\n").encode())
        return ["--auth", "signed", "--auth-secret-file", path], {
            "kind": "signed", "key": key, "run": run,
        }  # fmt: skip
    if kind == "jwt":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path = _write(data_dir, "idp-public.pem", public)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()  # fmt: skip
        return ["--auth", "jwt", "--auth-key-file", path, "--auth-issuer", ISSUER,
                "--auth-audience", AUDIENCE], {"kind": "jwt", "private_key": pem,
                                               "run": run}  # fmt: skip
    if kind == "device":
        return ["--auth", "device"], {"kind": "device", "run": run}
    raise ValueError(f"--auth must be one of {', '.join(KINDS)}")


def credentials(settings: dict[str, Any] | None, players: int = 0) -> Credentials:
    """Player i's `auth` object for its `hello` (None for a guest), made now for the
    first `players` (the module docstring), on demand for any later one."""
    make = _maker(settings)
    made = [make(player) for player in range(players)]
    return lambda player: made[player] if 0 <= player < len(made) else make(player)


def _maker(settings: dict[str, Any] | None) -> Credentials:
    kind = (settings or {}).get("kind", "guest")
    if kind == "guest":
        return lambda player: None
    assert settings is not None
    run = str(settings["run"])
    if kind == "device":

        def device(player: int) -> dict[str, Any]:
            secret = hashlib.sha256(f"{run}/{player}".encode()).digest()
            return {"kind": "device", "device_id": f"bench-{run}-{player:07d}",
                    "secret": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}  # fmt: skip

        return device
    import jwt

    if kind == "signed":
        key = str(settings["key"]).encode()

        def signed(player: int) -> dict[str, Any]:
            claims = {"sub": f"bench-{run}-{player}", "aud": "vinom",
                      "exp": int(time.time()) + 300}  # fmt: skip
            return {"kind": "signed", "token": jwt.encode(claims, key, "HS256")}

        return signed
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(str(settings["private_key"]).encode(), None)

    def token(player: int) -> dict[str, Any]:
        now = int(time.time())
        claims = {"sub": f"bench-{run}-{player}", "iss": ISSUER, "aud": AUDIENCE,
                  "iat": now, "exp": now + 300}  # fmt: skip
        return {"kind": "jwt",
                "token": jwt.encode(claims, private, "RS256", headers={"kid": KID})}  # fmt: skip

    return token


def _write(data_dir: str, name: str, data: bytes) -> str:
    path = os.path.join(data_dir, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path
