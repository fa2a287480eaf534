import { beforeAll, describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { initDenseParams, type DlrmSpec } from "@pangea/model";
import { selectBackend } from "../src/backend/select-backend.js";
import { Dlrm } from "../src/model/dlrm.js";
// Serving computes the model without TensorFlow.js; it must compute the same function the trainer learned.
import { DlrmForward } from "../../serving/src/model/forward.js";

beforeAll(async () => {
  await selectBackend("cpu");
});

describe("serving's forward pass", () => {
  it.each([
    [{ numDense: 13, numSlots: 26, embeddingDim: 16, bottomMlp: [64, 16], topMlp: [64, 32] }, 37],
    [{ numDense: 3, numSlots: 2, embeddingDim: 4, bottomMlp: [5, 4], topMlp: [] }, 5],
    [{ numDense: 1, numSlots: 1, embeddingDim: 2, bottomMlp: [2], topMlp: [3, 2] }, 1],
  ] as [DlrmSpec, number][])("equals the trainer's DLRM on %j for %i examples", (spec, B) => {
    const rng = new Rng(5);
    const params = initDenseParams(spec, 9).map((p) => p.map((x) => x + rng.normal() * 0.05));
    const dense = Float32Array.from({ length: B * spec.numDense }, () => rng.uniform(0, 3));
    const cells = B * spec.numSlots;
    const rows = Float32Array.from({ length: cells * spec.embeddingDim }, () => rng.normal() * 0.3);
    const inverse = Int32Array.from({ length: cells }, (_, i) => i);
    const expected = new Dlrm(spec).predict(params, rows, cells, { size: B, dense, labels: new Float32Array(B), inverse, cellOfValue: null });
    const got = new Float32Array(B);
    new DlrmForward(spec, params).predict(B, dense, rows, got);
    for (let i = 0; i < B; i++) expect(got[i]).toBeCloseTo(expected[i]!, 5);
    expect(new Set(Array.from(got).map((p) => p.toFixed(4))).size).toBeGreaterThan(B > 1 ? 1 : 0);
  });
});
