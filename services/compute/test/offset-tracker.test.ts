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

  it("a message of several records (an ExampleBatch) is done only when every one of them is, whichever batches they went to", () => {
    const t = new OffsetTracker();
    expect(t.received(10n, 3)).toBeNull();
    expect(t.received(11n, 1)).toBeNull();
    expect(t.complete(11n)).toBeNull();
    expect(t.complete(10n)).toBeNull();
    expect(t.complete(10n)).toBeNull();
    expect(t.commitPoint).toBeNull();
    expect(t.complete(10n)).toBe(12n);
    expect(t.pending).toBe(0);
  });

  it("a message that gave no record (skipped as bad, or an empty ExampleBatch) is done at once and does not hold the commit point back", () => {
    const t = new OffsetTracker();
    expect(t.received(5n, 0)).toBe(6n);
    t.received(6n, 2);
    expect(t.received(7n, 0)).toBeNull();
    t.complete(6n);
    expect(t.complete(6n)).toBe(8n);
  });
});
