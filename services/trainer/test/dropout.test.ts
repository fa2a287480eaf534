import { beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { Rng } from "@pangea/kit";
import { architectureConfig, initDenseParams, modelIdentity, parseModelSpec, specDifference, validateSpec, type ModelSpec } from "@pangea/model";
import { selectBackend } from "../src/backend/select-backend.js";
import { CtrModel, type ModelBatch } from "../src/model/ctr-model.js";
import { DropoutMasks } from "../src/model/dropout-masks.js";

/**
 * Dropout's masks and where it acts; its math against PyTorch is in
 * pytorch-twins.test.ts.
 */
const shape = { numDense: 3, numSlots: 2, embeddingDim: 4 };
const spec = (dropout?: number): ModelSpec => validateSpec({ ...shape, architecture: { name: "dcn-v2", crossLayers: 1, deepMlp: [32, 16], ...(dropout === undefined ? {} : { dropout }) } });

function batch(): { rows: Float32Array; b: ModelBatch } {
  const rng = new Rng(5);
  const B = 8;
  return {
    rows: Float32Array.from({ length: 4 * 4 }, () => rng.normal() * 0.3),
    b: { size: B, dense: Float32Array.from({ length: B * 3 }, () => rng.uniform(0, 1)), labels: Float32Array.from({ length: B }, (_, i) => i % 2), inverse: Int32Array.from({ length: B * 2 }, (_, i) => (i * 3) % 4), cellOfValue: null },
  };
}

beforeAll(async () => {
  await selectBackend("cpu");
  await tf.setBackend("cpu");
});

describe("dropout masks", () => {
  it("are inverted-dropout masks at the rate, the same for the same job seed, batch and layer, and others for another batch, seed or layer", () => {
    const m = new DropoutMasks(42, 1000).mask("deep.0", 100, 100, 0.3);
    const dropped = m.filter((x) => x === 0).length / m.length;
    expect(dropped).toBeGreaterThan(0.28);
    expect(dropped).toBeLessThan(0.32);
    expect(new Set(m)).toEqual(new Set([0, Math.fround(1 / 0.7)]));
    expect(new DropoutMasks(42, 1000).mask("deep.0", 100, 100, 0.3)).toEqual(m);
    for (const other of [new DropoutMasks(42, 1001).mask("deep.0", 100, 100, 0.3), new DropoutMasks(43, 1000).mask("deep.0", 100, 100, 0.3), new DropoutMasks(42, 1000).mask("deep.1", 100, 100, 0.3), new DropoutMasks(42, 1000 + 2 ** 40).mask("deep.0", 100, 100, 0.3)]) {
      expect(other).not.toEqual(m);
    }
  });

  it("act in a training step only: a model without dropout steps bit for bit as without masks, one with dropout steps otherwise but predicts as without", () => {
    const { rows, b } = batch();
    const plain = new CtrModel(spec());
    const values = initDenseParams(plain.spec, 3);
    const reference = plain.trainStep(values, rows, 4, b);
    const withMasks = plain.trainStep(values, rows, 4, b, new DropoutMasks(42, 7));
    expect(withMasks.loss).toBe(reference.loss);
    withMasks.denseGrads.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(reference.denseGrads[i]!)));
    expect(Array.from(withMasks.rowGrads)).toEqual(Array.from(reference.rowGrads));

    const dropping = new CtrModel(spec(0.5));
    const masks = new DropoutMasks(42, 7);
    const dropped = dropping.trainStep(values, rows, 4, b, masks);
    expect([...masks.drawn.keys()]).toEqual(["deep.0", "deep.1"]);
    expect(dropped.loss).not.toBe(reference.loss);
    expect(Array.from(dropping.predict(values, rows, 4, b))).toEqual(Array.from(plain.predict(values, rows, 4, b)));
    // Without masks (no training step's), the layers run as they are.
    expect(dropping.trainStep(values, rows, 4, b).loss).toBe(reference.loss);
  });
});

describe("dropout in a model config", () => {
  it("0 or left out reads as none (the config as it was); a rate is kept", () => {
    expect(architectureConfig("deepfm", { dropout: 0 })).toEqual({ name: "deepfm", deepMlp: [64, 32] });
    expect(architectureConfig("deepfm", {})).toEqual({ name: "deepfm", deepMlp: [64, 32] });
    expect(architectureConfig("deepfm", { dropout: 0.25 })).toEqual({ name: "deepfm", deepMlp: [64, 32], dropout: 0.25 });
  });

  it("is a training setting, not part of the model: a checkpoint of one rate restores into a job of another, and serving takes either's pushes", () => {
    const saved = parseModelSpec(JSON.parse(JSON.stringify(spec(0.1))));
    expect(saved.architecture.dropout).toBe(0.1);
    expect(specDifference(spec(), saved)).toBeNull();
    expect(modelIdentity(saved)).toBe(modelIdentity(spec()));
    expect(specDifference(spec(), validateSpec({ ...shape, architecture: { name: "dcn-v2", crossLayers: 2, deepMlp: [32, 16], dropout: 0.1 } }))).toMatch(/hyper-parameters/);
  });
});
