"""The web client's schema snapshots (vinom/webclient/schema.js, read by delta.js's
`SnapshotReceiver`) against Python's reference (vinom/rooms/schema.py), under Node.

Seeded streams of schema snapshots from Python's `SchemaHistory` (a schema of every
kind: narrow and 53-bit integers, fixed numbers, booleans, any values, rows of
them coming and going; values beyond their ranges, clamped), sent over a lossy,
reordering, duplicating link with acknowledgements, and many of them damaged (a
bit flipped anywhere, cut short, bytes added, the body replaced): the page's
receiver applies or drops each datagram exactly as Python's `SnapshotReceiver`
does, for the same reason, and every view it rebuilds is Python's, with the same
checksum (docs/protocol.md §16.4). Streams cut to a byte budget (vinom.rooms.budget)
have rows that wait (§16.8's flag 02): the page shows them carried on exactly as
Python does (vinom.rooms.carrying), and keeps the same waits. Node is Debian's
`nodejs` (scripts/test installs it); a missing one fails the test, never skips."""

# slow: runs node

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgpack
from twisted.internet import utils
from twisted.trial.unittest import TestCase

from tests.support.npm import PATH, tool
from vinom.games.rules import SnapshotBudget
from vinom.rooms.budget import PriorityQueue
from vinom.rooms.delta import Quantisation, SnapshotReceiver
from vinom.rooms.delta_wire import view_crc
from vinom.rooms.schema import ViewSchema
from vinom.rooms.schema_frames import SchemaHistory, frame_header_bytes

ROOT = Path(__file__).resolve().parent.parent.parent
WEBCLIENT = ROOT / "vinom" / "webclient"

DECLARATION: list[Any] = [
    ["n", ["int", -5, 5]],  # 4 bits: a change is its whole value
    ["big", ["int", -(2**52), 2**52 - 1]],  # 53 bits
    ["f", ["fixed", -1000, 1000, 0.01]],
    ["g", ["fixed", 0, 1, 0.1]],
    ["mid", ["int", 0, 3000]],  # 12 bits: a small difference, else whole
    ["b", ["bool"]],
    ["a", ["any"]],
    ["rows", ["rows", [["int", 0, 1000], ["fixed", -50, 50, 0.5], ["int", -(2**40), 2**40],
                       ["bool"], ["any"]]]],
]  # fmt: skip

ANY_VALUES: list[Any] = [
    None, True, False, 0, 1, -7, 2**40, -(2**63), 2**64 - 1, 1.0, 2.5, -0.0, 1e300,
    "x", "ünï", "", b"\x00\x01", b"", [], [1, [2, [None]]], {"k": 1}, {"z": [1.5], "__proto__": 2},
]  # fmt: skip

# The JavaScript side: each datagram through a receiver given the schema; the
# outcome (null, or the snapshot's tick, baseline tick, checksum, the view's
# msgpack encoding and its checksum, and the rows that waited in it), the drops
# after it and the ticks the receiver keeps waits of.
SCRIPT = """\
import { readFileSync } from "node:fs";
import { encode } from "WEBCLIENT/codec.js";
import { SnapshotReceiver, checksum } from "WEBCLIENT/delta.js";
import { ViewSchema } from "WEBCLIENT/schema.js";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = [];
for (const stream of input) {
  const receiver = new SnapshotReceiver({ schema: new ViewSchema(stream.declaration) });
  const outcomes = [];
  for (const h of stream.datagrams) {
    const got = receiver.receive(Buffer.from(h, "hex"));
    outcomes.push([
      got === null ? null : [got.tick, got.baselineTick, got.checksum,
                             Buffer.from(encode(got.view)).toString("hex"), checksum(got.view),
                             Object.fromEntries(receiver.waited.get(got.tick) ?? [])],
      { ...receiver.drops },
      [...receiver.waited.keys()],
    ]);
  }
  out.push(outcomes);
}
console.log(JSON.stringify(out));
"""


def step_number(rng: random.Random, value: float, lo: float, hi: float, whole: bool) -> float:
    """A number walking: mostly still or a little, sometimes far, now and then beyond
    its range (the host clamps it)."""
    roll = rng.random()
    if roll < 0.4:
        return value
    if roll < 0.75:
        value += rng.choice([-1, 1]) * rng.uniform(0, (hi - lo) / 500)
    elif roll < 0.95:
        value = rng.uniform(lo, hi)
    else:
        value = rng.choice([lo - 10, hi + 10, lo, hi])
    return round(value) if whole and rng.random() < 0.8 else value


