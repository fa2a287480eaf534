import { encodeBatch } from "../batching/batch-encoder.js";
import { RecordBlock, type DataSource } from "../sources/source.js";

/** read -> batch -> serialize, as the batch stream does, over a whole split; the serialized bytes. */
export function computePath(source: DataSource, records: number, batchSize = 1024): number {
  const block = new RecordBlock(batchSize, source.info.numDense, source.info.slotIds.length);
  let bytes = 0;
  for (let start = 0; start < records; start += batchSize) {
    const n = Math.min(batchSize, records - start);
    source.read("train", start, n, block);
    bytes += encodeBatch("bench", block, source.info.slotIds, "train", start / batchSize, 0).length;
  }
  return bytes;
}
