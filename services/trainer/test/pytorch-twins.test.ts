import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { Rng } from "@pangea/kit";
import { ARCHITECTURE_NAMES, PlainForward, denseParams, initDenseParams, poolingOf, poolingScale, rowWidths, slotDimsOf, taskCount, tasksOf, validateSpec, type ModelSpec, type TaskSpec } from "@pangea/model";
import { selectBackend } from "../src/backend/select-backend.js";
import { CtrModel, type ModelBatch } from "../src/model/ctr-model.js";
import { DropoutMasks } from "../src/model/dropout-masks.js";

/**
 * Every architecture against an implementation we did not write the same
 * way: PyTorch's nn.Linear and autograd in float64 (Debian's python3-torch),
 * from test/support/python/torch_ctr.py, given the same weights, rows and
 * batch. Outputs, each task's loss, the total loss, and the gradient of
 * every dense parameter and every embedding row must agree to a relative
 * 1e-4; with one task, and with two (a bce and an mse task of unequal
 * weights) on every architecture.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PYTHON = "/usr/bin/python3";
const available = spawnSync(PYTHON, ["-c", "import torch"]).status === 0;
if (!available) console.warn(`pytorch-twins: ${PYTHON} cannot import torch, so these tests are skipped (apt-get install python3-torch)`);

const shape = { numDense: 4, numSlots: 5, embeddingDim: 8 };
/** A click (binary cross-entropy) and a watch time (squared error), of unequal weights. */
const TWO_TASKS: TaskSpec[] = [
  { name: "click", loss: "bce", weight: 1 },
  { name: "watch", loss: "mse", weight: 0.4 },
];
const CASES: ModelSpec[] = [
  { ...shape, architecture: { name: "dlrm", bottomMlp: [16, 8], topMlp: [12, 6] } },
  { ...shape, architecture: { name: "dcn-v2", crossLayers: 3, lowRank: 0, structure: "parallel", deepMlp: [16, 8] } },
  { ...shape, architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 6, structure: "stacked", deepMlp: [16] } },
  { ...shape, architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 0, structure: "stacked", deepMlp: [] } },
  { ...shape, architecture: { name: "deepfm", deepMlp: [16, 8] } },
  { ...shape, architecture: { name: "wide-deep", deepMlp: [16, 8] } },
  // Slots of different embedding dims, where the architecture concatenates them.
  { ...shape, slotDims: [8, 4, 8, 2, 6], architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 0, structure: "parallel", deepMlp: [16] } },
  { ...shape, slotDims: [8, 4, 8, 2, 6], architecture: { name: "wide-deep", deepMlp: [16, 8] } },
  // Mean and sqrtn pooling of multi-valued cells (Monolith's combiners), with one width and with mixed dims.
  { ...shape, slotPooling: ["mean", "sqrtn", "sum", "mean", "sqrtn"], architecture: { name: "deepfm", deepMlp: [16] } },
  { ...shape, slotPooling: ["mean", "sqrtn", "sum", "mean", "sqrtn"], architecture: { name: "dlrm", bottomMlp: [8], topMlp: [6] } },
  { ...shape, slotDims: [8, 4, 8, 2, 6], slotPooling: ["sqrtn", "mean", "mean", "sum", "sqrtn"], architecture: { name: "dcn-v2", crossLayers: 1, lowRank: 4, structure: "stacked", deepMlp: [8] } },
  // The multi-task architectures with one task, and mmoe over mixed dims and pooling.
  { ...shape, architecture: { name: "mmoe", numExperts: 3, expertMlp: [16, 8], towerMlp: [6] } },
  { ...shape, architecture: { name: "shared-bottom", bottomMlp: [16, 8], towerMlp: [6] } },
  { ...shape, slotDims: [8, 4, 8, 2, 6], slotPooling: ["mean", "sum", "sqrtn", "sum", "mean"], architecture: { name: "mmoe", numExperts: 2, expertMlp: [12], towerMlp: [] } },
  // Two tasks on every architecture: heads on its shared part (deepfm and wide-deep share their first-order logit).
  { ...shape, tasks: TWO_TASKS, architecture: { name: "dlrm", bottomMlp: [16, 8], topMlp: [12, 6] } },
  { ...shape, tasks: TWO_TASKS, architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 0, structure: "parallel", deepMlp: [16, 8] } },
  { ...shape, tasks: TWO_TASKS, architecture: { name: "deepfm", deepMlp: [16, 8] } },
  { ...shape, tasks: TWO_TASKS, slotDims: [8, 4, 8, 2, 6], architecture: { name: "wide-deep", deepMlp: [16, 8] } },
  { ...shape, tasks: TWO_TASKS, architecture: { name: "mmoe", numExperts: 3, expertMlp: [16, 8], towerMlp: [6] } },
  { ...shape, tasks: TWO_TASKS, architecture: { name: "shared-bottom", bottomMlp: [16, 8], towerMlp: [6] } },
  // Dropout in every MLP tower, the twin given the masks the trainer drew: on each architecture, two tasks on the multi-task ones.
  { ...shape, architecture: { name: "dlrm", bottomMlp: [16, 8], topMlp: [12, 6], dropout: 0.3 } },
  { ...shape, architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 0, structure: "parallel", deepMlp: [16, 8], dropout: 0.3 } },
  { ...shape, architecture: { name: "deepfm", deepMlp: [16, 8], dropout: 0.5 } },
  { ...shape, slotDims: [8, 4, 8, 2, 6], architecture: { name: "wide-deep", deepMlp: [16, 8], dropout: 0.2 } },
  { ...shape, tasks: TWO_TASKS, architecture: { name: "mmoe", numExperts: 2, expertMlp: [16, 8], towerMlp: [6], dropout: 0.3 } },
  { ...shape, tasks: TWO_TASKS, architecture: { name: "shared-bottom", bottomMlp: [16, 8], towerMlp: [6], dropout: 0.3 } },
].map((s) => validateSpec(s as ModelSpec));

