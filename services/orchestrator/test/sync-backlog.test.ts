import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compactRounds, joinRounds, splitRound, type SyncRound } from "../src/sync/sync-backlog.js";

/**
 * A replica that missed several parameter sync rounds gets one: applying it
 * (tombstones, then rows, as serving does) leaves the replica exactly where
 * applying every round in order would, from any starting table.
 */

// Ids live in two slots of row widths 2 and 3 (the slot is hi >> 16, as in the v2 layout's upper word).
const widthOf = (hi: number) => ((hi >>> 16) === 1 ? 2 : 3);
const idOf = (n: number): [number, number] => [n, (n % 2 === 0 ? 1 : 2) << 16];

type Table = Map<string, number[]>;

function apply(table: Table, r: SyncRound): void {
  for (let i = 0; i < r.tombstones.length; i += 2) table.delete(`${r.tombstones[i]}:${r.tombstones[i + 1]}`);
  let at = 0;
  for (let i = 0; i < r.ids.length; i += 2) {
    const w = r.width ?? widthOf(r.ids[i + 1]!);
    table.set(`${r.ids[i]}:${r.ids[i + 1]}`, Array.from(r.rows.subarray(at, at + w)));
    at += w;
  }
}

const roundArb = fc.record({
  rows: fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 6 }),
  evicted: fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 4 }),
  seed: fc.integer({ min: 0, max: 1000 }),
  dense: fc.boolean(),
});

function round(spec: { rows: number[]; evicted: number[]; seed: number; dense: boolean }, k: number): SyncRound {
  const ids = Uint32Array.from(spec.rows.flatMap(idOf));
  const values: number[] = [];
  for (const n of spec.rows) for (let c = 0; c < widthOf(idOf(n)[1]); c++) values.push(spec.seed + 100 * n + c);
  return { ids, rows: Float32Array.from(values), width: null, tombstones: Uint32Array.from(spec.evicted.flatMap(idOf)), dense: spec.dense ? [Float32Array.of(k)] : null };
}

describe("compactRounds", () => {
  it("one compacted round equals every round applied in order, and holds each id at most once", () => {
    fc.assert(
      fc.property(fc.array(roundArb, { minLength: 1, maxLength: 8 }), fc.uniqueArray(fc.integer({ min: 0, max: 11 })), (specs, start) => {
        const rounds = specs.map(round);
        const initial: Table = new Map(start.map((n) => [idOf(n).join(":"), [-1, -1, -1].slice(0, widthOf(idOf(n)[1]))]));
        const inOrder = new Map(initial);
        for (const r of rounds) apply(inOrder, r);
        const c = compactRounds(rounds, widthOf);
        const compacted = new Map(initial);
        apply(compacted, c);
        expect(compacted).toEqual(inOrder);
        const keys = [...Array(c.ids.length / 2).keys()].map((i) => `${c.ids[2 * i]}:${c.ids[2 * i + 1]}`);
        const gone = [...Array(c.tombstones.length / 2).keys()].map((i) => `${c.tombstones[2 * i]}:${c.tombstones[2 * i + 1]}`);
        expect(new Set([...keys, ...gone]).size).toBe(keys.length + gone.length);
        const lastDense = [...rounds].reverse().find((r) => r.dense)?.dense ?? null;
        expect(c.dense).toEqual(lastDense);
      }),
      { numRuns: 300 },
    );
  });

  it("rows of one width keep the [n, width] layout", () => {
    const r: SyncRound = { ids: Uint32Array.from([...idOf(0), ...idOf(2)]), rows: Float32Array.of(1, 2, 3, 4), width: 2, tombstones: new Uint32Array(0), dense: null };
    const c = compactRounds([r, { ...r, rows: Float32Array.of(5, 6, 7, 8) }], widthOf);
    expect(c.width).toBe(2);
    expect(Array.from(c.rows)).toEqual([5, 6, 7, 8]);
  });

  it("a round split into parts of at most maxValues values: applied in order, or any tail of them joined, leaves the replica where the round does", () => {
    fc.assert(
      fc.property(roundArb, fc.integer({ min: 1, max: 8 }), fc.uniqueArray(fc.integer({ min: 0, max: 11 })), fc.nat(), (spec, maxValues, start, cut) => {
        const r = round({ ...spec, dense: true }, 1);
        const parts = splitRound(r, widthOf, maxValues);
        for (const p of parts) expect([p.ids.length === 2 || p.rows.length <= maxValues, p.tombstones.length / 2 <= maxValues]).toEqual([true, true]);
        // Tombstones before rows: no part after the first with rows has any.
        const firstRows = parts.findIndex((p) => p.ids.length > 0);
        if (firstRows >= 0) expect(parts.slice(firstRows + 1).every((p) => p.tombstones.length === 0)).toBe(true);
        expect(parts.slice(0, -1).every((p) => p.dense === null)).toBe(true);
        const initial: Table = new Map(start.map((n) => [idOf(n).join(":"), [-1, -1, -1].slice(0, widthOf(idOf(n)[1]))]));
        const whole = new Map(initial);
        apply(whole, r);
        const inParts = new Map(initial);
        for (const p of parts) apply(inParts, p);
        expect(inParts).toEqual(whole);
        // A replica that acknowledged the first k parts, then gets the rest as one.
        const k = cut % parts.length;
        const resumed = new Map(initial);
        for (const p of parts.slice(0, k)) apply(resumed, p);
        const rest = joinRounds(parts.slice(k));
        apply(resumed, rest);
        expect(resumed).toEqual(whole);
        expect(rest.dense).toEqual(r.dense);
        expect(joinRounds(parts)).toEqual({ ...r, ids: Uint32Array.from(r.ids), rows: Float32Array.from(r.rows), tombstones: Uint32Array.from(r.tombstones) });
      }),
      { numRuns: 300 },
    );
  });
});
