import type * as grpc from "@grpc/grpc-js";
import { describeCallError, parameterServerClient, remoteCode, unary, type ParameterServerClient } from "@pangea/rpc";
import { DataType, MessageType, decodeMessage, encodeMessage, readFloat32, sizeHint, writeFloats, writeTensor } from "@pangea/schema";
import type { Logger } from "@pangea/kit";
import { BatchTickets } from "./batch-tickets.js";
import { DenseExchangeUse } from "./dense-exchange-use.js";
import type { DenseParam, RowLayout } from "@pangea/model";
import { TrainerErrors } from "../errors.js";
import { isStatus } from "@pangea/rpc";
import { status } from "@grpc/grpc-js";

export interface Pulled {
  step: number;
  dense: Float32Array[] | null;
  rows: Float32Array;
  /** A pull sent ahead: milliseconds it took, from sending to its answer (performance.now), less the time it was held. */
  aheadMs?: number;
}

/** What a pull sent ahead is for: the batches expected at its step, and those the trainer holds at the step before. */
export interface Ahead {
  batches: readonly number[];
  workingOn: readonly number[];
}

/**
 * The batch a training pull is for (DecodedBatch's fields): its global index (and so its ticket), and its count of ids
 * with compute's seal on it. A parameter server makes at most about that many rows for the batch.
 */
export interface PullBatch {
  batchIndex: number;
  nnz: number;
  idsSeal: string;
}

/** A multi-task batch's per-task figures, in the job's task order (GradientUpdate.taskLosses/taskStreamingAuc). */
export interface TaskFigures {
  losses: Float32Array;
  streamingAuc: Float32Array;
}

export interface PushAck {
  step: number;
  meanLoss: number;
  /** async: dropped by the orchestrator as too stale. */
  stale: boolean;
  /** the batch's gradients had arrived before (from a trainer declared dead); ignored. */
  duplicate: boolean;
}

/** The trainer's side of ParameterServer/Pull and /Push. */
export class ParameterClient {
  private readonly client: ParameterServerClient;
  private aheadUnderstood = true;
  private readonly exchange: DenseExchangeUse;
  /** A push is under way: the next one's gradients go in the message (the exchange recycles a file per push answered). */
  private pushing = false;
  /** The server has answered a pull with a rows file: it reads row gradients from the gradient file too (an older one would not). */
  private rowsInFiles = false;

  constructor(
    private readonly address: string,
    private readonly sender: string,
    private readonly rank: number,
    private readonly params: readonly DenseParam[],
    /** The width of each id's row (rows of different widths travel side by side, see RowLayout). */
    private readonly layout: RowLayout,
    /** fp16 transport of gradients and pulled rows. */
    private readonly half = false,
    /** Shard 0 is the orchestrator itself: losing it means the job's coordinator is gone. */
    private readonly isCoordinator = true,
    log: Logger | null = null,
    /** This trainer's registration token, as of each push and training pull: the parameter servers take them only with it. */
    private readonly workerToken: () => string = () => "",
    /** The tickets of the batches this trainer was given: each push carries its batch's. */
    private readonly tickets = new BatchTickets(),
  ) {
    this.client = parameterServerClient(address);
    this.exchange = new DenseExchangeUse(params, log);
  }

  private fail(err: unknown, what: string): never {
    // ABORTED: the job failed; RESOURCE_EXHAUSTED: a parameter server hit its memory limit, which ends the job too.
    // INVALID_ARGUMENT: the request itself is wrong (ids of an undeclared slot...); registering again would send it again, forever.
    // PERMISSION_DENIED: a token or certificate the server does not take for this rank; asking again would not change it.
    const kind = isStatus(err, status.ABORTED) || isStatus(err, status.RESOURCE_EXHAUSTED)
      ? "TRAINER_ERR_JOB_FAILED"
      : isStatus(err, status.INVALID_ARGUMENT) || isStatus(err, status.PERMISSION_DENIED)
        ? "TRAINER_ERR_REFUSED"
      : isStatus(err, status.FAILED_PRECONDITION)
        ? "TRAINER_ERR_EVICTED"
        : this.isCoordinator
          ? "TRAINER_ERR_LOST_ORCHESTRATOR"
          : "TRAINER_ERR_LOST_PEER";
    throw TrainerErrors.create(kind, `${what} ${describeCallError(err, `${this.isCoordinator ? "orchestrator" : "parameter-server shard"} at ${this.address}`)}`);
  }

  /**
   * offsets: the ids' RowLayout.offsets (null when every row has the uniform width); batch: the global batch a training
   * pull is for (its ticket goes with it: the other shards serve a training pull only for a batch given to this trainer).
   */
  async pull(step: number, ids: Uint32Array, idCount: number, includeDense: boolean, readOnly: boolean, offsets: Int32Array | null = this.layout.offsets(ids, idCount), batch: PullBatch | null = null): Promise<Pulled> {
    return (await this.request(step, ids, idCount, includeDense, readOnly, offsets, null, undefined, batch))!;
  }

