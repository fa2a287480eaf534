import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { OffsetTracker } from "../src/sources/offset-tracker.js";

describe("OffsetTracker", () => {
  it("property: the commit point is always one past the longest fully-done prefix, whatever the ack order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 1000 }), (n, seed) => {
        const t = new OffsetTracker();
        const offsets = Array.from({ length: n }, (_, i) => BigInt(100 + i * 2)); // offsets need not be contiguous
        offsets.forEach((o) => t.received(o));
        const order = [...offsets].sort((a, b) => Number(((a * 7919n + BigInt(seed)) % 1009n) - ((b * 7919n + BigInt(seed)) % 1009n)));
        const done = new Set<bigint>();
        for (const o of order) {
          t.complete(o);
          done.add(o);
          let k = 0;
          while (k < n && done.has(offsets[k]!)) k++;
          expect(t.commitPoint).toBe(k === 0 ? null : offsets[k - 1]! + 1n);
          expect(t.pending).toBe(n - k);
        }
      }),
      { numRuns: 50 },
    );
  });
});
