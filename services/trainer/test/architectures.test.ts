import { beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { Rng } from "@pangea/kit";
import { PlainForward, initDenseParams, rowWidths, taskCount, tasksOf, validateSpec, type ModelSpec } from "@pangea/model";
import { selectBackend } from "../src/backend/select-backend.js";
import { CtrModel, type ModelBatch } from "../src/model/ctr-model.js";

const TWO_TASKS = [
  { name: "click", loss: "bce", weight: 1 },
  { name: "watch", loss: "mse", weight: 0.5 },
] as const;

/** One case per architecture and structure, and some with two tasks (a bce and an mse), small enough for finite differences. */
const CASES: ModelSpec[] = [
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "dlrm", bottomMlp: [5, 4], topMlp: [6] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "dcn-v2", crossLayers: 2, deepMlp: [6], structure: "parallel" } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 3, deepMlp: [6, 5], structure: "stacked" } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "deepfm", deepMlp: [6] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "wide-deep", deepMlp: [6, 5] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "mmoe", numExperts: 3, expertMlp: [5], towerMlp: [4] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, architecture: { name: "shared-bottom", bottomMlp: [6], towerMlp: [4] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "dlrm", bottomMlp: [5, 4], topMlp: [6] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "deepfm", deepMlp: [6] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "mmoe", numExperts: 3, expertMlp: [5, 4], towerMlp: [4] } },
  { numDense: 3, numSlots: 3, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "shared-bottom", bottomMlp: [6], towerMlp: [] } },
].map((s) => validateSpec(s as ModelSpec));

const label = (s: ModelSpec) => JSON.stringify(s.architecture) + (s.tasks ? ` with tasks ${s.tasks.map((t) => t.name).join(", ")}` : "");

/** Two samples x 3 slots over 5 unique rows: cell 1 holds two values (sum pooled, one id twice across cells), cell 4 none; per task labels 1, 0 (bce) or 0.7, -0.3 (mse). */
function batchFor(spec: ModelSpec, rng: Rng): { rows: Float32Array; unique: number; batch: ModelBatch } {
  const W = rowWidths(spec)[0]!;
  const unique = 5;
  const rows = Float32Array.from({ length: unique * W }, () => rng.normal() * 0.4);
  const batch: ModelBatch = {
    size: 2,
    dense: Float32Array.from({ length: 2 * spec.numDense }, () => rng.uniform(0, 2)),
    labels: Float32Array.from([0, 1].flatMap((e) => tasksOf(spec).map((t) => (t.loss === "bce" ? 1 - e : 0.7 - e)))),
    weights: Float32Array.from([0.5, 2]),
    inverse: Int32Array.from([0, 1, 2, 3, 1, 4]),
    cellOfValue: Int32Array.from([0, 1, 1, 2, 3, 5]),
  };
  return { rows, unique, batch };
}

/** The same pooling the trainer does, for serving's forward: [B, S, W] sums per cell. */
function pooled(spec: ModelSpec, rows: Float32Array, b: ModelBatch): Float32Array {
  const W = rowWidths(spec)[0]!;
  const out = new Float32Array(b.size * spec.numSlots * W);
  b.inverse.forEach((r, v) => {
    const cell = b.cellOfValue ? b.cellOfValue[v]! : v;
    for (let k = 0; k < W; k++) out[cell * W + k]! += rows[r * W + k]!;
  });
  return out;
}

beforeAll(async () => {
  await selectBackend("wasm");
  await selectBackend("cpu");
});

describe.each(CASES.map((s) => [label(s), s] as const))("architecture %s", (_name, spec) => {
  it("its gradients match central finite differences of its own loss, for dense parameters and embedding rows", async () => {
    await tf.setBackend("cpu");
    const rng = new Rng(21);
    const model = new CtrModel(spec);
    // Perturbed biases, so no bias starts at exactly zero and every term of the logit matters.
    const values = initDenseParams(spec, 3).map((v) => v.map((x) => x + rng.normal() * 0.05));
    const { rows, unique, batch } = batchFor(spec, rng);
    const out = model.trainStep(values, rows, unique, batch);
    const lossAt = (v: Float32Array[], r: Float32Array) => model.trainStep(v, r, unique, batch).loss;
    // Small enough that no ReLU's input crosses zero within it, large enough for float32 losses.
    const eps = 2e-3;
    const checks: [string, number, number][] = [];
    values.forEach((v, pi) => {
      for (const k of [0, Math.floor(v.length / 2), v.length - 1]) {
        const plus = values.map((x) => x.slice());
        const minus = values.map((x) => x.slice());
        plus[pi]![k]! += eps;
        minus[pi]![k]! -= eps;
        checks.push([`${model.params[pi]!.name}[${k}]`, out.denseGrads[pi]![k]!, (lossAt(plus, rows) - lossAt(minus, rows)) / (2 * eps)]);
      }
    });
    // Row 1 is in two cells; column 0 is DeepFM's and Wide&Deep's first-order weight.
    for (const k of [0, rowWidths(spec)[0]! + 0, rowWidths(spec)[0]! + 1, rows.length - 1]) {
      const plus = rows.slice();
      const minus = rows.slice();
      plus[k]! += eps;
      minus[k]! -= eps;
      checks.push([`row value ${k}`, out.rowGrads[k]!, (lossAt(values, plus) - lossAt(values, minus)) / (2 * eps)]);
    }
    for (const [name, analytic, numeric] of checks) expect(analytic, name).toBeCloseTo(numeric, 2);
    expect(checks.filter(([, a]) => a !== 0).length).toBeGreaterThan(checks.length / 2);
  });

  it("serving's plain forward pass computes the trainer's predictions (with and without the native BLAS)", async () => {
    await tf.setBackend("cpu");
    const rng = new Rng(8);
    const values = initDenseParams(spec, 4).map((v) => v.map((x) => x + rng.normal() * 0.05));
    const { rows, unique, batch } = batchFor(spec, rng);
    const expected = new CtrModel(spec).predict(values, rows, unique, batch);
    const T = taskCount(spec);
    expect(expected.length).toBe(batch.size * T);
    for (const blas of [undefined, null]) {
      const got = new Float32Array(batch.size * T);
      new PlainForward(spec, values, blas).predict(batch.size, batch.dense, pooled(spec, rows, batch), got);
      for (let i = 0; i < batch.size * T; i++) expect(got[i], `example ${Math.floor(i / T)} task ${i % T}, blas ${blas === null ? "off" : "default"}`).toBeCloseTo(expected[i]!, 5);
    }
    for (let t = 0; t < T; t++) expect(expected[t]).not.toBeCloseTo(expected[T + t]!, 3);
  });

  it("a step on wasm equals the same step on cpu", async () => {
    const rng = new Rng(13);
    const model = new CtrModel(spec);
    const values = initDenseParams(spec, 6);
    const { rows, unique, batch } = batchFor(spec, rng);
    await tf.setBackend("cpu");
    const cpu = model.trainStep(values, rows, unique, batch);
    await tf.setBackend("wasm");
    const wasm = model.trainStep(values, rows, unique, batch);
    await tf.setBackend("cpu");
    expect(wasm.loss).toBeCloseTo(cpu.loss, 5);
    wasm.denseGrads.forEach((g, i) => g.forEach((x, k) => expect(x, `${model.params[i]!.name}[${k}]`).toBeCloseTo(cpu.denseGrads[i]![k]!, 5)));
    wasm.rowGrads.forEach((x, k) => expect(x, `row value ${k}`).toBeCloseTo(cpu.rowGrads[k]!, 5));
  });
});
