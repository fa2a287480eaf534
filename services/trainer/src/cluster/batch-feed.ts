import type * as grpc from "@grpc/grpc-js";
import { batchStreamClient, waitReady, type BatchStreamClient } from "@pangea/rpc";
import { MessageType, Split, encodeMessage } from "@pangea/schema";
import { TrainerErrors } from "../errors.js";
import { batchStreamError } from "./compute-errors.js";
import type { StreamRegistration } from "./batches.js";

/**
 * The batches the orchestrator hands this trainer, fetched from compute by
 * global index over one on-demand BatchStream call. Compute sends batches in
 * the order they are wanted. If compute goes away the feed is reset and the
 * same indices are wanted again from wherever compute is now.
 */
export class BatchFeed {
  private client: BatchStreamClient | null = null;
  private call: grpc.ClientDuplexStream<Buffer, Buffer> | null = null;
  private iterator: AsyncIterator<Buffer> | null = null;
  private address = "";
  private failure: unknown = null;
  /** Indices wanted and not yet received, in order. */
  private pending: number[] = [];
  /**
   * The last stream failed (compute went away) and none has been opened
   * since: compute's address as last known may be a dead one.
   */
  lost = false;

  constructor(
    private readonly sender: string,
    private readonly batchSize: number,
    private readonly timeoutMs: number,
    private readonly registration: StreamRegistration,
  ) {}

  /**
   * Points the feed at compute's (possibly new) address; a change drops the
   * old stream. `timeoutMs` is shorter when retrying, so a trainer asks the
   * orchestrator again soon in case compute came back somewhere else.
   */
  async connect(address: string, timeoutMs = this.timeoutMs): Promise<void> {
    if (address === this.address && this.call) return;
    this.reset();
    this.address = address;
    this.client = batchStreamClient(address);
    try {
      await waitReady(this.client, "compute", address, timeoutMs);
    } catch (err) {
      this.reset();
      throw TrainerErrors.create("TRAINER_ERR_LOST_PEER", `compute at ${address} is unreachable: ${(err as Error).message}`);
    }
    this.call = this.client.streamBatches();
    this.lost = false;
    const call = this.call;
    // Kept for the next read: an error before the iterator's first read reaches it only as the stream's end.
    call.on("error", (err) => {
      if (this.call === call) this.failure ??= err;
    });
    this.call.write(
      encodeMessage(MessageType.BATCH_REQUEST, this.sender, (r) => {
        r.workerRank = 0;
        r.worldSize = 1;
        r.batchSize = this.batchSize;
        r.split = Split.TRAIN;
        r.onDemand = true;
        r.workerToken = this.registration.token;
        r.tokenRank = this.registration.rank;
      }),
    );
    this.iterator = this.call[Symbol.asyncIterator]();
  }

  /** Asks for these batches (sent in this order). */
  want(indices: readonly number[]): void {
    const fresh = indices.filter((j) => !this.pending.includes(j));
    if (!fresh.length) return;
    // Reset since it connected (compute went away): the caller connects again, as after any lost stream.
    if (!this.call) throw TrainerErrors.create("TRAINER_ERR_LOST_PEER", `batches ${fresh.join(", ")} wanted from compute with no stream open (it went away)`);
    this.pending.push(...fresh);
    this.call.write(
      encodeMessage(MessageType.BATCH_ACK, this.sender, (a) => {
        a.consumed = 0;
        const list = a._initWant(fresh.length);
        fresh.forEach((j, i) => list.set(i, BigInt(j)));
      }),
    );
  }

  /** The next wanted batch's bytes; it must be batch `j`. */
  async next(j: number): Promise<Buffer> {
    if (this.pending[0] !== j) throw new Error(`batch feed: expected to read batch ${this.pending[0]}, asked for ${j}`);
    // A read prefetched ahead may still be waiting when the feed is reset and reconnected: its
    // end must not reset the new stream.
    const call = this.call;
    const address = this.address;
    const failed = (err: unknown) => {
      if (this.call === call) {
        this.reset();
        this.lost = true;
      }
      return batchStreamError(err, address);
    };
    let r: IteratorResult<Buffer>;
    try {
      r = await this.iterator!.next();
    } catch (err) {
      throw failed(err);
    }
    if (r.done) {
      const failure = this.call === call ? this.failure : null;
      if (failure) throw failed(failure);
      throw failed(new Error(`ended with batch ${j} outstanding`));
    }
    if (this.call !== call) throw TrainerErrors.create("TRAINER_ERR_LOST_PEER", `batch ${j} arrived on a batch stream that was reset meanwhile`);
    this.pending.shift();
    return r.value as Buffer;
  }

  /** Whether the feed is connected to compute at `address`. */
  connectedTo(address: string): boolean {
    return this.call !== null && this.address === address;
  }

  /** Acknowledges one batch (after its gradients were accepted): a stream source commits it. */
  ack(): void {
    this.call?.write(encodeMessage(MessageType.BATCH_ACK, this.sender, (a) => (a.consumed = 1)));
  }

  /** Ends the stream after the acknowledgements went out, so a stream source can commit them. */
  async finish(timeoutMs = 5_000): Promise<void> {
    this.call?.end();
    const deadline = Date.now() + timeoutMs;
    try {
      while (this.iterator && Date.now() < deadline) {
        const r = await Promise.race([this.iterator.next(), new Promise<null>((res) => setTimeout(() => res(null), 200))]);
        if (r === null || r.done) break;
      }
    } catch {
      // the stream ended with a status; everything acknowledged was already sent
    }
    this.reset();
  }

  reset(): void {
    this.call?.cancel();
    this.client?.close();
    this.call = null;
    this.client = null;
    this.iterator = null;
    this.failure = null;
    this.pending = [];
    this.address = "";
  }
}
