import { Kafka, logLevel, type Consumer, type EachBatchPayload } from "kafkajs";
import type { Logger } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";
import { otherKindOf, type MessageKind } from "./monolith-records.js";
import { OffsetTracker } from "./offset-tracker.js";
import { RecordBlock, listDescription, type SourceDescription } from "./source.js";
import { assertCellSizes, SampleError, sampleLabel } from "./sample-columns.js";
import { slotNamesOf, type FeatureList } from "@pangea/features";
import { decodeRecordOfKind, SampleAssembler, WireError } from "@pangea/monolith";

export interface KafkaSourceOptions {
  brokers: string[];
  topic: string;
  groupId: string;
  message: MessageKind;
  featureList: FeatureList;
  onBadRecord: BadRecordPolicy;
  /** Records decoded ahead of the trainers; consumption pauses beyond this. */
  maxQueued: number;
  /** A batch waiting this long with no new record is sent short, or the stream ends if it is empty. */
  idleTimeoutMs: number;
  log: Logger;
}

/** One decoded record waiting for a batch. */
interface Queued {
  partition: number;
  offset: bigint;
  /** One per task. */
  labels: Float32Array;
  weight: number;
  dense: Float32Array;
  words: Uint32Array;
  columns: Int32Array;
}

/** A batch handed to a trainer: acknowledge it once trained, release it if the trainer went away. */
export interface StreamedBatch {
  block: RecordBlock;
  ack(): void;
  release(): void;
}

/**
 * Monolith records from a Kafka topic, one message value per Instance or
 * Example (or a whole ExampleBatch), read with a kafkajs consumer group.
 * At least once: a partition's offset is committed only past records whose
 * batch the trainer acknowledged; a batch whose trainer disconnects goes back
 * to the front of the queue. Records redelivered that way are counted.
 */
export class KafkaSource {
  readonly info: SourceDescription;
  readonly streaming = true as const;
  private readonly consumer: Consumer;
  private readonly queue: Queued[] = [];
  private readonly trackers = new Map<number, OffsetTracker>();
  private readonly bad: BadRecords;
  private readonly asm: SampleAssembler;
  private readonly slotNames: string[];
  private wakeReader: (() => void) | null = null;
  private wakeConsumer: (() => void) | null = null;
  private failure: Error | null = null;
  /**
   * Messages that failed before any message decoded (at most two), held unfinished so that no commit passes them,
   * until the kind the topic holds is settled (see holdUntilKindSettles).
   */
  private readonly held: { partition: number; offset: bigint; value: Buffer; reason: string; kind: MessageKind }[] = [];
  private kindSettled = false;
  committedRecords = 0;
  private readonly partitionLag = new Map<number, number>();
  redelivered = 0;
  consumed = 0;

