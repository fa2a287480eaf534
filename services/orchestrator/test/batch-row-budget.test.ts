import { describe, expect, it } from "vitest";
import { BatchRowBudget } from "../src/server/batch-row-budget.js";

describe("BatchRowBudget", () => {
  const of = (batch: number, ids = 10, run = "j.k1", seal = "s") => ({ run, batch, ids, seal });

  it("holds each batch's rows to its sealed count: rows made add up, ids with rows cost nothing, other batches have their own", () => {
    const b = new BatchRowBudget(() => false, " by parameter-server shard 1");
    b.checkCount(of(0), 10, "pull");
    expect(() => b.checkCount(of(0), 11, "pull")).toThrow("pull refused by parameter-server shard 1: it names 11 ids, and batch 0 holds 10 (compute's seal)");
    b.admit(of(0), 6, "pull");
    b.note(of(0), 6);
    b.admit(of(0), 4, "pull");
    b.note(of(0), 4);
    // Pulled again: nothing new, nothing made.
    b.admit(of(0), 0, "pull");
    b.note(of(0), 0);
    expect(() => b.admit(of(0), 1, "pull")).toThrow("pull refused by parameter-server shard 1: its 1 ids without a row would take the rows made for batch 0 to 11, above the 10 ids the batch holds (compute's seal)");
    b.admit(of(1), 10, "pull");
    // Other records under the same index (a stream source asked again) come with their own seal and count.
    b.admit(of(0, 10, "j.k1", "other"), 10, "pull");
  });

  it("starts every count again in another run of the job (a resume under the same id reloads the tables)", () => {
    const b = new BatchRowBudget(() => false);
    b.note(of(0), 10);
    expect(() => b.admit(of(0), 1, "pull")).toThrow(/above the 10 ids/);
    b.admit(of(0, 10, "j.k2"), 10, "pull");
  });

  it("past its bound drops the counts of batches done, never those of batches a pull may still be for", () => {
    const done = new Set<number>();
    const b = new BatchRowBudget((batch) => done.has(batch), "", 2);
    b.note(of(0), 10);
    b.note(of(1), 10);
    b.note(of(2), 10);
    // Nothing done: all three kept, however many.
    expect(b.size).toBe(3);
    expect(() => b.admit(of(0), 1, "pull")).toThrow(/batch 0 to 11/);
    done.add(0);
    done.add(1);
    for (let j = 3; j < 7; j++) b.note(of(j), 10);
    expect(b.size).toBeLessThan(7);
    b.admit(of(0), 10, "pull");
    expect(() => b.admit(of(2), 1, "pull")).toThrow(/batch 2 to 11/);
  });
});