  /**
   * A training pull sent ahead for `batches` at `step`, a step that may not
   * have begun: the orchestrator holds it until the step is planned and
   * serves it (with the dense parameters) if those are this trainer's
   * batches then; null when it was withdrawn (also when the trainer is given
   * other batches at the step before: it must then ask for work). Shard 0 only.
   */
  pullAhead(step: number, ahead: Ahead, ids: Uint32Array, idCount: number, offsets: Int32Array | null, batch: PullBatch, cancel?: AbortSignal): Promise<Pulled | null> {
    return this.request(step, ids, idCount, true, false, offsets, ahead, cancel, batch);
  }

  /** False once the orchestrator answered a pull sent ahead as an ordinary one: it predates them (an older version). */
  get pullsAhead(): boolean {
    return this.aheadUnderstood;
  }

  private async request(step: number, ids: Uint32Array, idCount: number, includeDense: boolean, readOnly: boolean, offsets: Int32Array | null, ahead: Ahead | null, cancel?: AbortSignal, batch: PullBatch | null = null): Promise<Pulled | null> {
    const req = encodeMessage(MessageType.PARAMETER_REQUEST, this.sender, (r) => {
      r.workerRank = this.rank;
      r.step = BigInt(step);
      r.includeDense = includeDense;
      r.readOnly = readOnly;
      if (!readOnly) r.workerToken = this.workerToken();
      if (!readOnly && batch) {
        r.batchIndex = BigInt(batch.batchIndex);
        // A pull sent ahead goes before GetWork has given the batch (and its ticket): shard 0 needs none.
        r.batchTicket = this.tickets.of(batch.batchIndex);
        r.batchIds = BigInt(batch.nnz);
        r.batchIdsSeal = batch.idsSeal;
      }
      r.halfRows = this.half;
      r.denseInFile = includeDense && this.exchange.active;
      // With the dense parameters: the answer names the directory again, checked before the rows file is read.
      r.rowsInFile = includeDense && !readOnly && !this.half && this.exchange.active;
      writeTensor(r._initIds(), "ids", DataType.UINT64, [idCount], ids.subarray(0, idCount * 2));
      if (ahead) {
        const list = r._initAheadBatches(ahead.batches.length);
        ahead.batches.forEach((j, i) => list.set(i, BigInt(j)));
        const working = r._initWorkingOn(ahead.workingOn.length);
        ahead.workingOn.forEach((j, i) => working.set(i, BigInt(j)));
      }
    }, sizeHint(ids.subarray(0, idCount * 2)));
    let res: Buffer;
    const sent = performance.now();
    try {
      res = await unary<Buffer, Buffer>("orchestrator", this.client.pull.bind(this.client), req, undefined, cancel);
    } catch (err) {
      this.fail(err, `${ahead ? "pull sent ahead" : "pull"} for step ${step}:`);
    }
    const { payload: set } = decodeMessage(res, MessageType.PARAMETER_SET, `orchestrator at ${this.address}`);
    if (set.withdrawn) {
      if (!ahead) throw TrainerErrors.create("TRAINER_ERR_BAD_BATCH", `orchestrator at ${this.address} withdrew a pull for step ${step} that was not sent ahead`);
      return null;
    }
    if (ahead && !set.servedAhead) {
      // Served as an ordinary pull, by an orchestrator that ignores aheadBatches: it does not say
      // whether these are this trainer's batches, so the trainer asks GetWork, and sends no more.
      this.aheadUnderstood = false;
      return null;
    }
    let dense: Float32Array[] | null = null;
    if (includeDense) this.exchange.named(set.exchangeDir, set.exchangeNonce);
    if (includeDense && set.denseFile) {
      // Not this trainer's to read, or unreadable: the parameters as they are now, in a message.
      dense = this.exchange.readWeights(set.denseFile) ?? (await this.pull(step, new Uint32Array(0), 0, true, true, null)).dense;
    } else if (includeDense) {
      const list = set.dense;
      if (list.length !== this.params.length) {
        throw TrainerErrors.create("TRAINER_ERR_BAD_BATCH", `orchestrator sent ${list.length} dense parameters, the model has ${this.params.length}`);
      }
      dense = [];
      for (let i = 0; i < list.length; i++) dense.push(readFloat32(list.get(i), `dense parameter ${this.params[i]!.name}`).data);
    }
    const total = this.layout.total(ids, idCount, offsets);
    let rows: Float32Array;
    if (set.rowsFile && includeDense) {
      this.rowsInFiles = true;
      // Unreadable (then the exchange is given up): the rows as they are now (in sync mode the same), read again in a
      // message without making or counting any.
      rows = this.exchange.readRows(set.rowsFile, this.rank, total) ?? (await this.pull(step, ids, idCount, false, true, offsets)).rows;
    } else {
      const inMessage = readFloat32(set.embeddings, "embeddings");
      const expected = offsets ? `[${total}] (${idCount} rows of their slots' widths)` : `[${idCount}, ${this.layout.uniform}]`;
      // [count, width] when the rows sent share one width (always, for a model of one width), else side by side, [total].
      const fits = inMessage.data.length === total && (inMessage.shape.length === 1 || (inMessage.shape.length === 2 && inMessage.shape[0] === idCount));
      if (!fits) throw TrainerErrors.create("TRAINER_ERR_BAD_BATCH", `orchestrator sent embeddings [${inMessage.shape.join(", ")}], expected ${expected}`);
      rows = inMessage.data;
    }
    const pulled: Pulled = { step: Number(set.step), dense, rows };
    if (ahead) pulled.aheadMs = Math.max(0, performance.now() - sent - Number(set.heldMicros) / 1000);
    return pulled;
  }

