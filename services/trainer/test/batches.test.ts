import { describe, expect, it } from "vitest";
import { DataType, MessageType, Split, encodeMessage, writeTensor } from "@pangea/schema";
import type { ModelShape } from "@pangea/model";
import { decodeBatch } from "../src/cluster/batches.js";
import { TrainerErrors } from "../src/errors.js";

/** A TrainingBatch of B samples, 1 dense feature, 1 slot with one id each, and the given labels tensor (as compute writes them, schemas/pangea.capnp). */
function batch(B: number, labelShape: number[], labels: number[]): Buffer {
  return encodeMessage(MessageType.TRAINING_BATCH, "compute-test", (b) => {
    b.batchIndex = 7n;
    b.split = Split.TRAIN;
    b._initSlotIds(1).set(0, 1);
    writeTensor(b._initDense(), "dense", DataType.FLOAT32, [B, 1], new Float32Array(B));
    writeTensor(b._initLabels(), "labels", DataType.FLOAT32, labelShape, Float32Array.from(labels));
    writeTensor(b._initFeatureIds(), "feature_ids", DataType.UINT64, [B], new Uint32Array(2 * B).map((_, i) => (i % 2 === 0 ? i + 1 : 1 << 16)));
    writeTensor(b._initCellOffsets(), "cell_offsets", DataType.UINT32, [B + 1], Uint32Array.from({ length: B + 1 }, (_, i) => i));
  });
}

const shape = (tasks?: ModelShape["tasks"]): ModelShape => ({ numDense: 1, numSlots: 1, embeddingDim: 4, ...(tasks ? { tasks } : {}) });
const twoTasks = shape([{ name: "click", loss: "bce", weight: 1 }, { name: "watch_seconds", loss: "mse", weight: 0.5 }]);

describe("a trainer checks a batch's labels against the model's tasks", () => {
  it("takes [B] for one task and [B, T] for T, row-major", () => {
    expect(Array.from(decodeBatch(batch(3, [3], [1, 0, 1]), shape(), "compute-test").labels)).toEqual([1, 0, 1]);
    expect(Array.from(decodeBatch(batch(2, [2, 2], [1, 2.5, 0, 7]), twoTasks, "compute-test").labels)).toEqual([1, 2.5, 0, 7]);
  });

  it.each([
    ["one label per sample for a model of two tasks", twoTasks, [3], [1, 0, 1], "has 1 label per sample, the model has 2 tasks (click, watch_seconds)"],
    ["two labels per sample for a model of one", shape(), [3, 2], [1, 0, 1, 0, 1, 0], "has 2 labels per sample, the model has 1 task (ctr)"],
    ["labels for another number of samples", twoTasks, [4, 2], [1, 0, 1, 0, 1, 0, 1, 0], "has labels of shape [4, 2] for 3 samples, expected [3, 2]"],
    ["labels of rank 3", twoTasks, [3, 2, 1], [1, 0, 1, 0, 1, 0], "has labels of shape [3, 2, 1] for 3 samples, expected [3, 2]"],
  ])("refuses %s, naming batch and sender", (_, spec, labelShape, labels, message) => {
    try {
      decodeBatch(batch(3, labelShape, labels), spec, "compute-test");
      expect.unreachable();
    } catch (err) {
      expect(TrainerErrors.is(err, "TRAINER_ERR_BAD_BATCH")).toBe(true);
      expect((err as Error).message).toBe(`batch 7 from compute-test: ${message}`);
    }
  });
});
