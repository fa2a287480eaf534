import { expect } from "vitest";
import { RecordBlock, type DataSource } from "../src/sources/source.js";

/** Asserts that `src` reads its first `n` training records as `reference` does: ids, cells, labels and dense values. */
export function expectSameRecords(src: Pick<DataSource, "read">, reference: Pick<DataSource, "read">, n: number, numDense = 13, numSlots = 26): void {
  const a = new RecordBlock(n, numDense, numSlots);
  const b = new RecordBlock(n, numDense, numSlots);
  src.read("train", 0, n, a);
  reference.read("train", 0, n, b);
  expect(a.nnz).toBe(b.nnz);
  expect(a.idWords.subarray(0, a.nnz * 2)).toEqual(b.idWords.subarray(0, b.nnz * 2));
  expect(a.cellOffsets.subarray(0, n * numSlots + 1)).toEqual(b.cellOffsets.subarray(0, n * numSlots + 1));
  expect(a.labels).toEqual(b.labels);
  for (let i = 0; i < n * numDense; i++) expect(a.dense[i]).toBeCloseTo(b.dense[i]!, 5);
}
