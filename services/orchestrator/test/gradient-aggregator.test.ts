import { describe, expect, it } from "vitest";
import { dlrmSpec } from "@pangea/model";
import { GradientAggregator, type WorkerGradients } from "../src/aggregation/gradient-aggregator.js";
import { DenseStore } from "../src/params/dense-store.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { OrchestratorErrors } from "../src/errors.js";

const spec = dlrmSpec(2, 1, 2, [2], []);

function setup(hybrid = false) {
  const dense = new DenseStore(spec, 1, 0.01);
  const store = new EmbeddingStore({ ...defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2) }, new Map(), 1);
  // Rows exist once pulled; create them as a pull would.
  for (const id of [1, 5, 6]) store.rowForTraining(id, 0);
  const table = store.table(0);
  return { dense, table, store, agg: new GradientAggregator(dense, store, hybrid) };
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

function rowOf(table: ReturnType<typeof setup>["table"], id: number): number[] {
  const r = table.find(id, 0);
  return Array.from(table.weights.subarray(r * 2, r * 2 + 2));
}

describe("GradientAggregator", () => {
  it("sync: a step applies the average of its batches' gradients, like one batch carrying the average", () => {
    const two = setup();
    const one = setup();
    two.agg.add(grads(0, 0, 1, [5, 6], two.dense));
    two.agg.add(grads(1, 0, 3, [6], two.dense));
    const r = two.agg.applyStep();
    expect(r).toEqual({ step: 1, meanLoss: 2, workers: 2, samples: 8 });
    // Reference: one batch carrying the average directly.
    const avg = grads(0, 0, 2, [], one.dense);
    avg.sparseIds = Uint32Array.from([5, 0, 6, 0]);
    avg.sparseGrads = Float32Array.from([0.5, 0.5, 2, 2]); // id 5: (1 + 0) / 2; id 6: (1 + 3) / 2
    one.agg.add(avg);
    one.agg.applyStep();
    two.dense.values.forEach((v, i) => expect(v).toEqual(one.dense.values[i]));
    for (const id of [5, 6]) expect(rowOf(two.table, id)).toEqual(rowOf(one.table, id));
  });

  it("sync: nothing changes until the step is applied", () => {
    const { agg, dense, table } = setup();
    const before = dense.values.map((v) => v.slice());
    const row = rowOf(table, 5);
    agg.add(grads(0, 0, 1, [5], dense));
    dense.values.forEach((v, i) => expect(v).toEqual(before[i]));
    expect(rowOf(table, 5)).toEqual(row);
    expect(agg.version).toBe(0);
    agg.applyStep();
    expect(agg.version).toBe(1);
    expect(rowOf(table, 5)).not.toEqual(row);
  });

  it("hybrid: embedding rows move as each batch arrives, dense parameters only at the step", () => {
    const { agg, dense, table } = setup(true);
    const before = dense.values.map((v) => v.slice());
    const row = rowOf(table, 5);
    agg.add(grads(0, 0, 1, [5], dense));
    expect(rowOf(table, 5)).not.toEqual(row);
    dense.values.forEach((v, i) => expect(v).toEqual(before[i]));
    agg.applyStep();
    expect(dense.values[0]).not.toEqual(before[0]);
  });

  it("async: applyNow applies one batch's gradients and advances the version", () => {
    const a = setup();
    const b = setup();
    a.agg.applyNow(grads(0, 0, 1, [5], a.dense));
    b.agg.add(grads(0, 0, 1, [5], b.dense));
    b.agg.applyStep();
    expect(a.agg.version).toBe(1);
    a.dense.values.forEach((v, i) => expect(v).toEqual(b.dense.values[i]));
    expect(rowOf(a.table, 5)).toEqual(rowOf(b.table, 5));
  });

  it.each([
    ["a NaN dense gradient", (d: DenseStore) => grads(0, 0, Number.NaN, [], d), "ORCH_ERR_BAD_GRADIENT", "gradient of bottom.0.w has NaN at element 0, outside ±1000000 (--max-gradient-abs)"],
    ["a finite 3e38 dense gradient", (d: DenseStore) => grads(0, 0, 3e38, [], d), "ORCH_ERR_BAD_GRADIENT", "gradient of bottom.0.w has 3.0000000054977558e+38 at element 0, outside ±1000000 (--max-gradient-abs)"],
    ["a wrong shape", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), dense: [new Float32Array(3)] }), "ORCH_ERR_BAD_GRADIENT", "expected 4 dense gradients, got 1"],
    ["a NaN loss", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), loss: Number.NaN }), "ORCH_ERR_BAD_GRADIENT", "loss is NaN"],
    ["a negative loss (a faked figure: the status averages it)", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), loss: -123 }), "ORCH_ERR_BAD_GRADIENT", "loss is -123; a loss is finite and not negative"],
    ["an infinite loss", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), loss: Number.POSITIVE_INFINITY }), "ORCH_ERR_BAD_GRADIENT", "loss is Infinity"],
    ["a task loss of NaN", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), taskLosses: [0.3, Number.NaN] }), "ORCH_ERR_BAD_GRADIENT", "task_losses[1] is NaN; a loss is finite and not negative"],
    ["a streaming AUC of 5", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), streamingAuc: 5 }), "ORCH_ERR_BAD_GRADIENT", "streaming_auc is 5; an AUC is within 0..1 (NaN before there is one)"],
    ["a task streaming AUC of -0.1", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), taskStreamingAuc: [Number.NaN, -0.1] }), "ORCH_ERR_BAD_GRADIENT", "task_streaming_auc[1] is -0.1"],
    ["an id with the reserved top bit", (d: DenseStore) => ({ ...grads(0, 0, 1, [5], d), sparseIds: Uint32Array.of(5, 0x80000000) }), "ORCH_ERR_UNKNOWN_SLOT", "feature id 9223372036854775813 has the reserved top bit set"],
    ["a batch of 0 rows", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), batchSize: 0 }), "ORCH_ERR_BAD_GRADIENT", "batch_size 0 is outside 1..65536"],
    ["a batch size of 2^32-1", (d: DenseStore) => ({ ...grads(0, 0, 1, [], d), batchSize: 2 ** 32 - 1 }), "ORCH_ERR_BAD_GRADIENT", "batch_size 4294967295 is outside 1..65536"],
  ])("validate refuses %s", (_what, make, code, message) => {
    const { agg, dense } = setup();
    try {
      agg.validate(make(dense));
      expect.unreachable();
    } catch (err) {
      expect(OrchestratorErrors.is(err, code as "ORCH_ERR_BAD_GRADIENT")).toBe(true);
      expect((err as Error).message).toContain(message);
    }
  });

  it("validate refuses row gradients of a slot the job does not declare (they were passed over and the push acknowledged)", () => {
    const { agg, dense, store } = setup();
    store.declareSlots([0]);
    expect(() => agg.validate({ ...grads(0, 0, 1, [5], dense), sparseIds: Uint32Array.of(5, 0, 7, 999 << 16), sparseGrads: new Float32Array(4) })).toThrow(
      /^feature id \d+ has slot 999, which the job's data does not declare/,
    );
    expect(() => agg.validate({ ...grads(0, 0, 1, [5], dense), streamingAuc: Number.NaN, taskStreamingAuc: [0, 1], taskLosses: [0, 2] })).not.toThrow();
  });

  it("refuses a NaN or infinite row gradient, counts it, and applies the rest of the push", () => {
    const { agg, dense, table, store } = setup();
    const before1 = rowOf(table, 1);
    const before5 = rowOf(table, 5);
    agg.add({ ...grads(0, 0, 1, [1, 5], dense), sparseGrads: Float32Array.from([1, Number.NaN, 1, 1]) });
    agg.applyStep();
    expect(rowOf(table, 1)).toEqual(before1);
    expect(rowOf(table, 5)).not.toEqual(before5);
    expect(store.stats().rejectedGradients).toBe(1);
  });

  it.each([
    ["NaN", Number.NaN],
    ["infinite", Number.POSITIVE_INFINITY],
    ["a finite 3e38", 3e38],
    ["-2e6", -2e6],
  ])("refuses a %s row gradient, counts it as rejected, and applies the rest of the push", (_what, v) => {
    const { agg, dense, table, store } = setup();
    const before1 = rowOf(table, 1);
    const before5 = rowOf(table, 5);
    agg.add({ ...grads(0, 0, 1, [1, 5], dense), sparseGrads: Float32Array.from([1, v, 1, 1]) });
    agg.applyStep();
    expect(rowOf(table, 1)).toEqual(before1);
    expect(rowOf(table, 5)).not.toEqual(before5);
    expect(store.stats().rejectedGradients).toBe(1);
  });

  it("a refused dense gradient counts as rejected too; the bound is configurable", () => {
    const dense = new DenseStore(spec, 1, 0.01);
    const store = new EmbeddingStore({ ...defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2) }, new Map(), 1);
    const agg = new GradientAggregator(dense, store, false, 0, 10);
    agg.validate(grads(0, 0, 10, [], dense));
    expect(() => agg.validate(grads(0, 0, 10.5, [], dense))).toThrow(/outside ±10 \(--max-gradient-abs\)/);
    expect(store.stats().rejectedGradients).toBe(1);
  });
});
