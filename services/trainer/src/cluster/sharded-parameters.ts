import type { DenseParam, RowLayout } from "@pangea/model";
import { shardOfId, type Logger } from "@pangea/kit";
import { BatchTickets } from "./batch-tickets.js";
import { ParameterClient, type Ahead, type PullBatch, type PushAck, type Pulled, type TaskFigures } from "./parameters.js";

/**
 * Pull and push against every parameter-server shard in parallel: the ids
 * are split by shard, each shard gets its part, and the rows come back in
 * the caller's order. Shard 0 alone holds the dense parameters. Every shard
 * gets a push at every step (possibly with no ids), so all step together.
 */
export class ShardedParameterClient {
  private readonly shards: ParameterClient[];
  private readonly scratch: { words: Uint32Array; count: number; positions: Int32Array }[];
  /** The tickets of the batches this trainer was given (GetWork's, noted by the training loop): pushes to shards carry them. */
  readonly tickets = new BatchTickets();

  /** `workerToken`: this trainer's registration's, which its pushes carry. */
  constructor(addresses: readonly string[], sender: string, rank: number, params: readonly DenseParam[], private readonly layout: RowLayout, half = false, log: Logger | null = null, workerToken: () => string = () => "") {
    this.shards = addresses.map((a, k) => new ParameterClient(a, sender, rank, params, layout, half, k === 0, log, workerToken, this.tickets));
    this.scratch = addresses.map(() => ({ words: new Uint32Array(0), count: 0, positions: new Int32Array(0) }));
  }

  private split(ids: Uint32Array, count: number): void {
    const n = this.shards.length;
    for (const s of this.scratch) {
      if (s.positions.length < count) {
        s.words = new Uint32Array(count * 2);
        s.positions = new Int32Array(count);
      }
      s.count = 0;
    }
    for (let i = 0; i < count; i++) {
      const lo = ids[2 * i]!;
      const hi = ids[2 * i + 1]!;
      const s = this.scratch[shardOfId(lo, hi, n)]!;
      s.words[2 * s.count] = lo;
      s.words[2 * s.count + 1] = hi;
      s.positions[s.count++] = i;
    }
  }

  /** Where row i of the caller's ids starts, from its offsets (null: i * the uniform width). */
  private at(offsets: Int32Array | null, i: number): number {
    return offsets ? offsets[i]! : i * this.layout.uniform!;
  }

  /** offsets: the ids' RowLayout.offsets (null when every row has the uniform width); batch: the global batch a training pull is for. */
  async pull(step: number, ids: Uint32Array, count: number, includeDense: boolean, readOnly: boolean, offsets: Int32Array | null = this.layout.offsets(ids, count), batch: PullBatch | null = null): Promise<Pulled> {
    if (this.shards.length === 1) return this.shards[0]!.pull(step, ids, count, includeDense, readOnly, offsets, batch);
    this.split(ids, count);
    const parts = await Promise.all(this.shards.map((c, k) => c.pull(step, this.scratch[k]!.words, this.scratch[k]!.count, includeDense && k === 0, readOnly, undefined, batch)));
    const rows = new Float32Array(this.layout.total(ids, count, offsets));
    parts.forEach((p, k) => {
      const s = this.scratch[k]!;
      for (let j = 0, from = 0; j < s.count; j++) {
        const i = s.positions[j]!;
        const width = this.at(offsets, i + 1) - this.at(offsets, i);
        rows.set(p.rows.subarray(from, from + width), this.at(offsets, i));
        from += width;
      }
    });
    return { step: parts[0]!.step, dense: parts[0]!.dense, rows };
  }

  /**
   * A pull sent ahead at `step` (see ParameterClient.pullAhead); null when
   * it was withdrawn, or not sent: with several shards (see pullsAhead).
   */
  pullAhead(step: number, ahead: Ahead, ids: Uint32Array, count: number, offsets: Int32Array | null, batch: PullBatch, cancel?: AbortSignal): Promise<Pulled | null> {
    if (this.shards.length !== 1) return Promise.resolve(null);
    return this.shards[0]!.pullAhead(step, ahead, ids, count, offsets, batch, cancel);
  }

  /**
   * Whether pulls may be sent ahead: with one shard, and until it turns out
   * to predate them. Not with several: shard 0's part held, then the other
   * shards pulled once it is served, measured no faster than pulling them
   * all after GetWork (README, "Where the cluster's communication time goes").
   */
  get pullsAhead(): boolean {
    return this.shards.length === 1 && this.shards[0]!.pullsAhead;
  }

  /**
   * Pushes one batch's gradients. The other shards get theirs first and
   * shard 0 (the orchestrator) last, except in async mode: shard 0 counts a
   * batch done when its part arrives, so by then every shard has its part
   * (a shard that gets a batch twice, after its first trainer died, ignores
   * the repeat). In async mode shard 0 goes first and may drop the gradients
   * as stale, in which case the other shards are not sent theirs.
   */
  async push(step: number, batchIndex: number, batchSize: number, loss: number, denseGrads: Float32Array[], ids: Uint32Array, count: number, rowGrads: Float32Array, async = false, streamingAuc = Number.NaN, offsets: Int32Array | null = this.layout.offsets(ids, count), tasks: TaskFigures | null = null): Promise<PushAck> {
    const ack = await this.pushToShards(step, batchIndex, batchSize, loss, denseGrads, ids, count, rowGrads, async, streamingAuc, offsets, tasks);
    this.tickets.done(batchIndex);
    return ack;
  }

  private async pushToShards(step: number, batchIndex: number, batchSize: number, loss: number, denseGrads: Float32Array[], ids: Uint32Array, count: number, rowGrads: Float32Array, async: boolean, streamingAuc: number, offsets: Int32Array | null, tasks: TaskFigures | null): Promise<PushAck> {
    if (this.shards.length === 1) return this.shards[0]!.push(step, batchIndex, batchSize, loss, denseGrads, ids, count, rowGrads, streamingAuc, tasks);
    this.split(ids, count);
    const send = (k: number) => {
      const s = this.scratch[k]!;
      let n = 0;
      for (let j = 0; j < s.count; j++) n += this.at(offsets, s.positions[j]! + 1) - this.at(offsets, s.positions[j]!);
      const grads = new Float32Array(n);
      for (let j = 0, to = 0; j < s.count; j++) {
        const from = this.at(offsets, s.positions[j]!);
        const width = this.at(offsets, s.positions[j]! + 1) - from;
        grads.set(rowGrads.subarray(from, from + width), to);
        to += width;
      }
      return this.shards[k]!.push(step, batchIndex, batchSize, loss, k === 0 ? denseGrads : [], s.words.slice(0, s.count * 2), s.count, grads, streamingAuc, k === 0 ? tasks : null);
    };
    const others = () => Promise.all(this.shards.slice(1).map((_, i) => send(i + 1)));
    if (async) {
      const first = await send(0);
      if (!first.stale) await others();
      return first;
    }
    await others();
    return send(0);
  }

  close(): void {
    for (const c of this.shards) c.close();
  }
}
