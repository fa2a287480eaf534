import type { Ahead, PullBatch, Pulled } from "./parameters.js";
import type { ShardedParameterClient } from "./sharded-parameters.js";

/** What a pull needs of a batch read ahead: its deduplicated ids, and the batch they are of. */
export interface PulledIds {
  batch: PullBatch;
  unique: Uint32Array;
  uniqueCount: number;
  offsets: Int32Array | null;
}

/**
 * The next step's first pull, sent ahead as soon as its batch has been read
 * (ParameterClient.pullAhead): the orchestrator holds it until the step is
 * planned, then serves it or withdraws it.
 */
export class PulledAhead {
  private readonly cancel = new AbortController();
  private sent: PulledIds | null = null;
  private readonly reply: Promise<Pulled | null>;

  constructor(params: ShardedParameterClient, step: number, expected: Ahead, first: Promise<PulledIds>) {
    this.reply = first.then((p) => {
      if (this.cancel.signal.aborted) return null;
      this.sent = p;
      return params.pullAhead(step, expected, p.unique, p.uniqueCount, p.offsets, p.batch, this.cancel.signal);
    });
    // Nobody may be waiting when it fails; a failure reads as "not served".
    this.reply.catch(() => {});
  }

  /**
   * The rows, if the pull was served; null if it was withdrawn or failed (the
   * trainer then asks GetWork, which reports what ended the job if something
   * did), or if its batch has not been read yet: the pull is then never sent,
   * so a trainer whose read-ahead is slow still comes to GetWork.
   */
  answer(): Promise<Pulled | null> {
    if (!this.sent) {
      this.cancel.abort();
      return Promise.resolve(null);
    }
    return this.reply.catch(() => null);
  }

  /** Drops it: a pull not sent yet is never sent, one still held is cancelled (the orchestrator then reads nothing for it). */
  abandon(): void {
    this.cancel.abort();
  }

  /** Whether these are the ids it pulled (a batch read again, after compute came back, has the same ones). */
  pulledFor(unique: Uint32Array, uniqueCount: number): boolean {
    const s = this.sent;
    if (!s || s.uniqueCount !== uniqueCount) return false;
    for (let i = 0; i < 2 * uniqueCount; i++) if (s.unique[i] !== unique[i]) return false;
    return true;
  }
}
