import { describe, expect, it } from "vitest";
import type { WorkerGradients } from "../src/aggregation/gradient-aggregator.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job-model.js";
import type { TrainingMode } from "../src/job/work-plan.js";
import { ParameterShard } from "../src/shard/parameter-shard.js";
import { codeOf, recordingLog, tempDir } from "./fakes/job-fixture.js";

function parameterShard(index: number, mode: TrainingMode, maxStaleness: number | null, resumed: ConstructorParameters<typeof ParameterShard>[2] = null) {
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), new Map(), 1);
  store.declareSlots([0]);
  const spec = { numDense: 1, numSlots: 1, embeddingDim: 2, bottomMlp: [2], topMlp: [2] };
  const checkpoint = { checkpointDir: tempDir("pangea-pshard-unit-"), jobId: "j", psShards: 2, shardIndex: index, checkpointEverySteps: 0, checkpointEverySeconds: 0, keepCheckpoints: 0 };
  return new ParameterShard({ index, mode, batchesPerStep: 2, steps: 3, maxStaleness, slotIds: [0], checkpoint, sync: null }, { spec, store, dense: null }, resumed, recordingLog().log);
}

const grads = (step: number, batchIndex: number): WorkerGradients => ({ rank: 0, step, batchSize: 4, loss: 0.25, dense: [], sparseIds: new Uint32Array(0), sparseGrads: new Float32Array(0), batchIndex });

function take(s: ParameterShard, g: WorkerGradients) {
  const dup = s.admit(g);
  return dup ?? s.take(g).ack;
}

describe("ParameterShard", () => {
  it("async: shard 0 drops gradients older than --max-staleness updates; another shard takes what trainers send it (shard 0 already judged)", () => {
    const judge = parameterShard(0, "async", 1);
    const follower = parameterShard(1, "async", null);
    for (const s of [judge, follower]) for (const j of [0, 1]) take(s, grads(s.version, j));
    expect(take(judge, grads(0, 2))).toMatchObject({ stale: true, step: 2 });
    expect(take(follower, grads(0, 2))).toMatchObject({ stale: false, step: 3 });
    expect([judge.appliedBatches, follower.appliedBatches]).toEqual([2, 3]);
    expect([judge.wasTaken(2), follower.wasTaken(2)]).toEqual([true, true]);
  });

  it("never takes a batch twice, refuses one outside the job, and is over after the last", async () => {
    const s = parameterShard(1, "sync", null);
    expect(take(s, grads(0, 0))).toMatchObject({ step: 0, workers: 0 });
    expect(take(s, grads(0, 0))).toMatchObject({ duplicate: true });
    // A bad push for a batch taken is refused as bad, not answered "duplicate" (a NaN loss, a batch size of 0).
    expect(await codeOf(() => s.admit({ ...grads(0, 0), loss: Number.NaN }))).toBe("ORCH_ERR_BAD_GRADIENT");
    expect(await codeOf(() => s.admit({ ...grads(0, 0), batchSize: 0 }))).toBe("ORCH_ERR_BAD_GRADIENT");
    expect(await codeOf(() => s.admit(grads(0, 6)))).toBe("ORCH_ERR_NOT_ASSIGNED");
    for (const j of [1, 2, 3, 4]) take(s, grads(s.version, j));
    expect(s.trainingOver).toBe(false);
    take(s, grads(s.version, 5));
    expect([s.trainingOver, s.version]).toEqual([true, 3]);
  });

  it("resumed: the checkpoint's finished batches count as taken, its outstanding ones (async) do not", () => {
    const s = parameterShard(1, "async", null, { version: 3, finishedBatches: 3, outstanding: [1] });
    expect([0, 1, 2, 3, 4].map((j) => s.wasTaken(j))).toEqual([true, false, true, true, false]);
    expect(s.version).toBe(3);
    expect(take(s, grads(3, 0))).toMatchObject({ duplicate: true });
  });
});