  async push(step: number, batchIndex: number, batchSize: number, loss: number, denseGrads: Float32Array[], ids: Uint32Array, idCount: number, rowGrads: Float32Array, streamingAuc = Number.NaN, tasks: TaskFigures | null = null): Promise<PushAck> {
    // fp16: the gradients stay in the message, in half precision, as the job asks.
    const viaFile = denseGrads.length > 0 && !this.half && !this.pushing && this.exchange.active;
    if (!viaFile) return this.pushOnce(step, batchIndex, batchSize, loss, denseGrads, ids, idCount, rowGrads, streamingAuc, tasks, false);
    this.pushing = true;
    try {
      return await this.pushOnce(step, batchIndex, batchSize, loss, denseGrads, ids, idCount, rowGrads, streamingAuc, tasks, true);
    } finally {
      this.pushing = false;
    }
  }

  private async pushOnce(step: number, batchIndex: number, batchSize: number, loss: number, denseGrads: Float32Array[], ids: Uint32Array, idCount: number, rowGrads: Float32Array, streamingAuc: number, tasks: TaskFigures | null, viaFile: boolean): Promise<PushAck> {
    const uniform = this.layout.uniform;
    // The row gradients follow the dense ones in the file, for a server that reads them there.
    const rowsToo = viaFile && this.rowsInFiles;
    const denseFile = viaFile ? this.exchange.writeGradients(rowsToo ? [...denseGrads, rowGrads] : denseGrads) : null;
    const rowsInFile = denseFile !== null && rowsToo;
    const req = encodeMessage(MessageType.GRADIENT_UPDATE, this.sender, (u) => {
      u.workerRank = this.rank;
      u.workerToken = this.workerToken();
      u.batchTicket = this.tickets.of(batchIndex);
      u.streamingAuc = streamingAuc;
      u.step = BigInt(step);
      u.batchIndex = BigInt(batchIndex);
      u.batchSize = batchSize;
      u.loss = loss;
      if (tasks) {
        const losses = u._initTaskLosses(tasks.losses.length);
        tasks.losses.forEach((x, t) => losses.set(t, x));
        const aucs = u._initTaskStreamingAuc(tasks.streamingAuc.length);
        tasks.streamingAuc.forEach((x, t) => aucs.set(t, x));
      }
      if (denseFile) u.denseFile = denseFile;
      else {
        const dense = u._initDense(denseGrads.length);
        denseGrads.forEach((data, i) => writeFloats(dense.get(i), this.params[i]!.name, this.params[i]!.shape, data, this.half));
      }
      writeTensor(u._initSparseIds(), "sparse_ids", DataType.UINT64, [idCount], ids.subarray(0, idCount * 2));
      if (rowsInFile) u.sparseGradsInFile = true;
      else writeFloats(u._initSparseGrads(), "sparse_grads", uniform !== null ? [idCount, uniform] : [rowGrads.length], rowGrads, this.half);
    }, sizeHint(...(denseFile ? [] : denseGrads), ids.subarray(0, idCount * 2), ...(rowsInFile ? [] : [rowGrads])));
    let res: Buffer;
    try {
      res = await unary<Buffer, Buffer>("orchestrator", this.client.push.bind(this.client), req);
    } catch (err) {
      // The file refused, before the job saw the push (gone under the server, a restarted server's other directory):
      // the same gradients again, in the message. Any other refusal stands.
      if (denseFile && remoteCode(err) === "ORCH_ERR_BAD_DENSE_FILE") {
        this.exchange.giveUp(`push for step ${step}: ${describeCallError(err, `orchestrator at ${this.address}`)}`);
        return this.pushOnce(step, batchIndex, batchSize, loss, denseGrads, ids, idCount, rowGrads, streamingAuc, tasks, false);
      }
      this.fail(err, `push for step ${step}:`);
    }
    const { payload: ack } = decodeMessage(res, MessageType.STEP_ACK, `orchestrator at ${this.address}`);
    return { step: Number(ack.step), meanLoss: ack.meanLoss, stale: ack.stale, duplicate: ack.duplicate };
  }

  close(): void {
    (this.client as grpc.Client).close();
    this.exchange.removeFiles();
  }
}
