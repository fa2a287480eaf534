import { describe, expect, it } from "vitest";
import { RejoinBackoff } from "../src/cluster/rejoin-backoff.js";

describe("RejoinBackoff", () => {
  it("waits nothing after a membership that lasted, and doubles up to its cap after ones that ended at once", () => {
    const b = new RejoinBackoff(100, 1_000, 10_000);
    expect(b.next(0, 20_000)).toBe(0);
    expect([1, 2, 3, 4, 5, 6].map(() => b.next(50_000, 50_010))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    // One that lasted starts the count again.
    expect(b.next(60_000, 70_000)).toBe(0);
    expect(b.next(80_000, 80_001)).toBe(100);
  });
});
