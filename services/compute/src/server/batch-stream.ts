import type * as grpc from "@grpc/grpc-js";
import { TokenBucket, printable, type Logger } from "@pangea/kit";
import { BatchStreamService, peerIdentity, toServiceError } from "@pangea/rpc";
import { MessageType, Split, decodeMessage } from "@pangea/schema";
import { encodeBatch } from "../batching/batch-encoder.js";
import { batchSlice, checkShareRequest, shareBatches, type ShareRequest } from "../batching/shares.js";
import { RecordBlock, taskCountOf, type DataSource } from "../sources/source.js";
import type { KafkaSource, StreamedBatch } from "../sources/kafka-source.js";
import { DEFAULT_MAX_BATCH_STREAMS, DEFAULT_MAX_STREAM_MB, DEFAULT_MAX_STREAMS_PER_RANK } from "@pangea/service-flags";
import { StreamBudget } from "./stream-budget.js";
import { TrainerStreams } from "./trainer-streams.js";

/** A batch written to a stream: its encoded size, and whether it has left compute's buffers and been acknowledged (or given up). */
interface Sent {
  b: StreamedBatch | null;
  bytes: number;
  written: boolean;
  settled: boolean;
}

/** File and generated sources are read by index; a Kafka source is a stream handing out batches. */
export type BatchSource = DataSource | KafkaSource;
import { ComputeErrors } from "../errors.js";

type BatchCall = grpc.ServerDuplexStream<Buffer, Buffer>;

/** One call's credit-based flow control, as the produce loops see it. */
interface Flow {
  /**
   * Resolves true once a batch may be sent; false once none may be any more
   * (the call closed, or the client half-closed with no credit left: it can
   * acknowledge nothing more, so it can be sent nothing more).
   */
  waitForCredit(): Promise<boolean>;
  /** On-demand streams: resolves with the next batch index the client named (null once the call closed). */
  nextWanted(): Promise<number | null>;
  /**
   * Writes an encoded batch to the client, counted as held until acknowledged and written out (b null for an
   * index-based source, which has nothing to commit).
   */
  send(b: StreamedBatch | null, bytes: Buffer): void;
  /** Resolves once every sent batch is acknowledged, or the client will send no more acks. */
  waitForAcks(): Promise<void>;
  isClosed(): boolean;
}

/** Batches compute may have sent and the client not yet acknowledged, unless the client asks for another window. */
export const DEFAULT_WINDOW = 4;
export const MAX_WINDOW = 64;

/**
 * Serves BatchStream/StreamBatches: each call streams one worker's disjoint
 * share of a split. The client's first message is a BatchRequest, each later
 * one a BatchAck; a batch is produced only while fewer than `window` sent
 * batches are unacknowledged, so a slow trainer slows compute down instead
 * of making it buffer without bound.
 */
export class BatchStreamHandler {
  batchesServed = 0;
  recordsServed = 0;

  private fatalSeen = false;
  /** Failed streams are logged a few a second at most: a flood of refused ones (no token, past a cap) must not flood the log. */
  private readonly failuresLogged = new TokenBucket(5, 1);
  /** Failures not logged since the last one logged. */
  private failuresUnlogged = 0;

  constructor(
    private readonly source: BatchSource,
    private readonly sender: string,
    private readonly log: Logger,
    /** Called once when the source can no longer be read (a damaged record cache): serving cannot go on. */
    private readonly fatal: (err: Error) => void = () => {},
    /** What all streams together may hold (--max-stream-mb, --max-batch-streams). */
    readonly budget = new StreamBudget(DEFAULT_MAX_STREAM_MB * 2 ** 20, DEFAULT_MAX_BATCH_STREAMS),
    /** Whose streams are served, once the orchestrator has given the key (--max-streams-per-rank). */
    readonly trainers = new TrainerStreams(DEFAULT_MAX_STREAMS_PER_RANK),
  ) {}

  addToServer(server: grpc.Server): void {
    server.addService(BatchStreamService, {
      streamBatches: (call: BatchCall) => this.attach(call),
    });
  }