  private constructor(private readonly opts: KafkaSourceOptions) {
    this.bad = new BadRecords(opts.onBadRecord);
    this.asm = new SampleAssembler(opts.featureList);
    this.slotNames = slotNamesOf(opts.featureList);
    const kafka = new Kafka({ clientId: "pangea-compute", brokers: opts.brokers, logLevel: logLevel.NOTHING, retry: { retries: 3 } });
    this.consumer = kafka.consumer({ groupId: opts.groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, (e) => {
      const lag = Number(e.payload.offsetLag);
      if (Number.isFinite(lag)) this.partitionLag.set(e.payload.partition, lag);
    });
    this.info = {
      description: `Kafka topic ${opts.topic} at ${opts.brokers.join(",")} (group ${opts.groupId}, ${opts.message} messages)`,
      ...listDescription(opts.featureList),
      trainRecords: 0,
      evalRecords: 0,
    };
  }

  static async open(opts: KafkaSourceOptions): Promise<KafkaSource> {
    const src = new KafkaSource(opts);
    try {
      await src.consumer.connect();
      await src.consumer.subscribe({ topic: opts.topic, fromBeginning: true });
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot consume topic ${opts.topic} from Kafka at ${opts.brokers.join(",")}: ${(err as Error).message}`);
    }
    void src.consumer
      .run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (p) => src.onBatch(p) })
      .catch((err: Error) => src.fail(err));
    src.consumer.on(src.consumer.events.CRASH, (e) => src.fail(e.payload.error));
    return src;
  }

  private fail(err: Error): void {
    this.failure = ComputeErrors.create("COMPUTE_ERR_SOURCE", `Kafka consumer of ${this.opts.topic} failed: ${err.message}`);
    this.wakeReader?.();
  }

  /**
   * Ends the stream with `err` and stops reading: the messages from the one that ended it on are left unresolved and
   * uncommitted, and the topic is paused, or kafkajs would fetch them again at once, again and again.
   */
  private stop(err: Error): void {
    this.failure = err;
    this.consumer.pause([{ topic: this.opts.topic }]);
    this.wakeReader?.();
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const tracker = this.tracker(batch.partition);
    for (const message of batch.messages) {
      // Refused (a topic of another kind): nothing more is read, so nothing more is committed.
      if (this.failure) return;
      while (this.queue.length >= this.opts.maxQueued) {
        await new Promise<void>((r) => {
          this.wakeConsumer = r;
          setTimeout(r, 500);
        });
        await heartbeat();
        if (!isRunning() || isStale()) return;
      }
      const offset = BigInt(message.offset);
      // Fetched again after a rebalance (held messages are not committed): it is held already, received once.
      if (this.held.some((h) => h.partition === batch.partition && h.offset === offset)) {
        resolveOffset(message.offset);
        continue;
      }
      this.consumed++;
      // Decoding is synchronous, so no batch holding these records can be acknowledged before the tracker knows how many there are.
      let records: number;
      try {
        records = this.decode(message.value ?? Buffer.alloc(0), batch.partition, offset);
      } catch (err) {
        // A bad record under --on-bad-record fail ends the stream with its own error, at once: thrown to kafkajs it
        // would be retried, and the stream could go idle and end as if the topic were read.
        if (!ComputeErrors.is(err)) throw err;
        this.stop(err);
        return;
      }
      const point = tracker.received(offset, records);
      if (point !== null) this.commit(new Map([[batch.partition, point]]));
      resolveOffset(message.offset);
    }
    await heartbeat();
  }

  private tracker(partition: number): OffsetTracker {
    let t = this.trackers.get(partition);
    if (!t) this.trackers.set(partition, (t = new OffsetTracker()));
    return t;
  }

  /** Queues the records of one message; returns how many (0 when it is skipped as bad). */
  private decode(value: Buffer, partition: number, offset: bigint): number {
    const asm = this.asm;
    const push = () => {
      const labels = Float32Array.from(this.opts.featureList.labels, (l) => sampleLabel(l, asm.labels));
      if (!Number.isFinite(asm.weight) || asm.weight < 0) throw new SampleError(`instance weight is ${asm.weight}`);
      assertCellSizes(asm, this.slotNames);
      this.queue.push({
        partition,
        offset,
        labels,
        weight: asm.weight,
        dense: asm.dense.slice(),
        words: asm.words.slice(0, asm.count * 2),
        columns: asm.columns.slice(0, asm.count),
      });
    };
    const queued = this.queue.length;
    try {
      decodeRecordOfKind(this.opts.message, value, asm, push);
    } catch (err) {
      if (!(err instanceof WireError || err instanceof SampleError)) throw err;
      // A message is taken whole or not at all: an ExampleBatch's examples queued before its bad one go too (decoding is synchronous, so they are still at the queue's end).
      this.queue.length = queued;
      const reason = `not a valid ${this.opts.message}: ${err.message}`;
      if (!this.kindSettled) return this.holdUntilKindSettles(partition, offset, value, reason);
      // A skipped message is done: its offset may be committed.
      this.skip(partition, offset, reason);
      return 0;
    }
    if (!this.kindSettled) this.settleKind();
    this.wakeReader?.();
    return this.queue.length - queued;
  }

  private skip(partition: number, offset: bigint, reason: string): void {
    this.bad.record(`topic ${this.opts.topic} partition ${partition}`, ` offset ${offset}`, reason);
  }

  /**
   * A message that failed before any decoded: held (it counts as one record not yet done, so no commit passes it) when
   * it trains as another kind, until a second such message says which. Two that fail as --format and train as the same
   * other kind refuse the job, as for files: read with the right --format, the group finds them still unread.
   * Otherwise the held messages are bad records like any other. One that trains as no kind at all (empty, a null
   * value, damaged) says nothing of the topic's kind: a bad record at once, and the kind stays to be settled.
   */
  private holdUntilKindSettles(partition: number, offset: bigint, value: Buffer, reason: string): number {
    const { message: given, featureList } = this.opts;
    const alone = otherKindOf(given, value, null, featureList);
    if (!alone) {
      this.skip(partition, offset, reason);
      return 0;
    }
    this.held.push({ partition, offset, value, reason, kind: alone });
    const [first, second] = this.held;
    if (!second) return 1;
    const kind = otherKindOf(given, first!.value, second.value, featureList);
    if (kind) {
      this.refuseKind(kind);
      return 1;
    }
    // Two other kinds: this one is not yet received by its partition's tracker, so it is a bad record done at once.
    this.held.pop();
    this.settleKind();
    this.skip(partition, offset, reason);
    return 0;
  }

  private refuseKind(kind: MessageKind): void {
    const at = this.held.map((h) => `partition ${h.partition} offset ${h.offset}`).join(" and ");
    const given = this.opts.message;
    const what = this.held.length === 1 ? `its only message (${at}) is not an ${given} record but decodes as a Monolith ${kind} record` : `its first messages (${at}) are not ${given} records but decode as Monolith ${kind} records`;
    this.stop(ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `topic ${this.opts.topic}: ${what}: read the topic with --format ${kind} (no offset was committed past ${this.held.length === 1 ? "it" : "them"})`));
  }

  /** A message decoded, or two that failed train as different kinds: the held messages are bad records, done. */
  private settleKind(): void {
    this.kindSettled = true;
    const points = new Map<number, bigint>();
    for (const h of this.held.splice(0)) {
      this.skip(h.partition, h.offset, h.reason);
      const point = this.tracker(h.partition).complete(h.offset);
      if (point !== null) points.set(h.partition, point);
    }
    this.commit(points);
  }

  /** One commit request for every partition whose commit point moved. */
  private commit(points: Map<number, bigint>): void {
    if (points.size === 0) return;
    const offsets = [...points].map(([partition, point]) => ({ topic: this.opts.topic, partition, offset: point.toString() }));
    this.consumer.commitOffsets(offsets).catch((err: Error) => {
      // After a rebalance the partition may be someone else's: its records will be redelivered there.
      this.opts.log.warn({ offsets, err: err.message }, "offset commit failed");
    });
  }

  /**
   * The next batch of up to batchSize records, waiting for records to arrive.
   * After idleTimeoutMs without a new record the batch goes out short; with
   * no record at all, null (the stream is idle and ends).
   */
  async nextBatch(batchSize: number, isCancelled: () => boolean): Promise<StreamedBatch | null> {
    const taken: Queued[] = [];
    let lastProgress = Date.now();
    while (taken.length < batchSize && !isCancelled()) {
      if (this.failure) throw this.failure;
      if (this.queue.length > 0) {
        taken.push(...this.queue.splice(0, batchSize - taken.length));
        lastProgress = Date.now();
        this.wakeConsumer?.();
        continue;
      }
      if (Date.now() - lastProgress > this.opts.idleTimeoutMs) {
        // The topic's one message trains as another kind (it was held, waiting for a second): refused as two would be.
        if (taken.length === 0 && this.held.length === 1 && !this.kindSettled) {
          this.refuseKind(this.held[0]!.kind);
          throw this.failure!;
        }
        break;
      }
      await new Promise<void>((r) => {
        this.wakeReader = r;
        setTimeout(r, 200);
      });
    }
    if (taken.length === 0 || isCancelled()) {
      this.queue.unshift(...taken);
      return null;
    }
    return {
      block: this.toBlock(taken),
      ack: () => {
        const points = new Map<number, bigint>();
        for (const q of taken) {
          const point = this.tracker(q.partition).complete(q.offset);
          if (point !== null) points.set(q.partition, point);
        }
        this.commit(points);
        this.committedRecords += taken.length;
      },
      release: () => {
        this.redelivered += taken.length;
        this.queue.unshift(...taken);
        this.wakeReader?.();
      },
    };
  }

  private toBlock(records: Queued[]): RecordBlock {
    const list = this.opts.featureList;
    const S = list.slotIds.length;
    const block = new RecordBlock(records.length, list.numDense, S, list.labels.length);
    const nnz = records.reduce((n, r) => n + r.columns.length, 0);
    block.idWords = new Uint32Array(nnz * 2);
    let at = 0;
    records.forEach((r, i) => {
      block.labels.set(r.labels, i * list.labels.length);
      block.weights[i] = r.weight;
      block.dense.set(r.dense, i * list.numDense);
      const counts = new Uint32Array(S + 1);
      for (const c of r.columns) counts[c + 1]!++;
      for (let c = 0; c < S; c++) counts[c + 1]! += counts[c]!;
      for (let c = 0; c < S; c++) block.cellOffsets[i * S + c] = at + counts[c]!;
      const fill = counts.slice(0, S);
      for (let k = 0; k < r.columns.length; k++) {
        const dst = 2 * (at + fill[r.columns[k]!]!++);
        block.idWords[dst] = r.words[2 * k]!;
        block.idWords[dst + 1] = r.words[2 * k + 1]!;
      }
      at += r.columns.length;
    });
    block.cellOffsets[records.length * S] = at;
    block.count = records.length;
    block.nnz = at;
    return block;
  }

  stats() {
    return { consumed: this.consumed, acknowledged: this.committedRecords, redelivered: this.redelivered, skipped: this.bad.skipped, queued: this.queue.length };
  }

  /** Records behind the newest offset of each partition, as of the last fetched batch (kafkajs' offsetLag). */
  lag(): Map<number, number> {
    return this.partitionLag;
  }

  async close(): Promise<void> {
    await this.consumer.disconnect().catch(() => {});
  }
}
