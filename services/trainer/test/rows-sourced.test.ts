import { beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { Rng } from "@pangea/kit";
import { nativeBlas } from "@pangea/blas";
import { ARCHITECTURE_NAMES, initDenseParams, rowWidths, tasksOf, validateSpec, type ModelSpec } from "@pangea/model";
import { selectBackend } from "../src/backend/select-backend.js";
import { CtrModel, type ModelBatch } from "../src/model/ctr-model.js";
import { TfOps } from "../src/model/tf-ops.js";
import { DropoutMasks } from "../src/model/dropout-masks.js";

const TWO_TASKS = [
  { name: "click", loss: "bce", weight: 1 },
  { name: "watch", loss: "mse", weight: 0.5 },
] as const;

/**
 * Every architecture; some also with two tasks and dropout. `rowSourced`: the configuration reads the pooled block only
 * by its columns, so its reads must come from the rows (DLRM's interaction reads the whole block; an architecture's
 * configuration may do either).
 */
const CASES: { spec: ModelSpec; rowSourced: boolean }[] = (
  [
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "dlrm", bottomMlp: [5, 4], topMlp: [6] } }, false],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "dcn-v2", crossLayers: 2, deepMlp: [6], structure: "parallel" } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "deepfm", deepMlp: [6] } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "wide-deep", deepMlp: [6, 5] } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "mmoe", numExperts: 3, expertMlp: [5], towerMlp: [4] } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "shared-bottom", bottomMlp: [6], towerMlp: [4] } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "deepfm", deepMlp: [6], dropout: 0.3 } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "wide-deep", deepMlp: [6, 5], dropout: 0.2 } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, tasks: [...TWO_TASKS], architecture: { name: "mmoe", numExperts: 2, expertMlp: [5, 4], towerMlp: [3], dropout: 0.25 } }, true],
    [{ numDense: 3, numSlots: 4, embeddingDim: 4, architecture: { name: "dcn-v2", crossLayers: 2, lowRank: 2, deepMlp: [6, 5], structure: "stacked" } }, true],
  ] as const
).map(([s, rowSourced]) => ({ spec: validateSpec(s as ModelSpec), rowSourced }));

const nativeHere = nativeBlas().blas !== null;

beforeAll(async () => {
  await selectBackend("wasm");
});

/**
 * On wasm with the addon, a step whose cells hold one value each and whose
 * slots are alike takes slots' columns straight from the pulled rows (and
 * writes the pooled block only for an op that reads it). It must give the
 * pooled path's bits: loss, every gradient, predictions.
 */