describe("the cases", () => {
  // An architecture added to the registry without a case here would go unchecked against its twin without a word.
  it("cover every architecture of the registry, with one task and with two", () => {
    expect(ARCHITECTURE_NAMES.filter((n) => !CASES.some((c) => c.architecture.name === n && !c.tasks))).toEqual([]);
    expect(ARCHITECTURE_NAMES.filter((n) => !CASES.some((c) => c.architecture.name === n && c.tasks))).toEqual([]);
  });
});

/** The dropout masks of a case's step: the job seed and batch index a trainer would seed them with. */
const masksOf = () => new DropoutMasks(42, 7);

interface TorchOut {
  /** [B, T] row-major, as every list of outputs here. */
  logits: number[];
  probabilities: number[];
  /** A bce task's probability, an mse task's output. */
  predictions: number[];
  /** The same without dropout (evaluation, serving). */
  evalPredictions: number[];
  taskLosses: number[];
  loss: number;
  denseGrads: Record<string, number[]>;
  rowGrads: number[];
}

/**
 * 16 samples: some cells hold several values, one none, ids repeat across
 * samples; per-sample weights; per task a 0/1 label (bce) or a real target
 * (mse), [B, T] row-major. Unique row u belongs to slot u % S and is as
 * wide as that slot's rows (side by side, at rowOffsets, when slots differ).
 */
