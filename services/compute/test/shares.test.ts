import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { batchSlice, shareBatches, type ShareRequest } from "../src/batching/shares.js";
import { ComputeErrors } from "../src/errors.js";

const take = (req: ShareRequest, records: number) => [...shareBatches(req, records)];

describe("worker shares", () => {
  it("property: over one epoch the shares are disjoint and cover every record exactly once", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 8 }), (records, batchSize, world) => {
        const seen = new Uint8Array(records);
        for (let rank = 0; rank < world; rank++) {
          for (const b of take({ workerRank: rank, worldSize: world, batchSize, maxBatches: 0, split: "eval" }, records)) {
            expect(b.batchIndex % world).toBe(rank);
            for (let r = b.start; r < b.start + b.count; r++) seen[r]!++;
          }
        }
        expect(seen.every((c) => c === 1)).toBe(true);
      }),
    );
  });

  it("wraps a bounded train split into later epochs when more batches are asked for", () => {
    const b = take({ workerRank: 0, worldSize: 1, batchSize: 4, maxBatches: 5, split: "train" }, 10);
    expect(b.map((x) => [x.epoch, x.start, x.count])).toEqual([
      [0, 0, 4], [0, 4, 4], [0, 8, 2], [1, 0, 4], [1, 4, 4],
    ]);
  });

  it("serves maxBatches batches of an unbounded split", () => {
    const b = take({ workerRank: 1, worldSize: 2, batchSize: 8, maxBatches: 3, split: "train" }, 0);
    expect(b.map((x) => x.start)).toEqual([8, 24, 40]);
  });

  it("an eval split of 0 records (--eval-fraction 0) has no batches; it is empty, not unbounded", () => {
    expect(take({ workerRank: 0, worldSize: 1, batchSize: 8, maxBatches: 0, split: "eval" }, 0)).toEqual([]);
    expect(take({ workerRank: 0, worldSize: 1, batchSize: 8, maxBatches: 3, split: "eval" }, 0)).toEqual([]);
    expect(() => batchSlice(0, 8, 0, "eval", "trainer-0")).toThrow("eval batch 0 is past the split's 0 batches");
  });

  it.each([
    [{ workerRank: 2, worldSize: 2, batchSize: 8, maxBatches: 1, split: "train" as const }, 100, "worker rank 2 is not below world size 2"],
    [{ workerRank: 0, worldSize: 1, batchSize: 0, maxBatches: 1, split: "train" as const }, 100, "batch size 0 is outside 1..65536"],
    [{ workerRank: 0, worldSize: 1, batchSize: 8, maxBatches: 0, split: "train" as const }, 0, "the train split is unbounded, so maxBatches must be set"],
  ])("refuses an inconsistent request (%#)", (req, records, message) => {
    try {
      take(req, records);
      expect.unreachable();
    } catch (err) {
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_REQUEST")).toBe(true);
      expect((err as Error).message).toContain(message);
    }
  });
});
