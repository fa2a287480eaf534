import type * as grpc from "@grpc/grpc-js";
import { taskCount, tasksOf, type ModelShape } from "@pangea/model";
import { batchStreamClient, waitReady, type BatchStreamClient } from "@pangea/rpc";
import { MessageType, Split, decodeMessage, encodeMessage, readFloat32, readIdWords, readUint32 } from "@pangea/schema";
import { TrainerErrors } from "../errors.js";
import { batchStreamError } from "./compute-errors.js";
import type { ModelBatch } from "../model/ctr-model.js";

export interface DecodedBatch {
  batchIndex: number;
  size: number;
  dense: Float32Array;
  /** [size, T], row-major: each sample's label for every task. */
  labels: Float32Array;
  /** Per-sample loss weights, or null when every sample weighs 1. */
  weights: Float32Array | null;
  /** (lo, hi) words of every feature value, in cell order. */
  idWords: Uint32Array;
  nnz: number;
  /** [size * slots + 1]: cell c (sample c / slots, slot column c % slots) holds values cellOffsets[c] .. cellOffsets[c + 1] - 1. */
  cellOffsets: Uint32Array;
  /** null when every cell holds exactly one value. */
  cellOfValue: Int32Array | null;
  /** Compute's seal on nnz (TrainingBatch.idsSeal): the batch's training pulls carry it. */
  idsSeal: string;
}

/** The model's view of a decoded batch, given each value's row among the pulled unique ids. */
export function toModelBatch(b: DecodedBatch, inverse: Int32Array): ModelBatch {
  return { size: b.size, dense: b.dense, labels: b.labels, weights: b.weights, inverse, cellOfValue: b.cellOfValue };
}

/** Checks a TrainingBatch against the job's model and exposes its tensors as typed-array views. */
export function decodeBatch(bytes: Buffer, spec: ModelShape, peer: string): DecodedBatch {
  const { payload: b } = decodeMessage(bytes, MessageType.TRAINING_BATCH, peer);
  const bad = (msg: string) => TrainerErrors.create("TRAINER_ERR_BAD_BATCH", `batch ${b.batchIndex} from ${peer}: ${msg}`);
  const S = spec.numSlots;
  if (b.slotIds.length !== S) throw bad(`has ${b.slotIds.length} slots, the model has ${S}`);
  const dense = readFloat32(b.dense, `${peer}: dense`, 2);
  const B = dense.shape[0]!;
  if (dense.shape[1] !== spec.numDense) throw bad(`has ${dense.shape[1]} dense features, the model has ${spec.numDense}`);
  const labels = readFloat32(b.labels, `${peer}: labels`);
  const T = taskCount(spec);
  const tasks = labels.shape.length === 1 ? 1 : labels.shape.length === 2 ? labels.shape[1]! : -1;
  if (labels.shape[0] !== B || tasks < 0) throw bad(`has labels of shape [${labels.shape.join(", ")}] for ${B} samples, expected [${B}${T > 1 ? `, ${T}` : ""}]`);
  if (tasks !== T) throw bad(`has ${tasks} label${tasks === 1 ? "" : "s"} per sample, the model has ${T} task${T === 1 ? "" : "s"} (${tasksOf(spec).map((t) => t.name).join(", ")})`);
  const ids = readIdWords(b.featureIds, `${peer}: feature ids`);
  const offsets = readUint32(b.cellOffsets, `${peer}: cell offsets`, 1).data;
  if (offsets.length !== B * S + 1 || offsets[0] !== 0 || offsets[B * S] !== ids.count) {
    throw bad(`cell offsets must have ${B * S + 1} entries from 0 to ${ids.count}`);
  }
  const scan = scanCellOffsets(offsets, B * S);
  if (scan >= 0) throw bad(`cell offsets decrease at cell ${scan}`);
  const cellOfValue = scan === ONE_EACH ? null : cellsOfValues(offsets, B * S, ids.count);
  let weights: Float32Array | null = null;
  if (b._hasWeights()) {
    const w = readFloat32(b.weights, `${peer}: weights`, 1);
    if (w.shape[0] !== B) throw bad(`has ${w.shape[0]} weights for ${B} samples`);
    weights = w.data;
  }
  return { batchIndex: Number(b.batchIndex), size: B, dense: dense.data, labels: labels.data, weights, idWords: ids.words, nnz: ids.count, cellOffsets: offsets, cellOfValue, idsSeal: b.idsSeal };
}