function batchFor(spec: ModelSpec, rng: Rng) {
  const B = 16;
  const S = spec.numSlots;
  const widths = rowWidths(spec);
  const unique = 30;
  const inverse: number[] = [];
  const cellOfValue: number[] = [];
  for (let cell = 0; cell < B * S; cell++) {
    const n = cell === 7 ? 0 : cell % 6 === 0 ? 3 : 1;
    for (let k = 0; k < n; k++) {
      inverse.push(Math.floor(rng.uniform(0, unique / S)) * S + (cell % S));
      cellOfValue.push(cell);
    }
  }
  const offsets = new Int32Array(unique + 1);
  for (let u = 0; u < unique; u++) offsets[u + 1] = offsets[u]! + widths[u % S]!;
  const rows = Float32Array.from({ length: offsets[unique]! }, () => rng.normal() * 0.3);
  const mixed = widths.some((w) => w !== widths[0]);
  const tasks = tasksOf(spec);
  const batch: ModelBatch = {
    size: B,
    dense: Float32Array.from({ length: B * spec.numDense }, () => rng.uniform(0, 2)),
    labels: Float32Array.from({ length: B * taskCount(spec) }, (_, i) => (tasks[i % tasks.length]!.loss === "bce" ? (rng.uniform(0, 1) < 0.4 ? 1 : 0) : rng.uniform(-1, 3))),
    weights: Float32Array.from({ length: B }, () => rng.uniform(0.5, 2)),
    inverse: Int32Array.from(inverse),
    cellOfValue: Int32Array.from(cellOfValue),
    rowOffsets: mixed ? offsets : null,
  };
  return { rows, unique, batch, offsets };
}

/** The reference's input for one case. */
function torchInput(spec: ModelSpec, values: Float32Array[], rows: Float32Array, unique: number, b: ModelBatch, offsets: Int32Array, masks: DropoutMasks): unknown {
  return {
    dropoutMasks: Object.fromEntries([...masks.drawn].map(([name, m]) => [name, Array.from(m)])),
    architecture: spec.architecture,
    numDense: spec.numDense,
    numSlots: spec.numSlots,
    embeddingDim: spec.embeddingDim,
    slotDims: slotDimsOf(spec),
    rowWidths: rowWidths(spec),
    pooling: poolingOf(spec),
    tasks: tasksOf(spec),
    params: denseParams(spec).map((p, i) => ({ name: p.name, shape: p.shape, values: Array.from(values[i]!) })),
    batch: {
      size: b.size,
      dense: Array.from(b.dense),
      labels: Array.from(b.labels),
      weights: b.weights ? Array.from(b.weights) : null,
      rows: Array.from(rows),
      rowOffsets: Array.from(offsets),
      uniqueRows: unique,
      inverse: Array.from(b.inverse),
      cellOfValue: b.cellOfValue ? Array.from(b.cellOfValue) : null,
    },
  };
}

/** Every case's inputs, built as the test builds them (same seeds), and PyTorch's outputs for all in one process. */
function caseOf(spec: ModelSpec) {
  const rng = new Rng(31);
  // Perturbed biases, so every bias and every path of the logit carries a gradient.
  const values = initDenseParams(spec, 12).map((v) => v.map((x) => x + rng.normal() * 0.05));
  return { values, ...batchFor(spec, rng) };
}

let references: TorchOut[] = [];

beforeAll(async () => {
  await selectBackend("wasm");
  await selectBackend("cpu");
  if (!available) return;
  const inputs = CASES.map((spec) => {
    const c = caseOf(spec);
    // The masks the trainer draws in this case's step (none without dropout), for the twin to apply.
    const masks = masksOf();
    new CtrModel(spec).trainStep(c.values, c.rows, c.unique, c.batch, masks);
    return torchInput(spec, c.values, c.rows, c.unique, c.batch, c.offsets, masks);
  });
  const run = spawnSync(PYTHON, [join(ROOT, "test/support/python/torch_ctr.py")], { input: JSON.stringify(inputs), encoding: "utf8", maxBuffer: 256 << 20 });
  if (run.status !== 0) throw new Error(`torch_ctr.py exited ${run.status}: ${run.stderr}`);
  references = JSON.parse(run.stdout) as TorchOut[];
});

/** |ours - reference| within 1e-4 of the reference's largest magnitude (float32 against float64). */
function expectClose(ours: ArrayLike<number>, ref: readonly number[], what: string): void {
  expect(ours.length, what).toBe(ref.length);
  const scale = Math.max(...ref.map(Math.abs), 1e-6);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - ref[i]!));
  expect(worst / scale, `${what}: max difference ${worst} against a largest value ${scale}`).toBeLessThan(1e-4);
}


