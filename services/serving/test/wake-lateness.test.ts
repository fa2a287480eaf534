import { describe, expect, it } from "vitest";
import { wakeLateness } from "../src/bench/wake-lateness.js";

describe("the benchmark's wake-up lateness", () => {
  it("counts a timer woken late by a stalled loop, and only that one", async () => {
    // One 40 ms stall in the middle of the run: the timer due meanwhile is woken about that late.
    const stall = setTimeout(() => {
      const until = performance.now() + 40;
      while (performance.now() < until);
    }, 150);
    const r = await wakeLateness(0.4);
    clearTimeout(stall);
    expect(r.timers).toBeGreaterThan(20);
    expect(r.maxMs).toBeGreaterThan(30);
    expect(r.over10Ms).toBeGreaterThanOrEqual(1);
    expect(r.over10Ms).toBeLessThanOrEqual(r.over5Ms);
    expect(r.p50Ms).toBeLessThan(r.maxMs);
  });
});
