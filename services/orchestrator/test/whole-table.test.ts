import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EmbeddingStore, type SlotConfig } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import type { SyncRound } from "../src/sync/sync-backlog.js";
import { wholeTableParts } from "../src/sync/whole-table.js";

/**
 * A whole-table send as parts: applied in order (tombstones, then rows, as serving does), they leave a replica
 * holding exactly the store's rows, each part within the bound, the evictions before any row, the dense weights with
 * the last; and each part's rows are read when it is taken, not copied up front.
 */

const base: SlotConfig = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05 }, 4);
// Slot 3 rows are 4 wide, slot 7 rows 2 wide: parts carry rows of both side by side.
const perSlot = new Map([[7, { ...base, dim: 2 }]]);
const key = (lo: number, hi: number) => `${lo}:${hi}`;
const idOf = (n: number): [number, number] => [n, ((n % 3 === 0 ? 7 : 3) << 16) >>> 0];

function storeWith(rows: number[], evicted: number[]): EmbeddingStore {
  const store = new EmbeddingStore(base, perSlot, 1);
  for (const n of [...rows, ...evicted]) {
    const [lo, hi] = idOf(n);
    const w = store.widthOf(hi);
    store.assign(Uint32Array.of(lo, hi), 1, Float32Array.from({ length: w }, (_, c) => n * 10 + c), w);
  }
  if (evicted.length) store.evict(Uint32Array.from(evicted.flatMap(idOf)), evicted.length);
  return store;
}

function apply(table: Map<string, number[]>, r: SyncRound, widthOf: (hi: number) => number): void {
  for (let i = 0; i < r.tombstones.length; i += 2) table.delete(key(r.tombstones[i]!, r.tombstones[i + 1]!));
  let at = 0;
  for (let i = 0; i < r.ids.length; i += 2) {
    const w = r.width ?? widthOf(r.ids[i + 1]!);
    table.set(key(r.ids[i]!, r.ids[i + 1]!), Array.from(r.rows.subarray(at, at + w)));
    at += w;
  }
  expect(at).toBe(r.rows.length);
}

describe("wholeTableParts", () => {
  it("parts that, applied in order to any replica, leave exactly the store's rows; each within the bound", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 40 }),
        fc.uniqueArray(fc.integer({ min: 61, max: 90 }), { maxLength: 12 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 90 }), { maxLength: 20 }),
        fc.integer({ min: 4, max: 30 }),
        (rows, evicted, stale, maxValues) => {
          const store = storeWith(rows, evicted);
          const widthOf = (hi: number) => store.widthOf(hi);
          // A replica from disk: any ids, with values not the store's.
          const replica = new Map(stale.map((n) => [key(...idOf(n)), [-1]]));
          const parts = [...wholeTableParts(store, () => [Float32Array.of(42)], maxValues)];
          let rowsSeen = false;
          parts.forEach((p, k) => {
            expect(p.rows.length).toBeLessThanOrEqual(maxValues);
            expect(p.tombstones.length / 2).toBeLessThanOrEqual(maxValues);
            if (p.tombstones.length) expect(rowsSeen).toBe(false);
            if (p.ids.length) rowsSeen = true;
            expect(p.dense === null).toBe(k < parts.length - 1);
            apply(replica, p, widthOf);
          });
          const want = new Map(rows.map((n) => {
            const [lo, hi] = idOf(n);
            return [key(lo, hi), Array.from({ length: store.widthOf(hi) }, (_, c) => n * 10 + c)];
          }));
          // Stale ids the store never had stay on the replica (nothing says to remove them); every other is the store's.
          for (const n of stale) if (!rows.includes(n) && !evicted.includes(n)) want.set(key(...idOf(n)), [-1]);
          expect(Object.fromEntries(replica)).toEqual(Object.fromEntries(want));
          expect(parts.at(-1)!.dense).toEqual([Float32Array.of(42)]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("reads each part's rows when it is taken: a row changed since the listing goes as it is then, one removed is left out", () => {
    const store = storeWith([1, 2, 4, 5, 7, 8], []);
    const gen = wholeTableParts(store, () => null, 8);
    const first = gen.next().value as SyncRound;
    expect(first.ids.length / 2).toBe(2);
    const [lo5, hi5] = idOf(5);
    const [lo8, hi8] = idOf(8);
    store.assign(Uint32Array.of(lo5, hi5), 1, Float32Array.of(9, 9, 9, 9), 4);
    store.evict(Uint32Array.of(lo8, hi8), 1);
    const rest = [...gen];
    const table = new Map<string, number[]>();
    for (const p of [first, ...rest]) apply(table, p, (hi) => store.widthOf(hi));
    expect(table.get(key(lo5, hi5))).toEqual([9, 9, 9, 9]);
    expect(table.has(key(lo8, hi8))).toBe(false);
    expect(table.size).toBe(5);
  });

  it("an empty store is one part, carrying the dense weights", () => {
    const parts = [...wholeTableParts(new EmbeddingStore(base, perSlot, 1), () => [Float32Array.of(1)], 8)];
    expect(parts).toHaveLength(1);
    expect(parts[0]!.ids.length).toBe(0);
    expect(parts[0]!.dense).toEqual([Float32Array.of(1)]);
  });
});
