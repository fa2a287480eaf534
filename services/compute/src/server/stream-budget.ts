import { ComputeErrors } from "../errors.js";

/**
 * What the batch streams hold together. Each stream's window bounds only
 * that stream, and a client that opens streams and never reads them would
 * otherwise have compute make and buffer a window of batches for each (a
 * trial: 20 unread streams of 65,536-record batches took compute from 167 MB
 * to 1.6 GB and its event loop from the real trainers). So:
 *
 * - a stream may make its next batch only while the bytes sent and not
 *   acknowledged, over all streams, are under `maxBytes`; a stream that is
 *   not read stops being filled, and since the wait comes before a batch is
 *   read or taken from the source, a waiting stream holds no batch another
 *   trainer should have had (a stream source's next batch goes to a stream
 *   that can send it);
 * - a stream holding nothing unacknowledged may always make one batch, so a
 *   trainer that reads is never starved by streams that do not (it gets a
 *   batch at a time while the budget is full);
 * - at most `maxStreams` streams are served at once, which is what bounds
 *   those single batches: at most maxBytes plus one batch per stream.
 */
export class StreamBudget {
  private held = 0;
  private streams = 0;
  /** The waits of streams blocked on the budget, woken when bytes come back. */
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly maxBytes: number,
    readonly maxStreams: number,
  ) {}

  /** Bytes sent and not yet acknowledged, over all streams. */
  get bytesHeld(): number {
    return this.held;
  }

  get openStreams(): number {
    return this.streams;
  }

  /** Admits one more stream, or throws COMPUTE_ERR_STREAM_LIMIT (RESOURCE_EXHAUSTED) naming the limit. */
  open(who: string): () => void {
    if (this.streams >= this.maxStreams) {
      throw ComputeErrors.create("COMPUTE_ERR_STREAM_LIMIT", `batch stream from ${who} refused: compute serves at most ${this.maxStreams} batch streams at once (--max-batch-streams)`);
    }
    this.streams++;
    let open = true;
    return () => {
      if (open) this.streams--;
      open = false;
    };
  }

  /** Whether a stream holding `own` unacknowledged bytes may make another batch. */
  mayProduce(own: number): boolean {
    return own === 0 || this.held < this.maxBytes;
  }

  take(bytes: number): void {
    this.held += bytes;
  }

  give(bytes: number): void {
    if (bytes <= 0) return;
    this.held -= bytes;
    for (const w of [...this.waiters]) w();
  }

  /** Calls `wake` whenever bytes come back, until the returned function is called. */
  watch(wake: () => void): () => void {
    this.waiters.add(wake);
    return () => this.waiters.delete(wake);
  }
}