  private attach(call: BatchCall): void {
    const peer = call.getPeer();
    let started = false;
    let credit = 0;
    let closed = false;
    let halfClosed = false;
    let wake: (() => void) | null = null;
    // Batches sent and not yet acknowledged, oldest first (a stream source commits on ack).
    const inflight: Sent[] = [];
    // Batches whose bytes count in the budget of all streams: until acknowledged (or given up by a half-close) and
    // written out, whichever comes last; a client that half-closes or acknowledges without reading leaves them in
    // compute's HTTP/2 buffers, so an acknowledgement alone does not free them. All of them once the call is over.
    const holding = new Set<Sent>();
    let held = 0;
    let produced = false;
    // The stream's place among those compute serves, taken once its request is accepted, kept while it holds bytes.
    let leave: (() => void) | null = null;
    let unwatch: (() => void) | null = null;
    const leaveIfDone = () => {
      if (!(produced || closed) || holding.size > 0) return;
      leave?.();
      leave = null;
      unwatch?.();
      unwatch = null;
    };
    const release = (sent: Sent) => {
      if (!holding.delete(sent)) return;
      held -= sent.bytes;
      this.budget.give(sent.bytes);
      leaveIfDone();
    };
    const settle = (sent: Sent) => {
      sent.settled = true;
      if (sent.written) release(sent);
    };
    // What the client did not acknowledge, and can no longer, goes back to the source (newest first, so the oldest ends
    // up at the front of its queue again); its bytes stay counted until written out.
    const settleAll = () => {
      for (const sent of inflight.splice(0).reverse()) {
        sent.b?.release();
        settle(sent);
      }
    };
    // On-demand streams: batch indices the client named and compute has not sent yet.
    const wanted: number[] = [];
    const signal = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise<void>((r) => (wake = r));
    };
    const flow: Flow = {
      waitForCredit: async () => {
        // I/O first: a stream with a window of credit would otherwise make its whole window in one run of
        // the event loop, and the trainers' requests and acknowledgements wait behind it.
        await new Promise<void>((r) => setImmediate(r));
        // Past the budget, a stream holding batches waits for acknowledgements (its own or another stream's),
        // half-closed or not: a client that half-closed is sent its remaining credit, but within the budget.
        await until(() => closed || call.cancelled || (credit > 0 ? this.budget.mayProduce(held) : halfClosed));
        return credit > 0 && !closed && !call.cancelled;
      },
      nextWanted: async () => {
        await until(() => wanted.length > 0 || closed || halfClosed);
        return closed || wanted.length === 0 ? null : wanted.shift()!;
      },
      send: (b, encoded) => {
        credit--;
        const bytes = encoded.length;
        const sent: Sent = { b, bytes, written: false, settled: false };
        inflight.push(sent);
        holding.add(sent);
        held += bytes;
        this.budget.take(bytes);
        // The write's callback says the bytes have left compute's buffers; also called, with an error, for a write the
        // destroyed call dropped: gone either way.
        call.write(encoded, () => {
          sent.written = true;
          if (sent.settled) release(sent);
        });
      },
      waitForAcks: () => until(() => inflight.length === 0 || closed || halfClosed),
      isClosed: () => closed || call.cancelled,
    };
    const fail = (err: unknown) => {
      if (this.failuresLogged.take()) {
        this.log.warn({ peer, err: (err as Error).message, ...(this.failuresUnlogged ? { notLoggedBefore: this.failuresUnlogged } : {}) }, "batch stream failed");
        this.failuresUnlogged = 0;
      } else {
        this.failuresUnlogged++;
      }
      stop();
      if (!call.cancelled) call.emit("error", toServiceError(err));
      // Every trainer would meet the same damage: the process ends with it instead of answering each with DATA_LOSS.
      if (ComputeErrors.is(err, "COMPUTE_ERR_CACHE_CORRUPT") && !this.fatalSeen) {
        this.fatalSeen = true;
        this.fatal(err);
      }
    };
    // The call is over, whichever way: its place and bytes go to the other streams at once.
    const stop = () => {
      if (!closed) {
        settleAll();
        closed = true;
        for (const sent of [...holding]) release(sent);
        leaveIfDone();
      }
      signal();
    };
    call.on("data", (bytes: Buffer) => {
      try {
        if (!started) {
          started = true;
          const { payload: req, sender } = decodeMessage(bytes, MessageType.BATCH_REQUEST, `batch request from ${peer}`);
          // The message's sender is whatever the caller wrote there: named beside the certificate (or address) it came with.
          const identity = peerIdentity(call);
          const who = `${printable(sender, 64)} (${identity ? `certificate ${identity.role} ${identity.name}` : `at ${peer}`})`;
          const window = req.window === 0 ? DEFAULT_WINDOW : req.window;
          if (window > MAX_WINDOW) {
            throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${who}: window ${window} is above ${MAX_WINDOW}`);
          }
          credit = window;
          const share: ShareRequest = {
            workerRank: req.workerRank,
            worldSize: req.worldSize,
            batchSize: req.batchSize,
            maxBatches: Number(req.maxBatches),
            split: req.split === Split.EVAL ? "eval" : "train",
            onDemand: req.onDemand,
          };
          checkShareRequest(share, who);
          // The rank's place first: a stream it closes gives its place among all streams back at once.
          const leaveRank = this.trainers.admit(req.tokenRank, req.workerToken, who, fail);
          try {
            const leaveBudget = this.budget.open(who);
            leave = () => {
              leaveBudget();
              leaveRank();
            };
          } catch (err) {
            leaveRank();
            throw err;
          }
          unwatch = this.budget.watch(signal);
          this.produce(call, share, sender, flow)
            .then(() => {
              produced = true;
              settleAll();
              leaveIfDone();
              // The stream ends only once the client has acknowledged what it got (or stopped acknowledging).
              if (!flow.isClosed()) call.end();
            })
            .catch(fail);
        } else {
          const { payload: ack, sender } = decodeMessage(bytes, MessageType.BATCH_ACK, `batch ack from ${peer}`);
          if (ack.consumed > inflight.length) {
            throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch ack from ${sender}: consumed ${ack.consumed}, but ${inflight.length} batches are unacknowledged`);
          }
          credit += ack.consumed;
          for (let i = 0; i < ack.consumed; i++) {
            const done = inflight.shift()!;
            done.b?.ack();
            settle(done);
          }
          const want = ack.want;
          if (want.length > 4096 || wanted.length + want.length > 4096) {
            throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch ack from ${sender}: more than 4096 batches wanted at once`);
          }
          for (let i = 0; i < want.length; i++) wanted.push(Number(want.get(i)));
          signal();
        }
      } catch (err) {
        fail(err);
      }
    });
    call.on("end", () => {
      // The client sends nothing more: what it did not acknowledge goes back to the source.
      halfClosed = true;
      settleAll();
      signal();
    });
    call.on("cancelled", stop);
    call.on("error", stop);
  }

  private async produce(call: BatchCall, share: ShareRequest, sender: string, flow: Flow): Promise<void> {
    if (share.onDemand) return this.produceWanted(call, share, sender, flow);
    if ("streaming" in this.source) return this.produceStream(this.source, call, share, sender, flow);
    const source = this.source;
    const info = source.info;
    const splitRecords = share.split === "train" ? info.trainRecords : info.evalRecords;
    this.log.info({ peer: sender, ...share }, "batch stream opened");
    const block = new RecordBlock(share.batchSize, info.numDense, info.slotIds.length, taskCountOf(info));
    let count = 0;
    for (const slice of shareBatches(share, splitRecords)) {
      if (!(await flow.waitForCredit())) break;
      source.read(share.split, slice.start, slice.count, block);
      const bytes = encodeBatch(this.sender, block, info.slotIds, share.split, slice.batchIndex, slice.epoch, this.seal(share, slice.batchIndex, block));
      flow.send(null, bytes);
      this.batchesServed++;
      this.recordsServed += slice.count;
      count++;
    }
    await flow.waitForAcks();
    this.log.info({ peer: sender, batches: count, cancelled: call.cancelled }, "batch stream closed");
  }

  /**
   * On demand: the client names global batch indices (the orchestrator's
   * plan) and gets exactly those, so who trains a batch can change while the
   * data stays the same. A stream source has no indices: each name gets its
   * next batch, and an unacknowledged one goes back to the stream.
   */
  private async produceWanted(call: BatchCall, share: ShareRequest, sender: string, flow: Flow): Promise<void> {
    this.log.info({ peer: sender, batchSize: share.batchSize, split: share.split }, "on-demand batch stream opened");
    let count = 0;
    const stream = "streaming" in this.source ? this.source : null;
    const indexed = "streaming" in this.source ? null : this.source;
    const block = indexed ? new RecordBlock(share.batchSize, indexed.info.numDense, indexed.info.slotIds.length, taskCountOf(indexed.info)) : null;
    const splitRecords = indexed ? (share.split === "train" ? indexed.info.trainRecords : indexed.info.evalRecords) : 0;
    for (;;) {
      // Credit first: a client may name many batches at once, but gets only `window` ahead of its acknowledgements.
      if (!(await flow.waitForCredit())) break;
      const k = await flow.nextWanted();
      if (k === null || flow.isClosed()) break;
      if (stream) {
        if (share.split === "eval") throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${sender}: a stream source has no held-out split`);
        const b = await stream.nextBatch(share.batchSize, flow.isClosed);
        if (!b) break;
        if (flow.isClosed()) {
          b.release();
          break;
        }
        const bytes = encodeBatch(this.sender, b.block, stream.info.slotIds, share.split, k, 0, this.seal(share, k, b.block));
        flow.send(b, bytes);
        this.recordsServed += b.block.count;
      } else {
        const slice = batchSlice(k, share.batchSize, splitRecords, share.split, sender);
        indexed!.read(share.split, slice.start, slice.count, block!);
        const bytes = encodeBatch(this.sender, block!, indexed!.info.slotIds, share.split, k, slice.epoch, this.seal(share, k, block!));
        flow.send(null, bytes);
        this.recordsServed += slice.count;
      }
      this.batchesServed++;
      count++;
    }
    await flow.waitForAcks();
    this.log.info({ peer: sender, batches: count, cancelled: call.cancelled }, "on-demand batch stream closed");
  }

