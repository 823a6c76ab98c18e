"""The web client's delta snapshots (vinom/webclient/delta.js) and real-time inputs
(game.js) in real headless Chromium, against Python's reference (vinom/rooms/delta.py).

The page is the real server's (its headers and Content-Security-Policy), loaded as
a player loads it; the modules are imported into it as the page imports them. The
browser decodes the delta test vectors of vectors/protocol.json (docs/protocol.md
section 16.7) to the views Python's decoder gives, with the same
checksums, and then a random sequence of snapshots from Python's `SnapshotHistory`
(random views of every kind, quantised, with loss, reordering, duplicates and a
few damaged datagrams) exactly as Python's `SnapshotReceiver` does: the same
snapshot applied or dropped for the same reason, every rebuilt view equal to the
server's quantised view. `GameSocket` turns snaps into the state a board takes and
sends tick-stamped, redundant inputs. Any console error fails a test
(tests/support/browser.py).
"""

# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import start_web_server, wait_for_screen
from tests.support.browser import Browser, open_browser
from tests.support.vectors import unhex, vectors
from vinom.rooms.delta import (
    FLOAT32,
    Quantisation,
    SnapshotHistory,
    SnapshotReceiver,
    decode_snapshot,
)
from vinom.rooms.messages import SnapFields, encode_snap

DELTA = list(vectors("delta").values())
# Each vector's quantisation rules (the welcome's `q`) and the index of its baseline.
VECTOR_RULES: list[dict[str, Any]] = [v["rules"] for v in DELTA]
_NAMES = [v["name"] for v in DELTA]
VECTOR_BASELINES = [None if v["baseline"] is None else _NAMES.index(v["baseline"]) for v in DELTA]


def protocol_vectors() -> list[bytes]:
    """The delta snapshots of vectors/protocol.json, in order."""
    return [unhex(v["hex"]) for v in DELTA]


def snap_of(
    fields: SnapFields, action_id: int | None, input_tick: int | None, data: bytes,
    kept: dict[int, SnapFields],
) -> bytes:
    """A snap as the host sends it (docs/protocol.md §14, `encode_snap`) of the §16.1
    snapshot `data`: its numbers against the fields `kept` holds of the snap of the
    tick `data` is a delta against (its own header says), then its own kept."""
    header = msgpack.Unpacker()
    header.feed(data)
    header.read_array_header()
    tick, distance = header.unpack(), header.unpack()
    base = None if distance is None else kept[tick - distance]
    kept[tick] = fields
    return encode_snap(fields, action_id, input_tick, tick, base, data)


def same(a: Any, b: Any) -> bool:
    """Equal as JavaScript sees values: 1 and 1.0 alike (one number type), NaN equal to
    NaN, but a bool never a number and bin never a str."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# Decodes a list of snapshots (hex) in order with a receiver and reports each
# outcome: the applied tick, the view as msgpack (hex) and its checksum as the
# page computes it; or null. Then the drop counts.
RECEIVE_SCRIPT = """
const [rules, datagrams, done] = arguments;
Promise.all([import('./delta.js'), import('./codec.js')]).then(([delta, m]) => {
  const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
  const receiver = new delta.SnapshotReceiver({ rules });
  const out = [];
  for (const h of datagrams) {
    const snapshot = receiver.receive(bytes(h));
    out.push(snapshot === null ? null : {
      tick: snapshot.tick, base: snapshot.baselineTick, sent: snapshot.checksum,
      view: hex(m.encode(snapshot.view)), crc: delta.checksum(snapshot.view),
    });
  }
  done({out, drops: receiver.drops, newest: receiver.newest, held: receiver.views.size});
}, (e) => done({error: String(e) + (e.stack ?? '')}));
"""


def pairs(rules: dict[str, Any]) -> list[list[Any]]:
    """Rules as the welcome's `q` carries them."""
    return [[pattern, rule] for pattern, rule in rules.items()]


# -- random views --------------------------------------------------------------

