import { describe, expect, it } from "vitest";
import type { WorkerGradients } from "../src/aggregation/gradient-aggregator.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { zeroCounters } from "../src/job/job-counters.js";
import { defaultSlotConfig } from "../src/job/job-model.js";
import { StepCoordinator, WARMUP_STEPS } from "../src/job/step-coordinator.js";
import type { TrainingProgress } from "../src/checkpoint/checkpoint.js";
import type { TrainingMode } from "../src/job/work-plan.js";
import { ParameterShard } from "../src/shard/parameter-shard.js";
import { codeOf, recordingLog, tempDir } from "./fakes/job-fixture.js";

/** Shard 0's training loop over a real ParameterShard (one slot, no dense parameters): 2 batches a step, 3 steps (or `steps`, resumed from `resumed`). */
function coordinator(mode: TrainingMode, maxStaleness = 8, steps = 3, resumed: TrainingProgress | null = null) {
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), new Map(), 1);
  store.declareSlots([0]);
  const spec = { numDense: 1, numSlots: 1, embeddingDim: 2, bottomMlp: [2], topMlp: [2] };
  const checkpoint = { checkpointDir: tempDir("pangea-steps-unit-"), jobId: "j", psShards: 1, shardIndex: 0, checkpointEverySteps: 0, checkpointEverySeconds: 0, keepCheckpoints: 0 };
  const shard = new ParameterShard({ index: 0, mode, batchesPerStep: 2, steps, maxStaleness, slotIds: [0], checkpoint, sync: null }, { spec, store, dense: null }, resumed ? { version: resumed.denseUpdates, finishedBatches: resumed.finishedBatches, outstanding: resumed.outstanding } : null, recordingLog().log);
  const counts = zeroCounters();
  const c = new StepCoordinator({ mode, batchesPerStep: 2, steps }, shard, counts, resumed);
  shards.set(c, { shard, mode });
  return { c, counts };
}

const shards = new WeakMap<StepCoordinator, { shard: ParameterShard; mode: TrainingMode }>();

/**
 * The tally by a scan of every batch of the job, as batchTally once counted
 * it (it now counts without the scan, which cost 30 ms a status call for a
 * million-step job): every push in these tests is checked against it.
 */
function scannedTally(c: StepCoordinator): { applied: number; missing: number } {
  const { shard, mode } = shards.get(c)!;
  const outstanding = new Set(c.plan.outstanding());
  const front = c.plan.finishedBatches + outstanding.size;
  let applied = 0;
  let missing = 0;
  for (let j = 0; j < c.plan.totalBatches; j++) {
    if (shard.wasTaken(j)) applied++;
    else if (j < front && !outstanding.has(j) && (mode === "async" || j < c.plan.step * 2)) missing++;
  }
  return { applied, missing };
}

const push = (batchIndex: number, step: number, loss = 0.5): WorkerGradients => ({ rank: 0, step, batchSize: 4, loss, dense: [], sparseIds: new Uint32Array(0), sparseGrads: new Float32Array(0), batchIndex });
const alive = (workerId: string) => ({ workerId, alive: true });

/** Admits and applies a push as the job does; returns what the job does next (or the duplicate's ack). */
function give(c: StepCoordinator, worker: string, g: WorkerGradients) {
  const dup = c.admit(g, alive(worker));
  const next = dup ? "duplicate" : c.apply(g).next;
  expect(c.batchTally()).toEqual(scannedTally(c));
  return next;
}