  /** A train batch's seal on its count of ids (held-out batches are only read, never pulled for training). */
  private seal(share: ShareRequest, batchIndex: number, block: RecordBlock): string {
    return share.split === "train" ? this.trainers.sealIds(batchIndex, share.batchSize, block.nnz) : "";
  }

  /** A stream source's batches go to whichever trainer asks next, so the shares stay disjoint. */
  private async produceStream(source: KafkaSource, call: BatchCall, share: ShareRequest, sender: string, flow: Flow): Promise<void> {
    this.log.info({ peer: sender, ...share }, "batch stream opened");
    let count = 0;
    // A stream has no held-out split: evaluation requests get no batches.
    const limit = share.split === "eval" ? 0 : share.maxBatches === 0 ? Number.POSITIVE_INFINITY : share.maxBatches;
    while (count < limit) {
      if (!(await flow.waitForCredit())) break;
      const b = await source.nextBatch(share.batchSize, flow.isClosed);
      if (!b) break;
      if (flow.isClosed()) {
        b.release();
        break;
      }
      const bytes = encodeBatch(this.sender, b.block, source.info.slotIds, share.split, count, 0, this.seal(share, count, b.block));
      flow.send(b, bytes);
      count++;
      this.batchesServed++;
      this.recordsServed += b.block.count;
    }
    await flow.waitForAcks();
    this.log.info({ peer: sender, batches: count, ...source.stats() }, "batch stream closed");
  }
}
