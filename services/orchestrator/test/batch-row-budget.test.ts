import { describe, expect, it } from "vitest";
import { BatchRowBudget } from "../src/server/batch-row-budget.js";

describe("BatchRowBudget", () => {
  const of = (batch: number, ids = 10, job = "j") => ({ job, batch, ids });

  it("holds each batch's rows to its sealed count: rows made add up, ids with rows cost nothing, other batches have their own", () => {
    const b = new BatchRowBudget();
    b.checkCount(of(0), 10, "pull");
    expect(() => b.checkCount(of(0), 11, "pull")).toThrow("pull refused: it names 11 ids, and batch 0 holds 10 (compute's seal)");
    b.admit(of(0), 6, "pull");
    b.note(of(0), 6);
    b.admit(of(0), 4, "pull");
    b.note(of(0), 4);
    // Pulled again: nothing new, nothing made.
    b.admit(of(0), 0, "pull");
    b.note(of(0), 0);
    expect(() => b.admit(of(0), 1, "pull")).toThrow("pull refused: its 1 ids without a row would take the rows made for batch 0 to 11, above the 10 ids the batch holds (compute's seal)");
    b.admit(of(1), 10, "pull");
  });

  it("forgets another job's batches (indices start again), and all but the newest `bound` batches", () => {
    const b = new BatchRowBudget(2);
    b.note(of(0), 10);
    expect(() => b.admit(of(0), 1, "pull")).toThrow(/above the 10 ids/);
    b.admit(of(0, 10, "next-job"), 10, "pull");
    b.note(of(0, 10, "next-job"), 10);
    b.note(of(1, 10, "next-job"), 10);
    b.note(of(2, 10, "next-job"), 10);
    // Batch 0 is the oldest of three: forgotten; 1 and 2 are kept.
    b.admit(of(0, 10, "next-job"), 10, "pull");
    expect(() => b.admit(of(1, 10, "next-job"), 1, "pull")).toThrow(/batch 1 to 11/);
    expect(() => b.admit(of(2, 10, "next-job"), 1, "pull")).toThrow(/batch 2 to 11/);
  });
});