describe("the pooled block's columns straight from the pulled rows", () => {
  it("has a case for every architecture of the registry", () => {
    expect(ARCHITECTURE_NAMES.filter((n) => !CASES.some((c) => c.spec.architecture.name === n))).toEqual([]);
  });

  it.runIf(nativeHere).each(CASES.map((c) => [JSON.stringify(c.spec.architecture) + (c.spec.tasks ? " with two tasks" : ""), c] as const))("%s: the pooled path's bits", async (_, { spec, rowSourced }) => {
    expect(tf.getBackend()).toBe("wasm");
    const rng = new Rng(5);
    const W = rowWidths(spec)[0]!;
    const S = spec.numSlots;
    const tasks = tasksOf(spec);
    const values = initDenseParams(spec, 3);
    const direct = new CtrModel(spec, true);
    const pooled = new CtrModel(spec, false);
    const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("hex");
    // Two steps of the same models (nothing of one step may leak into the next), of different sizes.
    for (const [B, unique] of [[9, 11], [6, 5]] as const) {
      // Values of every magnitude, ids repeated within and across examples (their gradients add up), each cell one value.
      const rows = Float32Array.from({ length: unique * W }, (_, i) => rng.normal() * 10 ** ((i % 5) - 2));
      const batch: ModelBatch = {
        size: B,
        dense: Float32Array.from({ length: B * spec.numDense }, () => rng.uniform(0, 2)),
        labels: Float32Array.from({ length: B * tasks.length }, (_, i) => (tasks[i % tasks.length]!.loss === "bce" ? (i % 3 === 0 ? 1 : 0) : rng.normal())),
        inverse: Int32Array.from({ length: B * S }, (_, v) => (v * 7 + (v % 3)) % unique),
        cellOfValue: null,
      };
      const a = direct.trainStep(values, rows, unique, batch, new DropoutMasks(7, B));
      const b = pooled.trainStep(values, rows, unique, batch, new DropoutMasks(7, B));
      expect(a.loss).toBe(b.loss);
      expect(bits(a.taskLosses)).toBe(bits(b.taskLosses));
      expect(a.denseGrads.map(bits)).toEqual(b.denseGrads.map(bits));
      expect(a.rowGrads.length).toBe(unique * W);
      expect(bits(a.rowGrads)).toBe(bits(b.rowGrads));
      expect(bits(a.predictions)).toBe(bits(b.predictions));
      expect(bits(direct.predict(values, rows, unique, batch))).toBe(bits(pooled.predict(values, rows, unique, batch)));
    }
    // A row-sourced configuration takes the block's columns from the rows; one that reads the block whole does not.
    if (rowSourced) expect(direct.ops.rowSourcedCalls).toBeGreaterThan(0);
    else expect(direct.ops.rowSourcedCalls).toBe(0);
    expect(pooled.ops.rowSourcedCalls).toBe(0);
  });

  it.runIf(nativeHere)("every op but a row-sourced slotColumns or concat writes the pooled block before reading it", () => {
    const ops = new TfOps();
    const [B, S, W] = [3, 2, 4];
    tf.tidy(() => {
      const emb = tf.tensor2d(Float32Array.from({ length: B * S * W }, (_, i) => i / 10), [B, S * W]);
      const rows = tf.tensor2d(Float32Array.from({ length: 3 * W }, (_, i) => i), [3, W]);
      let fills = 0;
      ops.rowSource = { emb, rows, inverse: Int32Array.from([0, 1, 2, 0, 1, 2]), S, W, fill: () => fills++ };
      const w = tf.ones([S * W, 2]) as tf.Tensor2D;
      const b = tf.zeros([1, 2]) as tf.Tensor2D;
      const reads: [string, () => unknown][] = [
        ["linear", () => ops.linear(emb, w, b, true)],
        ["linears", () => ops.linears(emb, [{ w, b, relu: false }, { w, b, relu: true }])],
        ["dropout", () => ops.dropout(emb, 0.5, "layer")],
        ["add", () => ops.add(emb, emb)],
        ["mul", () => ops.mul(emb, emb)],
        ["dotInteraction", () => ops.dotInteraction(tf.ones([B, W]) as tf.Tensor2D, emb, S, W)],
        ["slotColumns of other widths", () => ops.slotColumns(emb, [3, 5], 0, [1, 1])],
        ["sumSlots", () => ops.sumSlots(emb, S, W)],
        ["fmInteraction", () => ops.fmInteraction(emb, S, W)],
        ["softmax", () => ops.softmax(emb)],
        ["mixture", () => ops.mixture(tf.ones([B, 1]) as tf.Tensor2D, [emb])],
      ];
      for (const [name, read] of reads) {
        const before = fills;
        read();
        expect(fills, name).toBe(before + 1);
      }
      // Straight from the rows: the block is not read.
      const before = fills;
      ops.slotColumns(emb, [W, W], 1, [2, 2]);
      ops.concat([tf.ones([B, 3]) as tf.Tensor2D, emb]);
      expect(fills).toBe(before);
      ops.rowSource = null;
    });
  });

  it.runIf(nativeHere)("a batch with bags goes through the pooled block", async () => {
    const spec = CASES.find((c) => c.spec.architecture.name === "wide-deep")!.spec;
    const W = rowWidths(spec)[0]!;
    const model = new CtrModel(spec, true);
    const rows = Float32Array.from({ length: 3 * W }, (_, i) => (i % 7) / 10);
    // Two examples x 4 slots, cell 1 holding two values.
    const batch: ModelBatch = { size: 2, dense: new Float32Array(2 * 3).fill(1), labels: Float32Array.of(1, 0), inverse: Int32Array.of(0, 1, 2, 0, 1, 2, 0, 1, 2), cellOfValue: Int32Array.of(0, 1, 1, 2, 3, 4, 5, 6, 7) };
    const out = model.trainStep(initDenseParams(spec, 1), rows, 3, batch);
    expect(Number.isFinite(out.loss)).toBe(true);
    expect(model.ops.rowSourcedCalls).toBe(0);
  });
});