const ONE_EACH = -1;
const SOME_MULTI = -2;

/*
 * The loops over a batch's cells live in functions of their own, each ending
 * right after its loop. V8 compiles a long loop on the stack (OSR) in the
 * first call, before the code after the loop has run once; in decodeBatch
 * itself that code (the weights' check) then deoptimized every later call
 * (measured: every call of a 240-batch run; without it, decoding a
 * 2048-example batch took 0.25 ms instead of 0.30).
 */

/** The first cell whose offsets decrease, else ONE_EACH when every cell holds exactly one value, or SOME_MULTI. */
function scanCellOffsets(offsets: Uint32Array, cells: number): number {
  let oneEach = true;
  for (let c = 0; c < cells; c++) {
    if (offsets[c + 1]! < offsets[c]!) return c;
    if (offsets[c + 1]! - offsets[c]! !== 1) oneEach = false;
  }
  return oneEach ? ONE_EACH : SOME_MULTI;
}

/** Each value's cell, for offsets that never decrease. */
function cellsOfValues(offsets: Uint32Array, cells: number, values: number): Int32Array {
  const cellOfValue = new Int32Array(values);
  for (let c = 0; c < cells; c++) cellOfValue.fill(c, offsets[c]!, offsets[c + 1]!);
  return cellOfValue;
}

/**
 * The trainer's registration as its batch requests carry it: compute, given the orchestrator's key, serves only a
 * request whose token was issued for the rank it names (BatchRequest.workerToken, tokenRank).
 */
export interface StreamRegistration {
  rank: number;
  token: string;
}

/**
 * Reads this worker's share of a split from compute, one batch at a time;
 * gRPC flow control stops compute while this side is busy.
 */
export class BatchReader {
  private readonly client: BatchStreamClient;
  private call: grpc.ClientDuplexStream<Buffer, Buffer> | null = null;
  private iterator: AsyncIterator<Buffer> | null = null;
  private holding = false;
  /** The call's error, kept from the moment the call starts: one that comes before the first read must neither crash the process nor pass for the share's end. */
  private failure: unknown = null;

  constructor(
    private readonly address: string,
    private readonly sender: string,
    private readonly registration: StreamRegistration,
  ) {
    this.client = batchStreamClient(address);
  }

  async open(
    req: { workerRank: number; worldSize: number; batchSize: number; maxBatches: number; split: "train" | "eval"; window?: number },
    timeoutMs: number,
  ): Promise<void> {
    await waitReady(this.client, "compute", this.address, timeoutMs);
    const request = encodeMessage(MessageType.BATCH_REQUEST, this.sender, (r) => {
      r.workerRank = req.workerRank;
      r.worldSize = req.worldSize;
      r.batchSize = req.batchSize;
      r.maxBatches = BigInt(req.maxBatches);
      r.split = req.split === "eval" ? Split.EVAL : Split.TRAIN;
      r.window = req.window ?? 0;
      r.workerToken = this.registration.token;
      r.tokenRank = this.registration.rank;
    });
    this.call = this.client.streamBatches();
    this.call.on("error", (err) => {
      this.failure ??= err;
    });
    this.call.write(request);
    this.iterator = this.call[Symbol.asyncIterator]();
  }

  /**
   * The next batch's bytes, or null at the end of the share. Asking for the
   * next batch acknowledges the previous one, which lets compute send another.
   */
  async next(): Promise<Buffer | null> {
    if (this.holding) {
      this.call!.write(encodeMessage(MessageType.BATCH_ACK, this.sender, (a) => (a.consumed = 1)));
      this.holding = false;
    }
    let r: IteratorResult<Buffer>;
    try {
      r = await this.iterator!.next();
    } catch (err) {
      throw this.lost(err);
    }
    // gRPC ends the stream before it reports a failed status: an end with an error is that error.
    if (r.done) {
      if (this.failure) throw this.lost(this.failure);
      return null;
    }
    this.holding = true;
    return r.value;
  }

  private lost(err: unknown): Error {
    return batchStreamError(err, this.address);
  }

  close(): void {
    this.call?.cancel();
    this.client.close();
  }
}
