import type * as grpc from "@grpc/grpc-js";
import { MAX_MESSAGE_BYTES, ParameterServerService, namesOneWorker, peerIdentity, toServiceError, type AuthenticatedCall } from "@pangea/rpc";
import { checkActsFor } from "./peer-check.js";
import { MessageType, type PayloadTypes, decodeMessage, encodeMessage, initFloat32Tensor, readFloat32, readIdWords, sizeHint, writeFloats, writeTensor, DataType } from "@pangea/schema";
import type { ParameterHost, SealedBatch } from "./parameter-host.js";
import { BatchRowBudget } from "./batch-row-budget.js";
import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import { TokenBucket, printable, type Logger } from "@pangea/kit";
import { OrchestratorErrors } from "../errors.js";
import type { DenseExchange } from "../params/dense-exchange.js";
import type { DenseStore } from "../params/dense-store.js";

/** Tensors sent and taken so far, by how: in the messages or through the dense exchange's files. */
export interface DenseTransfers {
  weights: { message: number; file: number };
  gradients: { message: number; file: number };
  /** A training pull's rows, and a push's row gradients. */
  rows: { message: number; file: number };
  rowGradients: { message: number; file: number };
  /** Weight and rows files that could not be written (their tensors went in the message). */
  fileWriteFailures: number;
}

/**
 * ParameterServer/Pull and /Push over Cap'n Proto. Pull returns the dense
 * parameters and the rows of the requested ids (creating rows on first
 * sight unless readOnly); Push hands a worker's gradients to the job and
 * answers on arrival (a sync step is applied when its last batch arrives).
 */
export class ParameterServer {
  readonly transfers: DenseTransfers = { weights: { message: 0, file: 0 }, gradients: { message: 0, file: 0 }, rows: { message: 0, file: 0 }, rowGradients: { message: 0, file: 0 }, fileWriteFailures: 0 };
  /** Where a training pull's rows are gathered before they go to a rows file: one pull at a time, reused. */
  private rowScratch = new Float32Array(0);
  /** The rows training pulls made per batch, held to each batch's sealed count of ids. */
  private readonly rowBudget: BatchRowBudget;
  /** Refused training pulls are logged a few a second at most. */
  private readonly refusalsLogged = new TokenBucket(5, 1);

  constructor(
    private readonly job: ParameterHost,
    private readonly sender: string,
    /** Trainers on this machine take the dense parameters and give their gradients through its files (null: messages only). */
    private readonly exchange: DenseExchange | null = null,
    private readonly log: Logger | null = null,
  ) {
    const shard = /^ps-shard-(\d+)$/.exec(sender);
    this.rowBudget = new BatchRowBudget((batch) => this.job.batchDone?.(batch) ?? false, shard ? ` by parameter-server shard ${shard[1]}` : "");
  }

  /** Why the last weight file could not be written: logged when it changes, not at every pull. */
  private lastWriteFailure = "";

