import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RowTable } from "../src/model/row-table.js";

describe("RowTable", () => {
  it("property: behaves like a Map under random sets and removes, through growth", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 300 }), fc.float({ noNaN: true })), { maxLength: 2000 }), (ops) => {
        const t = new RowTable(2);
        const ref = new Map<number, number>();
        for (const [add, k, v] of ops) {
          const lo = k * 2654435761;
          const hi = (k * 7) & 0xffff;
          if (add) {
            t.set(lo >>> 0, hi, Float32Array.of(v, -v));
            ref.set(k, Math.fround(v));
          } else {
            expect(t.remove(lo >>> 0, hi)).toBe(ref.delete(k));
          }
        }
        expect(t.size).toBe(ref.size);
        for (let k = 0; k <= 300; k++) {
          const r = t.find((k * 2654435761) >>> 0, (k * 7) & 0xffff);
          if (!ref.has(k)) expect(r).toBe(-1);
          else {
            expect(r).toBeGreaterThanOrEqual(0);
            expect(t.rows[r * 2]).toBe(ref.get(k));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