describe("StepCoordinator", () => {
  it("sync: the step waits for its last batch, then the next is planned; the job is done after the last step", () => {
    const { c, counts } = coordinator("sync");
    for (let step = 0; step < 3; step++) {
      c.plan.beginStep(["a", "b"]);
      const [ja] = c.plan.workFor("a");
      const [jb] = c.plan.workFor("b");
      expect(give(c, "a", push(ja!, step, 0.5))).toBe("wait");
      expect(c.version).toBe(step);
      expect(give(c, "b", push(jb!, step, 0.7))).toBe(step < 2 ? "step" : "done");
      expect(c.version).toBe(step + 1);
    }
    expect(c.samples).toBe(24);
    expect(counts.firstLossStep).toBe(1);
    expect(counts.firstLoss).toBeCloseTo(0.6, 6);
    expect(c.batchTally()).toEqual({ applied: 6, missing: 0 });
    expect(c.progress(3, 4, undefined, { last: [], smoothed: [] })).toMatchObject({ mode: "sync", step: 3, finishedBatches: 6, outstanding: [], samples: 24 });
  });

  it("refuses a batch that is another trainer's or was never handed out, and a dead trainer's; a batch finished before is a duplicate, not applied twice", async () => {
    const { c, counts } = coordinator("sync");
    c.plan.beginStep(["a", "b"]);
    const [ja] = c.plan.workFor("a");
    const [jb] = c.plan.workFor("b");
    expect(await codeOf(() => c.admit(push(jb!, 0), alive("a")))).toBe("ORCH_ERR_NOT_ASSIGNED");
    expect(await codeOf(() => c.admit(push(5, 0), alive("a")))).toBe("ORCH_ERR_NOT_ASSIGNED");
    expect(await codeOf(() => c.admit(push(jb!, 0), { workerId: "c", alive: false }))).toBe("ORCH_ERR_NOT_A_MEMBER");
    expect(give(c, "a", push(ja!, 0))).toBe("wait");
    // The batch was a's; after a's death it was given to b, and a's late push arrives first: b's copy is then a duplicate.
    c.plan.release("a", ["b"]);
    expect(give(c, "a", push(ja!, 0))).toBe("duplicate");
    expect(counts.duplicateBatches).toBe(1);
    // A bad push for that finished batch is refused as bad (it was answered "duplicate" and counted one).
    expect(await codeOf(() => c.admit(push(ja!, 0, Number.NaN), alive("a")))).toBe("ORCH_ERR_BAD_GRADIENT");
    expect(counts.duplicateBatches).toBe(1);
    expect(give(c, "b", push(jb!, 0))).toBe("step");
    expect(c.batchTally()).toEqual({ applied: 2, missing: 0 });
  });

  it("async: each batch is applied on arrival; a gradient older than --max-staleness updates is dropped and counted", () => {
    const { c, counts } = coordinator("async", 1);
    const [j0] = c.plan.workFor("a");
    const [j1] = c.plan.workFor("b");
    expect(give(c, "a", push(j0!, 0))).toBe("continue");
    const [j2] = c.plan.workFor("a");
    expect(give(c, "a", push(j2!, 1))).toBe("continue");
    expect(c.version).toBe(2);
    // b's batch was computed on version 0, two updates ago: stale, dropped, still finished.
    expect(give(c, "b", push(j1!, 0))).toBe("continue");
    expect(counts.staleGradients).toBe(1);
    expect(c.plan.isFinished(j1!)).toBe(true);
    expect(c.version).toBe(2);
  });

  it("the rate after the warm-up: taken from the end of the 10th step, none before it (sync)", () => {
    const { c } = coordinator("sync", 8, 12);
    expect(WARMUP_STEPS).toBe(10);
    for (let step = 0; step < 12; step++) {
      c.plan.beginStep(["a", "b"]);
      const [ja] = c.plan.workFor("a");
      const [jb] = c.plan.workFor("b");
      give(c, "a", push(ja!, step));
      give(c, "b", push(jb!, step));
      if (step === 8) expect(c.warmedUp).toBeNull();
      if (step === 9) expect(c.warmedUp?.samples).toBe(10 * 2 * 4);
    }
    const at = c.warmedUp!.at;
    // Two steps of 2 x 4 samples since then, over 2 s.
    expect(c.rateAfterWarmup(at + 2000)).toBe(8);
    expect(c.rateAfterWarmup(at)).toBe(0);
  });

  it("a job resumed from an async checkpoint mid-step counts its warm-up from its own first batch", () => {
    const resumed: TrainingProgress = { mode: "async", batchesPerStep: 2, step: 2, finishedBatches: 5, outstanding: [], denseUpdates: 5, batchSize: 4, samples: 20 };
    const { c } = coordinator("async", 1000, 20, resumed);
    for (let k = 0; k < 2 * WARMUP_STEPS; k++) {
      expect(c.warmedUp, `after ${k} batches of this process`).toBeNull();
      const [j] = c.plan.workFor("a");
      give(c, "a", push(j!, c.version));
    }
    expect(c.warmedUp?.samples).toBe(20 + 2 * WARMUP_STEPS * 4);
  });
});
