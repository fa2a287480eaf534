import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EmbeddingTable } from "../src/embeddings/embedding-table.js";
import { makeSparseOptimizer } from "../src/optim/sparse-optimizers.js";

const adagrad = makeSparseOptimizer("adagrad");

describe("EmbeddingTable", () => {
  it("property: behaves like a Map keyed by the 64-bit id, across growth", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(2000), fc.nat(3)), { maxLength: 3000 }), (ops) => {
        const table = new EmbeddingTable(4, 1, adagrad, 0.05, 8);
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