def step_view(rng: random.Random, view: dict[str, Any] | None) -> dict[str, Any]:
    if view is None:
        view = {"n": 0, "big": 0, "f": 0.0, "g": 0.5, "mid": 1500, "b": False, "a": None,
                "rows": []}  # fmt: skip
    new = dict(view)
    new["n"] = step_number(rng, view["n"], -5, 5, True)
    new["big"] = rng.choice([view["big"], view["big"] + rng.randrange(-3000, 3000),
                             rng.randrange(-(2**52), 2**52), 2**52 - 1, -(2**52)])  # fmt: skip
    new["f"] = step_number(rng, view["f"], -1000, 1000, False)
    new["g"] = step_number(rng, view["g"], 0, 1, False)
    new["mid"] = step_number(rng, view["mid"], 0, 3000, True)
    if rng.random() < 0.2:
        new["b"] = not view["b"]
    if rng.random() < 0.15:
        new["a"] = rng.choice(ANY_VALUES)
    rows = {row[0]: list(row) for row in view["rows"]}
    for key in list(rows):
        roll = rng.random()
        if roll < 0.05:
            del rows[key]
        elif roll < 0.5:
            row = rows[key]
            row[1] = step_number(rng, row[1], -50, 50, False)
            row[2] = rng.choice([row[2], row[2] + rng.randrange(-100, 100),
                                 rng.randrange(-(2**40), 2**40 + 1)])  # fmt: skip
            if rng.random() < 0.1:
                row[3] = not row[3]
            if rng.random() < 0.1:
                row[4] = rng.choice(ANY_VALUES)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 3])):
        key = rng.randrange(0, 1001)
        if key not in rows and len(rows) < 40:
            rows[key] = [key, rng.uniform(-60, 60), rng.randrange(-(2**40), 2**40 + 1),
                         rng.random() < 0.5, rng.choice(ANY_VALUES)]  # fmt: skip
    order = list(rows.values())
    rng.shuffle(order)  # the host sorts them by id
    new["rows"] = order
    return new


def damage(rng: random.Random, data: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.45:
        at = rng.randrange(len(data) * 8)
        out = bytearray(data)
        out[at // 8] ^= 0x80 >> (at % 8)
        return bytes(out)
    if roll < 0.65:
        return data[: rng.randrange(len(data))]
    if roll < 0.8:
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    if roll < 0.9:
        # The header kept, the body random bytes.
        return data[:4] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, len(data))))
    # The last byte's padding or body bits flipped.
    out = bytearray(data)
    out[-1] ^= 1 << rng.randrange(3)
    return bytes(out)


