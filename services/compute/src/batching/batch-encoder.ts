import { DataType, MessageType, Split, encodeMessage, sizeHint, writeTensor } from "@pangea/schema";
import type { RecordBlock, SplitName } from "../sources/source.js";

/** Serializes a filled RecordBlock as a TrainingBatch message (layout documented in schemas/pangea.capnp). */
export function encodeBatch(
  sender: string,
  block: RecordBlock,
  slotIds: readonly number[],
  split: SplitName,
  batchIndex: number,
  epoch: number,
  /** Compute's seal on the batch's count of ids (TrainerStreams.sealIds), "" for none. */
  idsSeal = "",
): Buffer {
  const B = block.count;
  const S = block.numSlots;
  return encodeMessage(MessageType.TRAINING_BATCH, sender, (b) => {
    b.batchIndex = BigInt(batchIndex);
    b.epoch = epoch;
    if (idsSeal) b.idsSeal = idsSeal;
    b.split = split === "train" ? Split.TRAIN : Split.EVAL;
    const slots = b._initSlotIds(S);
    for (let s = 0; s < S; s++) slots.set(s, slotIds[s]!);
    writeTensor(b._initDense(), "dense", DataType.FLOAT32, [B, block.numDense], block.dense.subarray(0, B * block.numDense));
    const T = block.numTasks;
    // One task keeps the [B] labels every reader knows; several are [B, T].
    writeTensor(b._initLabels(), "labels", DataType.FLOAT32, T === 1 ? [B] : [B, T], block.labels.subarray(0, B * T));
    writeTensor(b._initFeatureIds(), "feature_ids", DataType.UINT64, [block.nnz], block.idWords.subarray(0, block.nnz * 2));
    writeTensor(b._initCellOffsets(), "cell_offsets", DataType.UINT32, [B * S + 1], block.cellOffsets.subarray(0, B * S + 1));
    const weights = block.weights.subarray(0, B);
    // Weights travel only when some sample's differs from 1, which most data never does.
    if (weights.some((w) => w !== 1)) writeTensor(b._initWeights(), "weights", DataType.FLOAT32, [B], weights);
  }, sizeHint({ byteLength: B * (block.numDense + block.numTasks + 1) * 4 }, { byteLength: block.nnz * 8 }, { byteLength: (B * S + 1) * 4 }));
}
