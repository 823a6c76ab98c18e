"""The seeds of the native client's fuzz target, made of vectors/protocol.json.

clients/cpp/fuzz/fuzz_client.cpp reads an input's first byte as what the rest
is (a session's datagrams, a body, a room message, delta snapshots, a connect
token, or bodies the host seals); each seed here is one vector (or a run of
them, such as a handshake or a snapshot and the patch against it) in that
shape, so fuzzing starts from everything valid the client can be sent. The
seeds are kept in clients/cpp/fuzz/corpus, one file per seed;
tests/test_native.py checks they are current and runs the target over them.

After a vector changes: ``python -m tests.support.fuzz_corpus`` (``--check``
says whether the folder is current).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

from tests.support.vectors import ROOT, load, unhex
from vinom.rooms.messages import encode_snap

CORPUS = ROOT / "clients" / "cpp" / "fuzz" / "corpus"

# The first byte of an input: what the rest is (fuzz_client.cpp).
DATAGRAMS, BODY, MESSAGE, SNAPSHOTS, TOKEN, SEALED_BODIES = range(6)


def _pieces(*pieces: bytes) -> bytes:
    """Pieces as the target splits them: each a u16 little-endian length, then it."""
    return b"".join(struct.pack("<H", len(p)) + p for p in pieces)


def _body(*messages: bytes) -> bytes:
    """A body of 13.3 (sequence 0, nothing acked) of unreliable whole messages."""
    head = struct.pack("<HHIB", 0, 0xFFFF, 0, 0)
    return head + b"".join(struct.pack("<HH", len(m), 0) + m for m in messages)


def _snaps(chain: list[bytes]) -> list[bytes]:
    """Snaps (docs/protocol.md §14) of a chain of snapshots, each a delta against the one
    before it but the first: their numbers against the snap before."""
    snaps, before = [], None
    for n, d in enumerate(chain):
        fields = (5 + n, 300 + 50 * n, None)
        snaps.append(encode_snap(fields, None, None, 0, before, d))
        before = fields
    return snaps


def seeds(data: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every seed by its file name."""
    data = load() if data is None else data

    def group(name: str) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in data[name]["vectors"]}

    out: dict[str, bytes] = {}
    session = group("session")
    for name, v in session.items():
        out[f"datagram-{name}"] = bytes([DATAGRAMS]) + _pieces(unhex(v["hex"]))
    handshake = [unhex(session[n]["hex"]) for n in ("challenge", "welcome", "payload_server")]
    out["datagrams-handshake"] = bytes([DATAGRAMS]) + _pieces(*handshake)
    for name in ("payload_client", "payload_server"):
        out[f"body-{name}"] = bytes([BODY]) + unhex(session[name]["plaintext"])
    for name, v in group("reliability").items():
        bodies = [unhex(b) for b in v["bodies"]] + [unhex(r["hex"]) for r in v["received"]]
        for i, b in enumerate(bodies):
            out[f"body-{name}-{i}"] = bytes([BODY]) + b
        out[f"sealed-{name}"] = bytes([SEALED_BODIES]) + _pieces(*bodies)
    inputs = data["session"]["inputs"]
    for name in ("client_message", "host_message"):
        out[f"message-{name}"] = bytes([MESSAGE]) + unhex(inputs[name]["hex"])
    for name, v in group("messages").items():
        out[f"message-{name}"] = bytes([MESSAGE]) + unhex(v["hex"])
    delta = group("delta")
    for name, v in delta.items():
        chain = [unhex(v["hex"])]
        if v["baseline"] is not None:
            chain.insert(0, unhex(delta[v["baseline"]]["hex"]))
        out[f"snapshots-{name}"] = bytes([SNAPSHOTS]) + _pieces(*chain)
        bodies = [_body(snap) for snap in _snaps(chain)]
        out[f"sealed-snaps-{name}"] = bytes([SEALED_BODIES]) + _pieces(*bodies)
    # Schema snapshots (16.8), each after the chain of baselines it is read against:
    # the target's receivers hold the schema of these vectors.
    schema = group("schema")
    for name, v in schema.items():
        chain, baseline = [unhex(v["hex"])], v["baseline"]
        while baseline is not None:
            chain.insert(0, unhex(schema[baseline]["hex"]))
            baseline = schema[baseline]["baseline"]
        out[f"snapshots-{name}"] = bytes([SNAPSHOTS]) + _pieces(*chain)
        bodies = [_body(snap) for snap in _snaps(chain)]
        out[f"sealed-snaps-{name}"] = bytes([SEALED_BODIES]) + _pieces(*bodies)
    token = json.dumps(data["session"]["token"]).encode()
    out["token"] = bytes([TOKEN]) + token
    return out


def main(argv: list[str]) -> int:
    wanted = seeds()
    present = {p.name: p.read_bytes() for p in CORPUS.glob("*")} if CORPUS.exists() else {}
    if "--check" in argv:
        if present != wanted:
            print(f"{CORPUS} is not current: run python -m tests.support.fuzz_corpus")
            return 1
        return 0
    CORPUS.mkdir(parents=True, exist_ok=True)
    for name in present.keys() - wanted.keys():
        (CORPUS / name).unlink()
    for name, content in wanted.items():
        (CORPUS / name).write_bytes(content)
    print(f"{CORPUS}: {len(wanted)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