// The twin does not depend on Pangea's BLAS: checked once, in the native project's run.
describe.runIf(available && process.env.PANGEA_NATIVE_BLAS !== "off")("the PyTorch twin itself", () => {
  it("agrees with a plain-Python forward and with finite differences of it, and refuses bad specs (torch_ctr_selfcheck.py)", () => {
    const r = spawnSync(PYTHON, [join(ROOT, "test/support/python/torch_ctr_selfcheck.py")], { encoding: "utf8", timeout: 170_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/torch_ctr self-check: passed\s*$/);
  }, 180_000);
});

describe.runIf(available)("architectures against PyTorch (same weights, same batch)", () => {
  const label = (s: ModelSpec) =>
    JSON.stringify({ ...s.architecture, ...(s.slotDims ? { slotDims: s.slotDims } : {}), ...(s.slotPooling ? { slotPooling: s.slotPooling } : {}), ...(s.tasks ? { tasks: s.tasks.map((t) => `${t.name}:${t.loss}*${t.weight}`) } : {}) });
  it.each(CASES.map((s) => [label(s), s] as const))("%s: equal outputs, task losses, total loss, dense and row gradients, on cpu and wasm, and serving's forward", async (_name, spec) => {
    const { values, rows, unique, batch, offsets } = caseOf(spec);
    const ref = references[CASES.indexOf(spec)]!;
    const model = new CtrModel(spec);
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      const out = model.trainStep(values, rows, unique, batch, masksOf());
      expect(Math.abs(out.loss - ref.loss) / ref.loss, `${backend} loss ${out.loss} vs ${ref.loss}`).toBeLessThan(1e-4);
      ref.taskLosses.forEach((l, t) => expect(Math.abs(out.taskLosses[t]! - l) / l, `${backend} task ${t}'s loss ${out.taskLosses[t]} vs ${l}`).toBeLessThan(1e-4));
      expect(out.taskLosses.length).toBe(taskCount(spec));
      expectClose(out.predictions, ref.predictions, `${backend} predictions`);
      model.params.forEach((p, i) => expectClose(out.denseGrads[i]!, ref.denseGrads[p.name]!, `${backend} gradient of ${p.name}`));
      expectClose(out.rowGrads, ref.rowGrads, `${backend} row gradients`);
    }
    await tf.setBackend("cpu");
    // Serving's forward pass over the same pooled rows: each example's slots side by side.
    const widths = rowWidths(spec);
    const slotAt = widths.map((_, s) => widths.slice(0, s).reduce((a, w) => a + w, 0));
    const E = widths.reduce((a, w) => a + w, 0);
    const pooled = new Float32Array(batch.size * E);
    const counts = new Int32Array(batch.size * spec.numSlots);
    for (const c of batch.cellOfValue!) counts[c]!++;
    const pooling = poolingOf(spec);
    batch.inverse.forEach((r, v) => {
      const cell = batch.cellOfValue![v]!;
      const slot = cell % spec.numSlots;
      const at = ((cell - slot) / spec.numSlots) * E + slotAt[slot]!;
      const f = poolingScale(pooling[slot]!, counts[cell]!);
      for (let k = 0; k < widths[slot]!; k++) pooled[at + k]! += f * rows[offsets[r]! + k]!;
    });
    const served = new Float32Array(batch.size * taskCount(spec));
    new PlainForward(spec, values).predict(batch.size, batch.dense, pooled, served);
    // Serving and the trainer's evaluation run without dropout.
    expectClose(served, ref.evalPredictions, "serving's predictions");
    expectClose(model.predict(values, rows, unique, batch), ref.evalPredictions, "the trainer's evaluation predictions");
    if (spec.architecture.dropout) expect(Math.max(...ref.predictions.map((p, i) => Math.abs(p - ref.evalPredictions[i]!)))).toBeGreaterThan(1e-3);
    else expect(ref.evalPredictions).toEqual(ref.predictions);
    // Not a degenerate case: the logits spread and the labels are mixed.
    expect(Math.max(...ref.logits) - Math.min(...ref.logits)).toBeGreaterThan(0.05);
  });
});