  addToServer(server: grpc.Server): void {
    server.addService(ParameterServerService, {
      pull: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        let req: PullRequest;
        let ahead: { batches: number[]; workingOn: number[] };
        let sealed: SealedBatch | null = null;
        let [step, batch, batchIds] = [0, 0, 0];
        try {
          req = decodeMessage(call.request, MessageType.PARAMETER_REQUEST, `pull from ${call.getPeer()}`).payload;
          const what = `pull from rank ${req.workerRank}`;
          // Numbers of a request past 2^53 are no job's (a client's -1 arrives as 2^64 - 1): refused before any is used.
          [step, batch, batchIds] = [wholeOf(req.step, "step", what), wholeOf(req.batchIndex, "batchIndex", what), wholeOf(req.batchIds, "batchIds", what)];
          // A rows file is its rank's (two per rank, recycled in turn): a per-worker certificate asks for its own only.
          if (req.rowsInFile && !req.readOnly) this.checkActsForRank(call, req.workerRank, `pull for rank ${req.workerRank} with its rows in a file`);
          ahead = this.aheadBatches(req, call);
          // A training pull counts its ids and makes their rows (kept in every checkpoint): the trainer holding the rank's.
          if (!req.readOnly) {
            const pull = {
              rank: req.workerRank, token: req.workerToken, ahead: ahead.batches.length > 0, aheadBatches: ahead.batches, step,
              batch, ticket: req.batchTicket, batchIds, batchIdsSeal: req.batchIdsSeal,
            };
            sealed = this.job.checkTrainingPull?.(pull, `training pull for rank ${req.workerRank}`) ?? null;
          }
        } catch (err) {
          cb(toServiceError(err));
          return;
        }
        if (!ahead.batches.length) {
          this.answerPull(cb, () => this.pull(req, null, sealed));
          return;
        }
        const since = performance.now();
        const gone = new AbortController();
        call.on("cancelled", () => gone.abort());
        let held: Promise<boolean>;
        try {
          held = this.job.holdPull!(step, req.workerRank, ahead.batches, ahead.workingOn, gone.signal);
        } catch (err) {
          cb(toServiceError(err));
          return;
        }
        held.then(
          (serve) => {
            // A trainer gone meanwhile: reading (and creating) its rows would count ids for a batch nobody trains.
            if (call.cancelled) return;
            const heldMicros = BigInt(Math.round((performance.now() - since) * 1000));
            this.answerPull(cb, () => (serve ? this.pull(req, { heldMicros }, sealed) : this.withdrawn(heldMicros)));
          },
          (err) => cb(toServiceError(err)),
        );
      },
      push: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        this.push(call.request, call.getPeer(), call).then(
          (res) => cb(null, res),
          (err) => cb(toServiceError(err)),
        );
      },
      assign: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.unary(cb, () => {
        const { payload: a } = decodeMessage(call.request, MessageType.EMBEDDING_ASSIGN, `assign from ${call.getPeer()}`);
        const { words, count } = readIdWords(a.ids, "assign: ids");
        const rows = readFloat32(a.embeddings, "assign: embeddings", 2);
        if (rows.shape[0] !== count) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `assign: ${count} ids but ${rows.shape[0]} embedding rows`);
        const store = this.job.requireModel(true).store;
        return this.stats(store, [], store.assign(words, count, rows.data, rows.shape[1]!));
      }),
      evict: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.unary(cb, () => {
        const { payload: e } = decodeMessage(call.request, MessageType.EMBEDDING_EVICT, `evict from ${call.getPeer()}`);
        const { words, count } = readIdWords(e.ids, "evict: ids");
        const store = this.job.requireModel(true).store;
        return this.stats(store, [], store.evict(words, count));
      }),
      tableStats: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.unary(cb, () => {
        const { payload: r } = decodeMessage(call.request, MessageType.TABLE_STATS_REQUEST, `table stats from ${call.getPeer()}`);
        const slots: number[] = [];
        for (let i = 0; i < r.slots.length; i++) slots.push(r.slots.get(i));
        return this.stats(this.job.requireModel(true).store, slots, 0);
      }),
    });
  }

  private unary(cb: grpc.sendUnaryData<Buffer>, fn: () => Buffer): void {
    try {
      cb(null, fn());
    } catch (err) {
      cb(toServiceError(err));
    }
  }

  /** A TableStats answer, for all slots or the ones asked for. */
  private stats(store: EmbeddingStore, slots: number[], changed: number): Buffer {
    const s = store.stats();
    const per = slots.length ? s.perSlot.filter((p) => slots.includes(p.slot)) : s.perSlot;
    return encodeMessage(MessageType.TABLE_STATS, this.sender, (t) => {
      t.rows = BigInt(per.reduce((n, p) => n + p.rows, 0));
      t.bytes = BigInt(slots.length ? per.reduce((n, p) => n + p.bytes, 0) : s.bytes);
      t.filteredLookups = BigInt(s.filtered);
      t.admittedIds = BigInt(s.admitted);
      t.evictedRows = BigInt(s.evicted);
      t.rejectedGradients = BigInt(s.rejectedGradients);
      t.changed = BigInt(changed);
      t.memoryLimitHits = BigInt(s.memoryLimitHits);
      const list = t._initSlots(per.length);
      per.forEach((p, i) => {
        const e = list.get(i);
        e.slot = p.slot;
        e.rows = BigInt(p.rows);
        e.bytes = BigInt(p.bytes);
        e.evictedRows = BigInt(p.evicted);
      });
    });
  }

  private answerPull(cb: grpc.sendUnaryData<Buffer>, fn: () => Buffer): void {
    try {
      cb(null, fn());
    } catch (err) {
      // The tables are full: every later pull of a new id would fail the same way, and a
      // trainer retrying forever helps nobody. The job fails with the limit as its reason.
      if (OrchestratorErrors.is(err, "ORCH_ERR_MEMORY_LIMIT")) this.job.fail(err);
      cb(toServiceError(err));
    }
  }

  /** A pull sent ahead names the batches it is for and those its trainer holds now; none for an ordinary pull. */
  private aheadBatches(req: PullRequest, call: AuthenticatedCall): { batches: number[]; workingOn: number[] } {
    const list = req.aheadBatches;
    if (!list.length) return { batches: [], workingOn: [] };
    const rank = req.workerRank;
    if (!this.job.holdPull) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `pull sent ahead by rank ${rank}: only shard 0 (the orchestrator) holds pulls for a step to come`);
    if (req.readOnly) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `pull sent ahead by rank ${rank}: a read-only pull cannot be sent ahead`);
    const working = req.workingOn;
    if (list.length > MAX_AHEAD_BATCHES || working.length > MAX_AHEAD_BATCHES) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `pull sent ahead by rank ${rank}: ${Math.max(list.length, working.length)} batches named, at most ${MAX_AHEAD_BATCHES}`);
    // Held as that trainer's: a per-worker certificate holds pulls for its own rank only.
    this.checkActsForRank(call, rank, `pull sent ahead for rank ${rank}`);
    return { batches: wholes(list, "aheadBatches", `pull sent ahead by rank ${rank}`), workingOn: wholes(working, "workingOn", `pull sent ahead by rank ${rank}`) };
  }

  /** A caller with a per-worker certificate must be the trainer holding `rank` (where this host knows who does). */
  private checkActsForRank(call: AuthenticatedCall, rank: number, what: string): void {
    const identity = peerIdentity(call);
    const owner = identity && namesOneWorker(identity) ? this.job.workerOfRank?.(rank) : undefined;
    if (owner) checkActsFor(identity, "trainer", owner, what);
  }

  /** The answer to a pull sent ahead that is not served: no rows. */
  private withdrawn(heldMicros: bigint): Buffer {
    return encodeMessage(MessageType.PARAMETER_SET, this.sender, (set) => {
      set.step = BigInt(this.job.step);
      set.withdrawn = true;
      set.heldMicros = heldMicros;
      writeTensor(set._initIds(), "ids", DataType.UINT64, [0], new Uint32Array(0));
    });
  }

  /**
   * `ahead`: a pull sent ahead, served after being held this long; `sealed`: the batch a training pull makes rows
   * for, bounded by its count of ids (null: the host holds no key to check the seal with, nothing is bounded).
   */
  private pull(req: PullRequest, ahead: { heldMicros: bigint } | null = null, sealed: SealedBatch | null = null): Buffer {
    const readOnly = req.readOnly;
    const model = this.job.requireModel(readOnly);
    const step = Number(req.step);
    if (!readOnly) this.job.checkPullStep(step, req.workerRank);
    const { words, count } = readIdWords(req.ids, `pull from rank ${req.workerRank}: ids`);
    const call = `training pull for rank ${req.workerRank}`;
    if (sealed) this.logged(req.workerRank, () => this.rowBudget.checkCount(sealed, count, call));
    const { store, dense } = model;
    // The rows the pull makes are charged to its batch; those it may make are checked before any is (admitNew).
    const readRows = (out: Float32Array) => {
      if (readOnly || !sealed) return store.readMany(words, count, readOnly, out, offsets);
      const before = store.size();
      try {
        store.readMany(words, count, false, out, offsets, (fresh) => this.logged(req.workerRank, () => this.rowBudget.admit(sealed, fresh, call)));
      } finally {
        this.rowBudget.note(sealed, store.size() - before);
      }
    };
    const { offsets, uniform } = store.rowOffsets(words, count);
    const total = offsets[count]!;
    // Rows of one width go as [count, width], as always; rows of slots of different widths side by side, [total].
    const shape = uniform !== null ? [count, uniform] : [total];
    if (req.includeDense && !dense) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", "this parameter-server shard holds no dense parameters; pull them from shard 0");
    // Written before the answer is: a trainer opens the file only once the answer names it.
    const denseFile = req.includeDense && req.denseInFile && this.exchange ? this.weightsFile(dense!) : null;
    const inline = req.includeDense && !denseFile;
    // A training pull's rows (its rank checked above) to the rank's rows file, where asked for and writable.
    // Only a live trainer's rank has rows files (two each; a gone trainer's are swept).
    const toFile = req.rowsInFile && !readOnly && !req.halfRows && this.exchange !== null && this.job.workerOfRank?.(req.workerRank) !== undefined;
    // Refused before any row is read or made when the answer could not be sent (a read-only pull of 3.9 million copies
    // of one id built a 283 MB answer, then failed with grpc-js's "Sent message larger than max"); rows bound for a
    // file do not count, unless the file cannot be written and they come in the message after all.
    const denseBytes = inline ? dense!.values.reduce((n, v) => n + v.byteLength, 0) : 0;
    const checkSize = (rowsInMessage: boolean) => {
      const bytes = count * 8 + denseBytes + (rowsInMessage ? total * (req.halfRows ? 2 : 4) : 0);
      if (bytes <= MAX_MESSAGE_BYTES - (1 << 20)) return;
      throw OrchestratorErrors.create("ORCH_ERR_TOO_LARGE", `pull from rank ${req.workerRank}: the rows of its ${count.toLocaleString("en-US")} ids would make an answer of ${bytes.toLocaleString("en-US")} bytes, above the ${MAX_MESSAGE_BYTES.toLocaleString("en-US")} a message may carry; pull unique ids, fewer at a time`);
    };
    checkSize(!toFile);
    const gathered = toFile ? this.gatherRows(total, readRows) : null;
    const rowsFile = gathered ? this.rowsFile(req.workerRank, gathered) : null;
    if (gathered && !rowsFile) checkSize(true);
    const answer = encodeMessage(MessageType.PARAMETER_SET, this.sender, (set) => {
      set.step = BigInt(this.job.step);
      if (ahead) {
        set.servedAhead = true;
        set.heldMicros = ahead.heldMicros;
      }
      if (denseFile) set.denseFile = denseFile;
      if (inline) {
        const list = set._initDense(dense!.values.length);
        dense!.values.forEach((v, i) => writeTensor(list.get(i), dense!.params[i]!.name, DataType.FLOAT32, dense!.params[i]!.shape, v));
      }
      // Named with every answer that carries the dense parameters: a trainer that sees this directory asks for the file
      // from then on, and one that used another (this server's before a restart) checks this one first.
      if (req.includeDense && this.exchange) {
        set.exchangeDir = this.exchange.dir;
        set.exchangeNonce = this.exchange.nonce;
      }
      writeTensor(set._initIds(), "ids", DataType.UINT64, [count], words);
      if (rowsFile) {
        set.rowsFile = rowsFile;
        initFloat32Tensor(set._initEmbeddings(), "embeddings", [0]);
        return;
      }
      // Rows read already for a file that could not be written: read once (a training pull counts its ids), sent as read.
      if (gathered) {
        initFloat32Tensor(set._initEmbeddings(), "embeddings", shape).set(gathered);
        return;
      }
      // Rows are written in place as float32, or gathered and sent as float16 when the trainer asks.
      const out = req.halfRows ? new Float32Array(total) : initFloat32Tensor(set._initEmbeddings(), "embeddings", shape);
      // An id without a row (unknown in a read-only pull, or still below its
      // occurrence threshold) reads as zeros, as Monolith serving does.
      readRows(out);
      if (req.halfRows) writeFloats(set._initEmbeddings(), "embeddings", shape, out, true);
    }, sizeHint(...(inline ? dense!.values : []), words, { byteLength: rowsFile ? 0 : total * 4 }));
    if (denseFile) this.transfers.weights.file++;
    else if (inline) this.transfers.weights.message++;
    if (!readOnly) this.transfers.rows[rowsFile ? "file" : "message"]++;
    return answer;
  }

  /** Runs a check of a training pull; a refusal is logged (a few a second) before it goes to the trainer. */
  private logged(rank: number, check: () => void): void {
    try {
      check();
    } catch (err) {
      if (this.refusalsLogged.take()) this.log?.warn({ rank }, (err as Error).message);
      throw err;
    }
  }

  /** A training pull's rows (new ones made) in the scratch array, for a rows file. */
  private gatherRows(total: number, readRows: (out: Float32Array) => void): Float32Array {
    if (this.rowScratch.length < total) this.rowScratch = new Float32Array(Math.max(total, this.rowScratch.length * 2));
    const rows = this.rowScratch.subarray(0, total);
    readRows(rows);
    return rows;
  }

  /** `rows` written to `rank`'s next rows file; null (they go in the message) if it cannot be written. */
  private rowsFile(rank: number, rows: Float32Array): string | null {
    try {
      this.exchange!.sweepRows((r) => this.job.workerOfRank?.(r) !== undefined);
      return this.exchange!.rowsFile(rank, rows);
    } catch (err) {
      this.noteWriteFailure(err);
      return null;
    }
  }

  /** The exchange's file of the dense parameters; null (they go in the message) if it cannot be written, /dev/shm full or its directory removed. */
  private weightsFile(dense: DenseStore): string | null {
    try {
      return this.exchange!.weightsFile(dense);
    } catch (err) {
      this.noteWriteFailure(err);
      return null;
    }
  }

  /** A weights or rows file that could not be written: counted, and logged when the reason changes. */
  private noteWriteFailure(err: unknown): void {
    this.transfers.fileWriteFailures++;
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (why !== this.lastWriteFailure) this.log?.warn({ dir: this.exchange!.dir, why }, "dense exchange: cannot write a file; its tensors go in the messages");
    this.lastWriteFailure = why;
  }

  private async push(bytes: Buffer, peer: string, call: AuthenticatedCall): Promise<Buffer> {
    const { payload: u } = decodeMessage(bytes, MessageType.GRADIENT_UPDATE, `push from ${peer}`);
    const rank = u.workerRank;
    const what = `push from rank ${rank}`;
    const [step, batch] = [wholeOf(u.step, "step", what), wholeOf(u.batchIndex, "batchIndex", what)];
    // A per-worker certificate pushes for its own rank only; any caller, with the token of the trainer holding the rank
    // (the shared trainer certificate, or anyone in plaintext, could push as another trainer).
    this.checkActsForRank(call, rank, `Push for rank ${rank}`);
    this.job.checkPush?.({ rank, token: u.workerToken, batch, ticket: u.batchTicket }, `Push for rank ${rank}`);
    const denseList = u.dense;
    let dense: Float32Array[] = [];
    for (let i = 0; i < denseList.length; i++) dense.push(readFloat32(denseList.get(i), `${what}: dense gradient ${i}`).data);
    const file = u.denseFile;
    const ids = readIdWords(u.sparseIds, `${what}: sparse ids`);
    let sparseGrads: Float32Array | null = null;
    if (u.sparseGradsInFile) {
      if (!file) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: row gradients said to be in the dense gradients' file, but no file is named; expected denseFile with sparseGradsInFile`);
      if (u._hasSparseGrads()) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: row gradients both in the message and in file ${printable(file, 80)}; expected one of the two`);
    }
    if (file) {
      if (denseList.length) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: dense gradients both in the message and in file ${printable(file, 80)}; expected one of the two`);
      if (!this.exchange) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: dense gradients in file ${printable(file, 80)}, but this parameter server has no exchange directory (--dense-exchange off, no usable /dev/shm, or not shard 0); send them in the message`);
      const held = this.job.requireModel(false);
      const model = held.dense;
      if (!model) throw OrchestratorErrors.create("ORCH_ERR_BAD_DENSE_FILE", `${what}: dense gradients in file ${printable(file, 80)}, but this parameter-server shard holds no dense parameters`);
      const lengths = model.values.map((v) => v.length);
      // The row gradients' length follows from the ids: each of its slot's width, as the job checks a message's (an id
      // of an undeclared slot is passed over there, as in a message).
      if (u.sparseGradsInFile) lengths.push(held.store.widthSum(ids.words, ids.count));
      dense = this.exchange.readGradients(file, rank, lengths, what);
      if (u.sparseGradsInFile) sparseGrads = dense.pop()!;
    }
    const result = await this.job.push({
      rank,
      step,
      batchSize: u.batchSize,
      loss: u.loss,
      dense,
      sparseIds: ids.words,
      sparseGrads: sparseGrads ?? readFloat32(u.sparseGrads, `${what}: sparse gradients`).data,
      batchIndex: batch,
      streamingAuc: u.streamingAuc,
      taskLosses: numbers(u.taskLosses),
      taskStreamingAuc: numbers(u.taskStreamingAuc),
    });
    if (file) this.transfers.gradients.file++;
    else if (denseList.length) this.transfers.gradients.message++;
    this.transfers.rowGradients[sparseGrads ? "file" : "message"]++;
    return encodeMessage(MessageType.STEP_ACK, this.sender, (ack) => {
      ack.step = BigInt(result.step);
      ack.meanLoss = result.meanLoss;
      ack.workers = result.workers;
      ack.stale = result.stale ?? false;
      ack.duplicate = result.duplicate ?? false;
    });
  }
}

type PullRequest = PayloadTypes[typeof MessageType.PARAMETER_REQUEST];

/** More than a step's batches is never a trainer's; the bound keeps a held request small. */
const MAX_AHEAD_BATCHES = 4096;

/** A Cap'n Proto list of numbers (Float32, or UInt64 batch indices) as JavaScript numbers. */
function numbers(list: { length: number; get(i: number): number | bigint }): number[] {
  const out: number[] = [];
  for (let i = 0; i < list.length; i++) out.push(Number(list.get(i)));
  return out;
}

/**
 * A request's UInt64 field (a step, a batch index, a count) as a number, or ORCH_ERR_BAD_REQUEST: past 2^53 it is no
 * job's (a client's -1 arrives as 2^64 - 1, which Number() would name as 18446744073709552000).
 */
function wholeOf(v: bigint, field: string, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `${what}: ${field} ${v} is beyond any job's (a negative ${field} sent as an unsigned 64-bit number reads so)`);
  return Number(v);
}

/** A Cap'n Proto list of UInt64 batch indices as numbers, each checked as wholeOf checks one. */
function wholes(list: { length: number; get(i: number): bigint }, field: string, what: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < list.length; i++) out.push(wholeOf(list.get(i), field, what));
  return out;
}
