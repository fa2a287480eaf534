import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobSpec__Output } from "@pangea/schema";
import type { WorkerGradients } from "../src/aggregation/gradient-aggregator.js";
import { defaultSlotConfig } from "../src/job/job-model.js";
import { ShardHost } from "../src/shard/shard-host.js";
import { recordingLog, tempDir } from "./fakes/job-fixture.js";

function shard(over: Partial<JobSpec__Output> = {}) {
  const { log, lines } = recordingLog();
  const dir = tempDir("pangea-shard-unit-");
  const defaults = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2);
  const host = new ShardHost({ index: 1, defaults, perSlot: new Map(), seed: 1, maxEmbeddingBytes: 0, maxGradientAbs: 1e6, checkpointDir: dir }, log);
  const job = {
    jobId: "j",
    model: { numDense: 2, slotIds: [0, 1], embeddingDim: 2, bottomMlp: [2], topMlp: [2], architectureJson: "", slotDims: [] },
    steps: 3,
    worldSize: 2,
    batchesPerStep: 2,
    mode: "sync",
    psShards: ["h:0", "h:1"],
    resumedFromStep: 0,
    checkpointEverySteps: 2,
    keepCheckpoints: 0,
    servingSync: [],
    syncIntervalMs: 0,
    denseSyncIntervalMs: 0,
    ...over,
  } as unknown as JobSpec__Output;
  host.start(job);
  return { host, dir, lines };
}

const push = (rank: number, step: number, batchIndex: number): WorkerGradients => ({ rank, step, batchSize: 4, loss: 0.5, dense: [], sparseIds: new Uint32Array(0), sparseGrads: new Float32Array(0), batchIndex });

describe("ShardHost", () => {
  it("applies a sync step when its last batch arrives, ignores a batch taken before, and writes its part every N steps and at the end", async () => {
    const { host, dir, lines } = shard();
    expect(await host.push(push(0, 0, 0))).toMatchObject({ step: 0, workers: 0 });
    expect(await host.push(push(0, 0, 0))).toMatchObject({ duplicate: true });
    expect(await host.push(push(1, 0, 1))).toMatchObject({ step: 1, workers: 2 });
    for (const j of [2, 3, 4, 5]) await host.push(push(j % 2, host.step, j));
    expect(host.step).toBe(3);
    expect(readdirSync(join(dir, "j")).sort()).toEqual(["step-2.shard-1", "step-3.shard-1"]);
    expect(host.checkpointPath).toBe(join(dir, "j", "step-3.shard-1"));
    expect(lines.filter((l) => l.msg === "shard checkpoint saved")).toHaveLength(2);
    await expect(host.push(push(0, 3, 6))).rejects.toThrow("training on shard 1 is over (step 3)");
  });

  it("async: applies each batch on arrival and checkpoints at whole steps' worth of batches", async () => {
    const { host, dir } = shard({ mode: "async", checkpointEverySteps: 1, keepCheckpoints: 1 } as Partial<JobSpec__Output>);
    for (const j of [1, 0, 2]) await host.push(push(0, 0, j));
    expect(host.step).toBe(3);
    expect(readdirSync(join(dir, "j"))).toEqual(["step-1.shard-1"]);
    await host.push(push(0, 0, 3));
    expect(readdirSync(join(dir, "j"))).toEqual(["step-2.shard-1"]);
    expect(existsSync(host.checkpointPath)).toBe(true);
  });
});
