import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EmbeddingTable } from "../src/embeddings/embedding-table.js";
import { makeSparseOptimizer } from "../src/optim/sparse-optimizers.js";

const adagrad = makeSparseOptimizer("adagrad");

describe("EmbeddingTable", () => {
  it("property: behaves like a Map keyed by the 64-bit id, across growth", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(2000), fc.nat(3)), { maxLength: 3000 }), (ops) => {
        const table = new EmbeddingTable(4, 1, adagrad, undefined, 8);
        const reference = new Map<string, number>();
        for (const [lo, hi] of ops) {
          const key = `${hi}:${lo}`;
          const row = table.findOrInsert(lo, hi);
          if (!reference.has(key)) reference.set(key, row);
          expect(row).toBe(reference.get(key));
        }
        expect(table.size).toBe(reference.size);
        for (const [key, row] of reference) {
          const [hi, lo] = key.split(":").map(Number);
          expect(table.find(lo!, hi!)).toBe(row);
          expect([table.rowIds[2 * row], table.rowIds[2 * row + 1]]).toEqual([lo, hi]);
        }
        expect(table.find(999_999, 7)).toBe(-1);
      }),
      { numRuns: 50 },
    );
  });

  it("gives every id its own row: no two ids share one (collisionless)", () => {
    const table = new EmbeddingTable(2, 1, adagrad);
    const rows = new Set<number>();
    for (let i = 0; i < 50_000; i++) rows.add(table.findOrInsert(i * 7919, i % 3));
    expect(rows.size).toBe(50_000);
  });

  it("initialises a row from (seed, id) alone, uniform in ±0.05, whatever the insertion order", () => {
    const a = new EmbeddingTable(8, 42, adagrad);
    const b = new EmbeddingTable(8, 42, adagrad);
    a.findOrInsert(1, 0);
    const ra = a.findOrInsert(2, 5);
    const rb = b.findOrInsert(2, 5);
    expect(a.weights.subarray(ra * 8, ra * 8 + 8)).toEqual(b.weights.subarray(rb * 8, rb * 8 + 8));
    for (const w of a.weights.subarray(0, 16)) expect(Math.abs(w)).toBeLessThanOrEqual(0.05);
    expect(a.state[0]).toBeCloseTo(0.1, 7); // Monolith's initial accumulator
  });
});

describe("EmbeddingTable removal and expiry", () => {
  it("property: inserts and removes in any order behave like a Map, rows stay dense and keep their values", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(300), fc.nat(2)), { maxLength: 2000 }), (ops) => {
        const t = new EmbeddingTable(2, 3, adagrad, undefined, 4);
        const ref = new Map<string, number>();
        let v = 0;
        for (const [insert, lo, hi] of ops) {
          const key = `${hi}:${lo}`;
          if (insert) {
            const row = t.restoreRow(lo, hi, [v, -v]);
            ref.set(key, v++);
            expect(t.find(lo, hi)).toBe(row);
          } else {
            expect(t.remove(lo, hi)).toBe(ref.delete(key));
          }
        }
        expect(t.size).toBe(ref.size);
        for (const [key, val] of ref) {
          const [hi, lo] = key.split(":").map(Number);
          const row = t.find(lo!, hi!);
          expect(row).toBeGreaterThanOrEqual(0);
          expect(row).toBeLessThan(t.size);
          expect(Array.from(t.weights.subarray(row * 2, row * 2 + 2))).toEqual([val, -val]);
          expect([t.rowIds[2 * row], t.rowIds[2 * row + 1]]).toEqual([lo, hi]);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("evicts exactly the rows not updated since the cutoff", () => {
    let now = 1000;
    const t = new EmbeddingTable(2, 1, adagrad, undefined, 4, () => now);
    for (let i = 0; i < 10; i++) t.findOrInsert(i, 0);
    now = 2000;
    for (let i = 0; i < 10; i += 2) t.applyGradient(t.find(i, 0), new Float32Array([1, 1]), 0);
    const evicted = t.evictOlderThan(1500);
    expect(Array.from(evicted).filter((_, k) => k % 2 === 0).sort((a, b) => a - b)).toEqual([1, 3, 5, 7, 9]);
    expect(t.size).toBe(5);
    for (let i = 0; i < 10; i++) expect(t.find(i, 0) >= 0).toBe(i % 2 === 0);
  });

  it.each([
    [{ kind: "zeros" as const }, [0, 0, 0]],
    [{ kind: "ones" as const }, [1, 1, 1]],
    [{ kind: "constant" as const, value: 0.25 }, [0.25, 0.25, 0.25]],
  ])("initializes new rows with %j", (init, expected) => {
    const t = new EmbeddingTable(3, 1, adagrad, init);
    const r = t.findOrInsert(5, 6);
    expect(Array.from(t.weights.subarray(r * 3, r * 3 + 3))).toEqual(expected);
  });
});