def same(a: Any, b: Any) -> bool:
    """Equal as views, JavaScript's numbers read back: an integral float is the
    integer, NaN is NaN (a damaged `any` value can hold one), a boolean only a boolean."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (a != a and b != b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def simulate(seed: int, ticks: int, checksum: bool,
             budget: int | None = None) -> tuple[list[str], list[Any]]:  # fmt: skip
    """The datagrams a client receives (as hex) and what Python's receiver makes of
    each: None, or (tick, baseline tick, checksum, view, its CRC, the rows that waited
    in it, and whether carrying them changed the view); the drops; the ticks of the
    waits kept. With `budget`, each snapshot's rows are cut to that many bytes, as
    the game host cuts them (vinom.rooms.views)."""
    rng = random.Random(seed)
    schema = ViewSchema(DECLARATION)
    history = SchemaHistory(schema)
    queue = None if budget is None else PriorityQueue(SnapshotBudget(
        bytes=budget, entities="rows", priority=lambda view, key: 1.0 + key % 3))  # fmt: skip
    receiver = SnapshotReceiver(Quantisation(), schema=schema)
    in_flight: list[tuple[int, float, bytes]] = []
    acks: list[tuple[int, int]] = []
    arrived: list[str] = []
    outcomes: list[Any] = []
    view = None
    last_acked = None
    for tick in range(1, ticks + 1):
        for at, acked in acks:
            if at <= tick:
                history.acknowledge(acked)
        acks = [(at, k) for at, k in acks if at > tick]
        view = step_view(rng, view)
        wire = schema.wire(view)
        waiting = None
        if queue is not None:
            found = history.baseline(tick)
            base_tick, base = (None, None) if found is None else found
            header = frame_header_bytes(tick, base_tick, checksum)
            wire, waiting = queue.fit_rows(view, wire, base, schema, header)
        data = history.encode_for(tick, wire, schema.checksum(wire) if checksum else None,
                                  None, waiting)  # fmt: skip
        copies = 0 if rng.random() < 0.15 else 2 if rng.random() < 0.05 else 1
        for _ in range(copies):
            in_flight.append((tick + rng.choice([0, 0, 0, 1, 2, 4]), rng.random(), data))
        for _ in range(rng.choice([0, 0, 1, 2])):
            in_flight.append((tick + rng.choice([0, 1]), rng.random(), damage(rng, data)))
        now = sorted(item for item in in_flight if item[0] <= tick)
        in_flight = [item for item in in_flight if item[0] > tick]
        for _, _, datagram in now:
            arrived.append(datagram.hex())
            snapshot = receiver.receive(datagram)
            got = None
            if snapshot is not None:
                waited = receiver.waited.get(snapshot.tick) or {}
                carried = snapshot.view != schema.rebuild(receiver.wires[snapshot.tick])
                got = [snapshot.tick, snapshot.baseline_tick, snapshot.checksum, snapshot.view,
                       view_crc(snapshot.view, None, decoded=True),
                       {str(at): ids for at, ids in waited.items()}, carried]  # fmt: skip
            outcomes.append([got, dict(receiver.drops), list(receiver.waited)])
        if receiver.newest is not None and receiver.newest != last_acked:
            last_acked = receiver.newest
            if rng.random() > 0.2:
                acks.append((tick + rng.choice([1, 1, 2, 3]), receiver.newest))
    return arrived, outcomes


class SchemaDecoderTests(TestCase):
    """schema.js against vinom/rooms/schema.py, datagram by datagram."""

    timeout = 120

    async def test_the_web_client_reads_every_datagram_as_python_does(self) -> None:
        node = tool("node")
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        # Four streams as sent whole, two cut to a byte budget (rows that wait).
        streams = [simulate(seed, 400, checksum, budget) for seed, checksum, budget in
                   ((1, True, None), (2, False, None), (3, True, None), (4, False, None),
                    (5, True, 120), (6, False, 90))]  # fmt: skip
        (work / "input.json").write_text(json.dumps(
            [{"declaration": DECLARATION, "datagrams": arrived} for arrived, _ in streams]
        ), "utf-8")  # fmt: skip
        script = SCRIPT.replace("WEBCLIENT", WEBCLIENT.as_uri())
        (work / "run.mjs").write_text(script, "utf-8")
        out, err, code = await utils.getProcessOutputAndValue(
            node, [str(work / "run.mjs"), str(work / "input.json")], path=str(work),
            env={"PATH": PATH},
        )  # fmt: skip
        self.assertEqual(code, 0, err.decode(errors="replace"))
        self.assertEqual(err, b"")
        pages = json.loads(out)
        kinds: dict[str, int] = {}
        for (arrived, expected), page in zip(streams, pages, strict=True):
            self.assertEqual(len(page), len(arrived))
            for datagram, want, (got, drops, waits) in zip(arrived, expected, page, strict=True):
                self.assertEqual(drops, {**dict.fromkeys(drops, 0), **want[1]}, datagram)
                self.assertEqual(waits, want[2], datagram)
                if want[0] is None:
                    self.assertIsNone(got, datagram)
                    continue
                self.assertIsNotNone(got, datagram)
                tick, baseline, checksum, view, crc, waited, carried = want[0]
                self.assertEqual(got[:3], [tick, baseline, checksum], datagram)
                self.assertEqual(got[4], crc, datagram)
                self.assertEqual(got[5], waited, datagram)
                rebuilt = msgpack.unpackb(bytes.fromhex(got[3]), raw=False)
                self.assertTrue(same(rebuilt, view), (datagram, rebuilt, view))
                for kind, counted in (("full" if baseline is None else "delta", True),
                                      ("waits", waited), ("carried", carried)):  # fmt: skip
                    if counted:
                        kinds[kind] = kinds.get(kind, 0) + 1
            for reason, count in page[-1][1].items():
                kinds[reason] = kinds.get(reason, 0) + count
        # The streams exercised every path: full and delta snapshots applied, deltas
        # with waits, views changed by carrying waiting rows on, and each drop reason.
        for what in ("full", "delta", "waits", "carried", "corrupt", "unknown_baseline",
                     "checksum", "stale"):  # fmt: skip
            self.assertGreater(kinds.get(what, 0), 0, (what, kinds))
