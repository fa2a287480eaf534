import { ComputeErrors } from "../errors.js";
import type { SplitName } from "../sources/source.js";

export interface ShareRequest {
  workerRank: number;
  worldSize: number;
  batchSize: number;
  /** 0 = the whole split, once (bounded splits only). */
  maxBatches: number;
  split: SplitName;
  /** The client names the batches it wants (BatchAck.want) instead of taking a share. */
  onDemand?: boolean;
}

export interface BatchSlice {
  batchIndex: number;
  epoch: number;
  start: number;
  count: number;
}

export const MAX_BATCH_SIZE = 1 << 16;

/**
 * Checks a stream's request once, when it arrives, before anything is sized
 * from it: batch_size bounds every allocation of the stream (a block of
 * batch_size records), so 0 or 2^32-1 is refused here, not found later.
 */
export function checkShareRequest(req: ShareRequest, who: string): void {
  const bad = (msg: string) => ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${who}: ${msg}`);
  if (!Number.isInteger(req.batchSize) || req.batchSize < 1 || req.batchSize > MAX_BATCH_SIZE) throw bad(`batch_size ${req.batchSize} is outside 1..${MAX_BATCH_SIZE}`);
  if (!(req.worldSize >= 1)) throw bad(`world_size ${req.worldSize} must be at least 1`);
  if (!(req.workerRank < req.worldSize)) throw bad(`worker_rank ${req.workerRank} is not below world_size ${req.worldSize}`);
  if (!Number.isSafeInteger(req.maxBatches) || req.maxBatches < 0) throw bad(`max_batches ${req.maxBatches} is not a safe non-negative integer`);
}

/**
 * The batches of one worker's share: global batch k goes to worker
 * k % worldSize, so the workers' shares are disjoint and together cover the
 * split. A bounded split is cut into ceil(records / batchSize) batches per
 * epoch (the last may be short, so no record is dropped); train batches
 * beyond the first epoch wrap into later epochs.
 */
export function* shareBatches(req: ShareRequest, splitRecords: number): Generator<BatchSlice> {
  const { workerRank, worldSize, batchSize, maxBatches, split } = req;
  if (!(worldSize >= 1) || !(workerRank < worldSize)) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request: worker rank ${workerRank} is not below world size ${worldSize}`);
  }
  if (!(batchSize >= 1 && batchSize <= MAX_BATCH_SIZE)) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request: batch size ${batchSize} is outside 1..${MAX_BATCH_SIZE}`);
  }
  // Only a train split can be unbounded (generated data); an eval split of 0 records is empty (e.g. --eval-fraction 0).
  const unbounded = splitRecords === 0 && split === "train";
  if (unbounded && maxBatches === 0) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request: the ${split} split is unbounded, so maxBatches must be set`);
  }
  const perEpoch = unbounded ? Number.POSITIVE_INFINITY : Math.ceil(splitRecords / batchSize);
  const onceOnly = split === "eval" || maxBatches === 0;
  for (let j = 0; maxBatches === 0 || j < maxBatches; j++) {
    const k = workerRank + j * worldSize;
    if (onceOnly && k >= perEpoch) return;
    if (unbounded) {
      yield { batchIndex: k, epoch: 0, start: k * batchSize, count: batchSize };
    } else {
      const local = k % perEpoch;
      const start = local * batchSize;
      yield { batchIndex: k, epoch: Math.floor(k / perEpoch), start, count: Math.min(batchSize, splitRecords - start) };
    }
  }
}

/**
 * Global batch k of a split: records k*B .. k*B+B-1 in the split's order,
 * wrapping into later epochs for train (the last batch of an epoch may be
 * short, so no record is dropped). The eval split is read once.
 */
export function batchSlice(k: number, batchSize: number, splitRecords: number, split: SplitName, who: string): BatchSlice {
  if (!(batchSize >= 1 && batchSize <= MAX_BATCH_SIZE)) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${who}: batch size ${batchSize} is outside 1..${MAX_BATCH_SIZE}`);
  }
  if (!Number.isSafeInteger(k) || k < 0) throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${who}: batch index ${k} is not a non-negative integer`);
  if (splitRecords === 0 && split === "train") return { batchIndex: k, epoch: 0, start: k * batchSize, count: batchSize };
  const perEpoch = Math.ceil(splitRecords / batchSize);
  if (split === "eval" && k >= perEpoch) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${who}: eval batch ${k} is past the split's ${perEpoch} batches`);
  }
  const local = k % perEpoch;
  const start = local * batchSize;
  return { batchIndex: k, epoch: Math.floor(k / perEpoch), start, count: Math.min(batchSize, splitRecords - start) };
}
