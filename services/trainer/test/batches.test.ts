import { describe, expect, it } from "vitest";
import { DataType, MessageType, Split, encodeMessage, writeTensor } from "@pangea/schema";
import type { ModelShape } from "@pangea/model";
import { decodeBatch } from "../src/cluster/batches.js";
import { TrainerErrors } from "../src/errors.js";

/**
 * A TrainingBatch of B samples, 1 dense feature, 1 slot with one id each (or the given cell offsets over nnz ids,
 * by default their last entry), and the given labels tensor (as compute writes them, schemas/pangea.capnp).
 */
function batch(B: number, labelShape: number[], labels: number[], offsets = Array.from({ length: B + 1 }, (_, i) => i), nnz = offsets[offsets.length - 1]!): Buffer {
  return encodeMessage(MessageType.TRAINING_BATCH, "compute-test", (b) => {
    b.batchIndex = 7n;
    b.split = Split.TRAIN;
    b._initSlotIds(1).set(0, 1);
    writeTensor(b._initDense(), "dense", DataType.FLOAT32, [B, 1], new Float32Array(B));
    writeTensor(b._initLabels(), "labels", DataType.FLOAT32, labelShape, Float32Array.from(labels));
    writeTensor(b._initFeatureIds(), "feature_ids", DataType.UINT64, [nnz], new Uint32Array(2 * nnz).map((_, i) => (i % 2 === 0 ? i + 1 : 1 << 16)));
    writeTensor(b._initCellOffsets(), "cell_offsets", DataType.UINT32, [offsets.length], Uint32Array.from(offsets));
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

describe("a trainer checks a batch's cell offsets", () => {
  it("maps each value to its cell when a cell holds several or none, and gives no map when each holds one", () => {
    expect(decodeBatch(batch(3, [3], [1, 0, 1]), shape(), "compute-test").cellOfValue).toBeNull();
    const bag = decodeBatch(batch(4, [4], [1, 0, 1, 0], [0, 2, 2, 5, 6]), shape(), "compute-test");
    expect(bag.nnz).toBe(6);
    expect(Array.from(bag.cellOfValue!)).toEqual([0, 0, 2, 2, 2, 3]);
  });

  it.each([
    ["offsets that decrease", [0, 2, 1, 3], 3, "cell offsets decrease at cell 1"],
    ["offsets that do not end at the ids' count", [0, 1, 2, 3], 4, "cell offsets must have 4 entries from 0 to 4"],
    ["offsets for another number of cells", [0, 1, 2, 3, 4], 4, "cell offsets must have 4 entries from 0 to 4"],
  ])("refuses %s, naming the batch", (_, offsets, nnz, message) => {
    try {
      decodeBatch(batch(3, [3], [1, 0, 1], offsets, nnz), shape(), "compute-test");
      expect.unreachable();
    } catch (err) {
      expect(TrainerErrors.is(err, "TRAINER_ERR_BAD_BATCH")).toBe(true);
      expect((err as Error).message).toBe(`batch 7 from compute-test: ${message}`);
    }
  });
});
