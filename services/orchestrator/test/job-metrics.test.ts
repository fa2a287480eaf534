import { describe, expect, it } from "vitest";
import { newRegistry } from "@pangea/observe";
import { registerJobMetrics } from "../src/monitor/job-metrics.js";
import { WARMUP_STEPS } from "../src/job/step-coordinator.js";
import { gradients, startedJob } from "./fakes/job-fixture.js";

/** The metric's sample lines (none: absent, only its HELP and TYPE lines). */
async function samples(registry: ReturnType<typeof newRegistry>, name: string): Promise<string[]> {
  return (await registry.metrics()).split("\n").filter((l) => l.startsWith(`${name}{`));
}

describe("the job's /metrics", () => {
  it("the rate after the warm-up is absent until the job's first WARMUP_STEPS steps are done, then the job status's rate", async () => {
    const { job } = startedJob({ steps: WARMUP_STEPS + 3 });
    const registry = newRegistry("orchestrator");
    registerJobMetrics(registry, job);
    const name = "pangea_training_samples_per_second_after_warmup";
    expect(await registry.metrics()).toContain(`# TYPE ${name} gauge`);
    for (let step = 0; step < WARMUP_STEPS + 2; step++) {
      // Not a 0 a dashboard would plot: no sample at all before then (after the last warm-up step, none trained since).
      if (step <= WARMUP_STEPS) expect(await samples(registry, name)).toEqual([]);
      await job.push(gradients(job, 0, 2 * step));
      await job.push(gradients(job, 1, 2 * step + 1));
    }
    // The rate runs to the scrape: a few milliseconds on, so its seconds are not 0 on a fast machine (Date.now() steps in ms).
    await new Promise((r) => setTimeout(r, 5));
    const lines = await samples(registry, name);
    expect(lines).toHaveLength(1);
    // A rate over the milliseconds since the warm-up: it moves with every read, so only its being a rate is checked.
    const value = Number(lines[0]!.slice(lines[0]!.lastIndexOf(" ") + 1));
    expect(Number.isFinite(value) && value > 0).toBe(true);
  });
});
