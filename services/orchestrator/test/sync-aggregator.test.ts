import { describe, expect, it } from "vitest";
import type { DlrmSpec } from "@pangea/model";
import { SyncAggregator, type WorkerGradients } from "../src/aggregation/sync-aggregator.js";
import { DenseStore } from "../src/params/dense-store.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { OrchestratorErrors } from "../src/errors.js";

const spec: DlrmSpec = { numDense: 2, numSlots: 1, embeddingDim: 2, bottomMlp: [2], topMlp: [] };

function setup(world: number) {
  const dense = new DenseStore(spec, 1, 0.01);
  const store = new EmbeddingStore({ ...defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2) }, new Map(), 1);
  // Rows exist once pulled; create them as a pull would.
  for (const id of [1, 5, 6]) store.rowForTraining(id, 0);
  const table = store.table(0);
  return { dense, table, store, agg: new SyncAggregator(world, dense, store) };
}

function grads(rank: number, step: number, value: number, ids: number[], dense: DenseStore): WorkerGradients {
  return {
    rank,
    step,
    batchSize: 4,
    loss: value,
    dense: dense.values.map((v) => new Float32Array(v.length).fill(value)),
    sparseIds: Uint32Array.from(ids.flatMap((i) => [i, 0])),
    sparseGrads: new Float32Array(ids.length * 2).fill(value),
  };
}

describe("SyncAggregator", () => {
  it("applies the average of all workers' gradients once the last one arrives", async () => {
    const two = setup(2);
    const one = setup(1);
    const p1 = two.agg.accept(grads(0, 0, 1, [5, 6], two.dense));
    const p2 = two.agg.accept(grads(1, 0, 3, [6], two.dense));
    const [r1, r2] = await Promise.all([p1, p2]);
    expect(r1).toEqual({ step: 1, meanLoss: 2, workers: 2, samples: 8 });
    expect(r2).toEqual(r1);
    // Reference: one worker pushing the average directly.
    const avg = grads(0, 0, 2, [], one.dense);
    avg.sparseIds = Uint32Array.from([5, 0, 6, 0]);
    avg.sparseGrads = Float32Array.from([0.5, 0.5, 2, 2]); // id 5: (1 + 0) / 2; id 6: (1 + 3) / 2
    await one.agg.accept(avg);
    two.dense.values.forEach((v, i) => expect(v).toEqual(one.dense.values[i]));
    for (const id of [5, 6]) {
      const a = two.table.find(id, 0);
      const b = one.table.find(id, 0);
      expect(two.table.weights.subarray(a * 2, a * 2 + 2)).toEqual(one.table.weights.subarray(b * 2, b * 2 + 2));
    }
  });

  it("holds a push until every worker has pushed (the step barrier)", async () => {
    const { agg, dense } = setup(2);
    let done = false;
    const p = agg.accept(grads(0, 0, 1, [], dense)).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    await agg.accept(grads(1, 0, 1, [], dense));
    await p;
    expect(done).toBe(true);
  });

  it.each([
    ["a stale step", (d: DenseStore) => grads(0, 3, 1, [], d), "ORCH_ERR_WRONG_STEP", "trainer rank 0 pushed gradients for step 3, the job is at step 0"],
    ["a NaN dense gradient", (d: DenseStore) => grads(0, 0, Number.NaN, [], d), "ORCH_ERR_BAD_GRADIENT", "gradient of bottom.0.w has a NaN or infinite value"],
    ["a wrong shape", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), dense: [new Float32Array(3)] }), "ORCH_ERR_BAD_GRADIENT", "expected 4 dense gradients, got 1"],
  ])("refuses %s without touching the parameters", (_what, make, code, message) => {
    const { agg, dense } = setup(1);
    const before = dense.values.map((v) => v.slice());
    try {
      void agg.accept(make(dense));
      expect.unreachable();
    } catch (err) {
      expect(OrchestratorErrors.is(err, code as "ORCH_ERR_BAD_GRADIENT")).toBe(true);
      expect((err as Error).message).toContain(message);
    }
    dense.values.forEach((v, i) => expect(v).toEqual(before[i]));
    expect(agg.currentStep).toBe(0);
  });

  it("refuses a NaN or infinite row gradient, counts it, and applies the rest of the push", async () => {
    const { agg, dense, table, store } = setup(1);
    const row1 = table.find(1, 0);
    const row5 = table.find(5, 0);
    const before1 = Array.from(table.weights.subarray(row1 * 2, row1 * 2 + 2));
    const before5 = Array.from(table.weights.subarray(row5 * 2, row5 * 2 + 2));
    await agg.accept({ ...grads(0, 0, 1, [1, 5], dense), sparseGrads: Float32Array.from([1, Number.NaN, 1, 1]) });
    expect(Array.from(table.weights.subarray(row1 * 2, row1 * 2 + 2))).toEqual(before1);
    expect(Array.from(table.weights.subarray(row5 * 2, row5 * 2 + 2))).not.toEqual(before5);
    expect(store.stats().rejectedGradients).toBe(1);
  });

  it("refuses a second push from the same rank for one step", async () => {
    const { agg, dense } = setup(2);
    void agg.accept(grads(0, 0, 1, [], dense));
    expect(() => agg.accept(grads(0, 0, 1, [], dense))).toThrow("trainer rank 0 already pushed gradients for step 0");
  });

  it("fails waiting pushes when the job is aborted", async () => {
    const { agg, dense } = setup(2);
    const p = agg.accept(grads(0, 0, 1, [], dense));
    agg.abort(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", "trainer x died"));
    await expect(p).rejects.toThrow("trainer x died");
  });
});
