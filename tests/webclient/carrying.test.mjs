// schema.js's carryWaiting, the rows that wait as a client shows them (docs/protocol.md
// §16.8, "Rows that wait"), against cases computed with Python's reference,
// vinom/rooms/carrying.py's carry_waiting (test_schema.py checks a whole receiver
// against Python's, datagram by datagram). A case: the snapshot's tick, its wire
// view and waiting rows, the snapshots kept before it (tick: [wire view, waiting]),
// and the wire view Python shows; wire views as [n, [[id, x, y, k], ...]].
import assert from "node:assert/strict";
import { test } from "node:test";

import { CARRIED_INTERVALS, ViewSchema, carryWaiting } from "../../vinom/webclient/schema.js";

// x: -500..500 in steps of 0.01 (wire -50000..50000), y: 0..10 in halves (0..20), k an int.
const SCHEMA = new ViewSchema([
  ["n", ["int", 0, 9]],
  ["units", ["rows", [["int", 0, 255], ["fixed", -500, 500, 0.01], ["fixed", 0, 10, 0.5], ["int", 0, 99]]]],
]);

const wire = ([n, rows]) => [n, new Map(rows.map(([id, ...columns]) => [id, columns]))];
const shown = ([n, rows]) => [n, [...rows].map(([id, columns]) => [id, ...columns])];
const waits = (waiting) => new Map(Object.entries(waiting).map(([at, ids]) => [Number(at), ids]));

const CASES = {
  // x along a parabola through ticks 1, 2 and 3, shown at 5
  parabola: {
    tick: 5, wire: [1, [[3, 100, 4, 7]]], waiting: { 1: [3] },
    kept: { 1: [[0, [[3, 100, 2, 5]]], {}], 2: [[0, [[3, 130, 3, 6]]], {}], 3: [[1, [[3, 170, 4, 7]]], {}] },
    shown: [1, [[3, 280, 6, 7]]],
  },
  // samples at ticks 1, 4 and 6 (Lagrange's weights in thirds and fifths), shown at 9
  uneven: {
    tick: 9, wire: [1, [[3, 100, 4, 7]]], waiting: { 1: [3] },
    kept: { 1: [[0, [[3, 100, 4, 1]]], {}], 4: [[0, [[3, 131, 6, 2]]], {}], 6: [[0, [[3, 157, 7, 3]]], {}] },
    shown: [1, [[3, 204, 8, 3]]],
  },
  // a line through two samples, at most 4 gaps past the newest: tick 30 is shown as 18
  line_capped: {
    tick: 30, wire: [0, [[5, 0, 0, 0]]], waiting: { 1: [5] },
    kept: { 8: [[0, [[5, 1000, 2, 1]]], {}], 10: [[0, [[5, 1100, 3, 2]]], {}] },
    shown: [0, [[5, 1500, 7, 2]]],
  },
  // ties round to even: x 1.5 to 2, y 4.5 to 4
  ties: {
    tick: 5, wire: [0, [[1, 0, 0, 0]]], waiting: { 1: [1] },
    kept: { 2: [[0, [[1, 0, 0, 0]]], {}], 4: [[0, [[1, 1, 3, 9]]], {}] },
    shown: [0, [[1, 2, 4, 9]]],
  },
  // x clamped to its range; y spans more than half its range (a wrap): the newest held
  clamp_and_hold: {
    tick: 4, wire: [0, [[2, 0, 0, 0]]], waiting: { 1: [2] },
    kept: { 1: [[0, [[2, 49000, 0, 0]]], {}], 2: [[0, [[2, 49500, 20, 0]]], {}], 3: [[0, [[2, 49900, 1, 0]]], {}] },
    shown: [0, [[2, 50000, 1, 0]]],
  },
  // one sample: that row; none, in the baseline: as received; none, outside it: not
  // shown; outside it with samples: shown, in id order
  few_samples: {
    tick: 6, wire: [0, [[4, 10, 1, 1], [8, 20, 2, 2]]], waiting: { 1: [8, 4, 6, 1] },
    kept: { 5: [[0, [[1, 300, 5, 5], [4, 40, 4, 4]]], {}], 3: [[0, [[1, 200, 4, 3]]], {}] },
    shown: [0, [[1, 350, 6, 5], [4, 40, 4, 4], [8, 20, 2, 2]]],
  },
  // a snapshot where the row waited, and one without it, are no samples
  skips: {
    tick: 7, wire: [0, [[3, 0, 0, 0]]], waiting: { 1: [3] },
    kept: {
      1: [[0, [[3, 100, 1, 1]]], {}], 2: [[0, [[3, 120, 2, 2]]], {}], 4: [[0, [[3, 999, 9, 9]]], { 1: [3] }],
      5: [[0, []], { 1: [3] }], 3: [[0, [[3, 150, 3, 3]]], {}], 6: [[0, [[3, 1, 1, 1]]], {}],
    },
    shown: [0, [[3, -128, 0, 1]]],
  },
};

test("waiting rows are carried on as Python's carry_waiting carries them", () => {
  assert.equal(CARRIED_INTERVALS, 4);
  for (const [name, c] of Object.entries(CASES)) {
    const kept = new Map(Object.entries(c.kept).map(([t, [w, waiting]]) => [Number(t), [wire(w), waits(waiting)]]));
    const received = wire(c.wire);
    const before = shown(received);
    const got = carryWaiting(SCHEMA, c.tick, received, waits(c.waiting), kept);
    assert.deepEqual(shown(got), c.shown, name);
    assert.deepEqual(shown(received), before, `${name}: the wire view received is left as it is`);
    assert.deepEqual(shown(SCHEMA.carryWaiting(c.tick, received, waits(c.waiting), kept)), c.shown, name);
  }
});

test("no waiting rows: the wire view as received; a row without samples outside the baseline is not shown", () => {
  const received = wire([3, [[1, 5, 5, 5]]]);
  assert.deepEqual(shown(carryWaiting(SCHEMA, 9, received, new Map(), new Map())), [3, [[1, 5, 5, 5]]]);
  assert.deepEqual(shown(carryWaiting(SCHEMA, 9, received, new Map([[1, [1, 2]]]), new Map())), [3, [[1, 5, 5, 5]]]);
  // Snapshots kept from later ticks are no samples.
  const later = new Map([[10, [wire([0, [[1, 9, 9, 9]]]), new Map()]]]);
  assert.deepEqual(shown(carryWaiting(SCHEMA, 9, received, new Map([[1, [1]]]), later)), [3, [[1, 5, 5, 5]]]);
});
