import { describe, expect, it } from "vitest";
import type { JobStatus } from "@pangea/schema";
import { ProgressHistory } from "../src/monitor/progress-history.js";

const status = (step: number, loss = 0.5): JobStatus => ({ step, smoothedLoss: loss, samples: step * 64, samplesPerSecond: 100, streamingAuc: Number.NaN }) as JobStatus;

describe("ProgressHistory", () => {
  it("records a point only when the step advances with a finite loss", () => {
    const h = new ProgressHistory();
    expect(h.record(status(1), 1000)).toBe(true);
    expect(h.record(status(1), 1500)).toBe(false);
    expect(h.record(status(2, Number.NaN), 2000)).toBe(false);
    expect(h.record(status(3, 0.4), 2500)).toBe(true);
    expect(h.points()).toEqual([
      { t: 1000, step: 1, loss: 0.5, samples: 64, samplesPerSecond: 100, auc: Number.NaN },
      { t: 2500, step: 3, loss: 0.4, samples: 192, samplesPerSecond: 100, auc: Number.NaN },
    ]);
  });

  it("stays bounded on a long job, thinning the older half and keeping every recent step", () => {
    const h = new ProgressHistory();
    for (let step = 1; step <= 10_000; step++) h.record(status(step), step);
    const steps = h.points().map((p) => p.step);
    expect(steps.length).toBeLessThanOrEqual(2000);
    expect(steps.length).toBeGreaterThan(1000);
    expect(steps.every((s, i) => i === 0 || s > steps[i - 1]!)).toBe(true);
    expect(steps[0]).toBe(1);
    expect(steps.slice(-1000)).toEqual(Array.from({ length: 1000 }, (_, i) => 9001 + i));
  });
});