RULES: dict[str, Any] = {
    "players.*.x": 0.01,
    "players.*.y": 0.01,
    "players.ann.x": 0.5,  # a literal wins over the wildcard
    "arena.*.1": 0.01,
    "arena.*.2": 0.01,
    "arena.*.3": 0.1,
    "arena.*.4": 0.1,
    "f": FLOAT32,
    "odd": 0.3,
    "fine": 1e-9,
}
NAMES = ["ann", "bob", "cy", "dé", "😀", "__proto__", "toString", "10", "2"]
SCALARS: list[Any] = [
    None, True, False, 0, 1, -1, 127, 128, -33, 65536, 2**32, 2**53 - 1, -(2**53) + 1, 2**60,
    -(2**63), 2**64 - 1, 1.0, -0.0, 0.5, 1e300, -1e-300, math.inf, -math.inf, "", "x",
    "é€😀", b"", b"\x00\xff", 1.5,
]  # fmt: skip


def scalar(rng: random.Random) -> Any:
    if rng.random() < 0.5:
        return rng.choice(SCALARS)
    return rng.choice([rng.uniform(-1e4, 1e4), rng.randint(-(10**6), 10**6), rng.random()])


def anything(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return scalar(rng)
    if roll < 0.8:
        return [anything(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(NAMES): anything(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def step(rng: random.Random, view: dict[str, Any]) -> dict[str, Any]:
    """The next view: most fields move a little, some come, go or change kind."""
    players = {}
    for name in NAMES:
        old = view.get("players", {}).get(name)
        if old is None:
            if rng.random() < 0.3:
                players[name] = {"x": rng.uniform(-50, 50), "y": rng.uniform(-50, 50), "hp": 3}
            continue
        if rng.random() < 0.05:
            continue  # gone
        moved = dict(old)
        if rng.random() < 0.5:
            moved["x"] = old["x"] + rng.uniform(-0.02, 0.02)
            moved["y"] = old["y"] + rng.choice([0, 0.001, rng.uniform(-1, 1)])
        if rng.random() < 0.1:
            moved["hp"] = rng.choice([0, 1, 2, 3, True, None, 2.5])
        if rng.random() < 0.1:
            moved["tag"] = anything(rng)
        elif rng.random() < 0.1:
            moved.pop("tag", None)
        players[name] = moved
    arena = [list(row) for row in view.get("arena", [])]
    if rng.random() < 0.1 and arena:
        arena.pop(rng.randrange(len(arena)))
    if rng.random() < 0.1 or not arena:
        arena.append([len(arena), rng.uniform(0, 100), rng.uniform(0, 100), 0.0, 0.0])
    for row in arena:
        if rng.random() < 0.4:
            row[1] += rng.uniform(-1, 1)
            row[3] = rng.choice([row[3], rng.uniform(-5, 5), 1e20, math.inf])
    out: dict[str, Any] = {"players": players, "arena": arena}
    for key in ("f", "odd", "fine", "misc", "deep"):
        kept = view.get(key)
        if key in view and rng.random() < 0.7:
            out[key] = kept
        elif rng.random() < 0.8:
            out[key] = anything(rng) if key in ("misc", "deep") else scalar(rng)
    if rng.random() < 0.05:
        out["f"] = rng.choice([1e40, math.nan, -0.0, 0.1])
    return out


def simulate(
    seed: int, ticks: int
) -> tuple[list[bytes], list[Any], dict[int, Any], dict[str, int]]:
    """The datagrams a client receives (lossy, reordered, duplicated, a few damaged),
    what Python's receiver makes of each, and the server's quantised view by tick."""
    rng = random.Random(seed)
    quantisation = Quantisation(RULES)
    history = SnapshotHistory(quantisation=quantisation, checksum=True)
    receiver = SnapshotReceiver(quantisation=quantisation)
    in_flight: list[tuple[int, float, bytes]] = []  # (arrival tick, order, datagram)
    acks: list[tuple[int, int]] = []  # (arrival tick, acked tick)
    arrived: list[bytes] = []
    outcomes: list[Any] = []
    quantised: dict[int, Any] = {}
    view: dict[str, Any] = {}
    last_acked = None
    for tick in range(1, ticks + 1):
        due = [k for at, k in acks if at <= tick]
        acks = [(at, k) for at, k in acks if at > tick]
        view = step(rng, view)
        quantised[tick] = quantisation.quantise(view)
        data = history.encode_for(tick, view, max(due) if due else None)
        copies = 0 if rng.random() < 0.2 else 2 if rng.random() < 0.05 else 1
        for _ in range(copies):
            damaged = data
            if rng.random() < 0.02:
                damaged = data[: rng.randrange(len(data))]  # truncated
            elif rng.random() < 0.02:
                header = len(msgpack.packb(msgpack.unpackb(data)[:3]))
                damaged = bytearray(data)
                damaged[header - 1] ^= 1  # the checksum's last byte
                damaged = bytes(damaged)
            in_flight.append((tick + rng.choice([0, 0, 0, 1, 2, 4]), rng.random(), damaged))
        now = sorted(item for item in in_flight if item[0] <= tick)
        in_flight = [item for item in in_flight if item[0] > tick]
        for _, _, datagram in now:
            arrived.append(datagram)
            snapshot = receiver.receive(datagram)
            outcomes.append(None if snapshot is None else (snapshot.tick, snapshot.view))
        if receiver.newest is not None and receiver.newest != last_acked:
            last_acked = receiver.newest
            if rng.random() > 0.2:  # the ack (the next input) is lost 20% of the time
                acks.append((tick + rng.choice([1, 1, 2, 3]), receiver.newest))
    # A snapshot against a baseline this client never applied: counted unknown_baseline.
    other = SnapshotHistory(quantisation=quantisation, checksum=True)
    other.encode_for(ticks + 5, view)
    other.acknowledge(ticks + 5)
    forged = other.encode_for(ticks + 6, step(rng, view))
    arrived.append(forged)
    outcomes.append(receiver.receive(forged))
    assert receiver.drops["unknown_baseline"] == 1, receiver.drops
    return arrived, outcomes, quantised, dict(receiver.drops)


class DeltaDecoderTests(TestCase):
    """delta.js against vinom/rooms/delta.py, in the page the real server serves."""

    async def open_page(self) -> Browser:
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await browser.get(url)
        await wait_for_screen(browser, "name")
        return browser

    async def receive(self, browser: Browser, rules: dict[str, Any], data: list[bytes]) -> Any:
        out = await browser.run(
            lambda d: d.execute_async_script(RECEIVE_SCRIPT, pairs(rules), [x.hex() for x in data])
        )
        self.assertNotIn("error", out, out.get("error"))
        return out

    async def test_the_protocol_vectors_decode_to_pythons_views(self) -> None:
        vectors = protocol_vectors()
        self.assertEqual(len(vectors), 5)
        browser = await self.open_page()
        for n, data in enumerate(vectors):
            quantisation = Quantisation(VECTOR_RULES[n])
            base = VECTOR_BASELINES[n]
            baselines = {}
            chain = [data] if base is None else [vectors[base], data]
            if base is not None:
                first = decode_snapshot(vectors[base], {}, quantisation)
                baselines[first.tick] = first.view
            expected = decode_snapshot(data, baselines, quantisation)
            out = await self.receive(browser, VECTOR_RULES[n], chain)
            got = out["out"][-1]
            self.assertIsNotNone(got, n)
            self.assertEqual((got["tick"], got["base"]), (expected.tick, expected.baseline_tick))
            view = msgpack.unpackb(bytes.fromhex(got["view"]))
            self.assertTrue(same(view, expected.view), (n, view, expected.view))
            self.assertEqual(got["crc"], quantisation.checksum_of_decoded(expected.view), n)
            if expected.checksum is not None:
                self.assertEqual(got["sent"], expected.checksum)
                self.assertEqual(got["crc"], expected.checksum)
            self.assertEqual(out["drops"], {k: 0 for k in out["drops"]})
            # The decoded view the file gives (vector 3's x rebuilt as 1.23, vector 5's a
            # as a float 32).
            self.assertEqual(view, DELTA[n]["decoded"], n)

    async def test_damaged_snapshots_are_dropped_as_python_drops_them(self) -> None:
        vectors = protocol_vectors()
        browser = await self.open_page()
        q = VECTOR_RULES[2]
        damaged = [
            b"", b"\xc1", vectors[2][:-1], vectors[2] + b"\x00",  # not msgpack, cut, extra bytes
            bytes.fromhex("9401c0c0c70001"),  # an ext in a full view
            bytes.fromhex("9401c0c081a17801"),  # tick 1: {"x": 1}
            bytes.fromhex("940201c081a178c70000"),  # tick 2 on 1: x deleted
            bytes.fromhex("940302c081a179c70000"),  # tick 3 on 1: a delete of a key not there
            bytes.fromhex("940402c0920105"),  # tick 4 on 2: an array against a map, whole
            bytes.fromhex("9405c0c08101a178"),  # a map key that is not a str
            bytes.fromhex("94060100cb3ff0000000000000"),  # tick 6 on 5, never applied
            bytes.fromhex("9407c0ce00000001c0"),  # a wrong checksum
            bytes.fromhex("9406c0c0c0"),  # tick 6, full: applied
            bytes.fromhex("9405c0c0c0"),  # tick 5: stale
            bytes.fromhex("9407c0c0920304"),  # tick 7 full [3, 4]...
            bytes.fromhex("940801c093030102"),  # ...tick 8: grown to 3 without the new index
        ]
        out = await self.receive(browser, q, damaged)
        python = SnapshotReceiver(quantisation=Quantisation(q))
        expected = [python.receive(data) for data in damaged]
        self.assertEqual(
            [None if s is None else s["tick"] for s in out["out"]],
            [None if s is None else s.tick for s in expected],
        )
        self.assertEqual(out["drops"], dict(python.drops))
        self.assertTrue(all(python.drops[k] for k in python.drops), python.drops)

    async def test_a_lossy_reordered_sequence_rebuilds_every_view_as_python(self) -> None:
        browser = await self.open_page()
        for seed in range(3):
            arrived, outcomes, quantised, drops = simulate(seed, 300)
            out = await self.receive(browser, RULES, arrived)
            self.assertEqual(len(out["out"]), len(outcomes))
            applied = 0
            for n, (got, expected) in enumerate(zip(out["out"], outcomes, strict=True)):
                if expected is None:
                    self.assertIsNone(got, (seed, n))
                    continue
                tick, view = expected
                self.assertIsNotNone(got, (seed, n, tick))
                self.assertEqual(got["tick"], tick)
                rebuilt = msgpack.unpackb(bytes.fromhex(got["view"]))
                self.assertTrue(same(rebuilt, view), (seed, tick, rebuilt, view))
                self.assertTrue(same(rebuilt, quantised[tick]), (seed, tick))
                self.assertEqual(got["crc"], got["sent"], (seed, tick))
                applied += 1
            self.assertEqual({k: n for k, n in out["drops"].items() if n}, drops)
            self.assertGreater(applied, 150)
            self.assertGreater(out["drops"]["stale"], 0)
            self.assertLessEqual(out["held"], 64)
        await browser.check()


# A GameSocket on a stand-in WebSocket: the messages given (hex msgpack) arrive in
# order, `input` is called between them, and everything sent and handed on is reported.
SOCKET_SCRIPT = """
const [welcome, snaps, done] = arguments;
Promise.all([import('./game.js'), import('./codec.js')]).then(async ([g, m]) => {
  const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
  const sent = [];
  const got = [];
  const fake = { readyState: 1, send: (b) => sent.push(hex(b)), close() {} };
  const socket = new g.GameSocket('wss://unused.invalid/game', {}, {
    onMessage: (message) => got.push(message), open: () => fake,
  });
  const deliver = (h) => fake.onmessage({ data: bytes(h).buffer });
  socket.rtt = 0.05;  // a round trip of one tick at 20 Hz
  const ticks = [];
  deliver(welcome);
  deliver(snaps[0]);  // the first snap: acknowledged at once
  ticks.push(socket.input({ move: 1 }), socket.input({ move: 2 }));
  deliver(snaps[1]);  // acknowledges the first input
  for (let n = 3; n <= 12; n++) ticks.push(socket.input({ move: n }));
  deliver(snaps[2]);  // acknowledges every input
  await new Promise((resolve) => setTimeout(resolve, 150));
  deliver(snaps[3]);  // two snapshot intervals without input: an ack-only input
  deliver(snaps[4]);  // a damaged one
  done({ sent, got: hex(m.encode(got)), ticks, drops: socket.snapshots.drops,
         pending: socket.pending.length });
}, (e) => done({ error: String(e) + (e.stack ?? '') }));
"""


class GameSocketTests(TestCase):
    """game.js: snaps become states, inputs go out stamped and repeated."""

    async def test_snaps_become_states_and_inputs_are_repeated_until_acknowledged(self) -> None:
        rules = {"p.*.x": 0.01, "p.*.y": 0.01}
        quantisation = Quantisation(rules)
        history = SnapshotHistory(quantisation=quantisation, checksum=True)
        views = {
            10: {"p": {"ann": {"x": 1.234, "y": 5.0}}, "n": 1},
            11: {"p": {"ann": {"x": 1.5, "y": 5.0}, "bob": {"x": 0.0, "y": -2.25}}, "n": 2},
            12: {"p": {"bob": {"x": 0.333, "y": -2.25}}, "n": 3},
            13: {"p": {"bob": {"x": 0.3331, "y": 9.0}}, "n": [4]},
        }
        iks = {10: None, 11: 12, 12: 23, 13: 23}
        snaps = []
        kept: dict[int, SnapFields] = {}
        for tick, view in views.items():
            data = history.encode_for(tick, view, tick - 1 if tick > 10 else None)
            snaps.append(snap_of((tick * 2, tick * 50, 30500), None, iks[tick], data, kept))
        # A damaged one: its d no snapshot (its numbers as a full d's).
        snaps.append(encode_snap((99, 700, None), 3, 23, 14, None, b"\xc1"))
        welcome = {"t": "welcome", "match": "m", "game": "arena", "seat": 0, "players": [],
                   "tick_rate": 20, "snapshot_rate": 20, "q": pairs(rules)}  # fmt: skip
        _server, url = await start_web_server(self, ports=1)
        browser = await open_browser(self)
        await browser.get(url)
        await wait_for_screen(browser, "name")
        out = await browser.run(
            lambda d: d.execute_async_script(
                SOCKET_SCRIPT, msgpack.packb(welcome).hex(), [s.hex() for s in snaps]
            )
        )
        self.assertNotIn("error", out, out.get("error"))
        got = msgpack.unpackb(bytes.fromhex(out["got"]))
        self.assertEqual(got[0]["t"], "welcome")
        self.assertEqual(len(got), 5)  # the damaged snap is not handed on
        for state, (tick, view) in zip(got[1:], views.items(), strict=True):
            self.assertEqual(
                list(state), ["t", "v", "p", "r", "k", "ts", "s", "i"]
            )
            self.assertEqual(
                {k: v for k, v in state.items() if k != "s"},
                {"t": "state", "v": tick * 2, "p": "playing", "r": 30.5, "k": tick,
                 "ts": tick * 50, "i": None},
            )  # fmt: skip
            self.assertTrue(same(state["s"], quantisation.quantise(view)), (tick, state["s"]))
        self.assertEqual(out["drops"], {"corrupt": 1, "unknown_baseline": 0, "checksum": 0,
                                        "stale": 0})  # fmt: skip
        # Stamped for the first tick after arrival: the newest snap's tick, plus one
        # tick of round trip (a 50 ms one at 20 Hz), plus one; one tick each.
        self.assertEqual(out["ticks"], [12, 13, *range(14, 24)])
        sent = [msgpack.unpackb(bytes.fromhex(h)) for h in out["sent"]]
        self.assertEqual(sent[0], {"t": "input", "a": 10, "x": []})
        self.assertEqual(sent[1], {"t": "input", "a": 10, "x": [[12, {"move": 1}]]})
        self.assertEqual(sent[2]["x"], [[12, {"move": 1}], [13, {"move": 2}]])
        # Snap 11's ik (12) acknowledged the first: the third repeats the second only.
        self.assertEqual(
            sent[3], {"t": "input", "a": 11, "x": [[13, {"move": 2}], [14, {"move": 3}]]}
        )
        # At most 8 unacknowledged inputs, oldest dropped.
        self.assertEqual(sent[12]["x"], [[k, {"move": k - 11}] for k in range(16, 24)])
        # Snap 12 came just after an input: no ack-only; snap 13, 150 ms later, got one.
        self.assertEqual(sent[13:], [{"t": "input", "a": 13, "x": []}])
        self.assertEqual(out["pending"], 0)
