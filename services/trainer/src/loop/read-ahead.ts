import type { DecodedBatch } from "../cluster/batches.js";
import type { BatchFeed } from "../cluster/batch-feed.js";
import type { ShardedParameterClient as ParameterClient } from "../cluster/sharded-parameters.js";
import { PulledAhead } from "../cluster/pulled-ahead.js";

/** A batch read from compute, decoded, its ids deduplicated: all a step needs before pulling. */
export interface Prepared {
  batch: DecodedBatch;
  unique: Uint32Array;
  uniqueCount: number;
  inverse: Int32Array;
  offsets: Int32Array | null;
}

/** Batches asked for ahead of their step, on the stream from one compute address. */
interface Asked {
  step: number;
  indices: number[];
  batches: Promise<Prepared>[];
}

/** The next step's batches, and (sync/hybrid) its first pull sent ahead: what the loop serves the step from. */
export interface Pending {
  address: string;
  step: number;
  indices: readonly number[];
  pulled: PulledAhead | null;
}

const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The batches a trainer reads before their step (sync/hybrid: the plan deals
 * each step's batches round-robin over the same trainers, so the next step's
 * are most likely this step's positions one step on):
 * - the next step's, decoded and deduplicated while this step computes and
 *   waits, with the first one's pull sent ahead (held by the orchestrator
 *   until the step is planned, then served or withdrawn);
 * - the step's after that, asked for a step earlier still: compute makes a
 *   batch when it is asked, on cores the trainers keep busy, and a batch
 *   asked for only one step ahead often came after its trainer had pushed,
 *   too late for its pull to go ahead (measured: the pulls came 4-25 ms
 *   after the step's update).
 * Batches come off the stream in the order asked, so every read waits for
 * the one asked before it.
 */
export class ReadAhead {
  private next: (Asked & { address: string; pulled: PulledAhead | null }) | null = null;
  private later: Asked | null = null;

  constructor(
    private readonly feed: BatchFeed,
    private readonly params: ParameterClient,
    private readonly prepare: (j: number) => Promise<Prepared>,
    private readonly batchesPerStep: number,
    private readonly totalBatches: number,
    private readonly pullAhead: boolean,
  ) {}

  /** The next step as read ahead, if it was. */
  get pending(): Pending | null {
    return this.next;
  }

  /**
   * Reads `indices` one after the other, after `start`; a failure nobody
   * awaits is not unhandled.
   */
  read(indices: readonly number[], start: Promise<unknown> = Promise.resolve()): Promise<Prepared>[] {
    let previous: Promise<unknown> = start;
    return indices.map((j) => {
      const p = previous.then(() => this.prepare(j));
      p.catch(() => {});
      previous = p;
      return p;
    });
  }

  /**
   * This step's batches if they were read ahead (decoded already), else
   * null; either way nothing is pending after. Read ahead for other batches
   * (a trainer joined or left) or from another compute: the stream with
   * everything read ahead is dropped.
   */
  async take(address: string, indices: readonly number[]): Promise<Promise<Prepared>[] | null> {
    const n = this.next;
    this.next = null;
    if (!n) return null;
    if (n.address === address && sameList(n.indices, indices) && this.feed.connectedTo(address)) return n.batches;
    this.feed.reset();
    await Promise.allSettled([...n.batches, ...(this.later?.batches ?? [])]);
    this.later = null;
    return null;
  }

  /**
   * After this step's last batch came from compute: asks for the next two
   * steps' batches and sends the next step's first pull ahead, before this
   * step computes.
   */
  async readOn(step: number, address: string, indices: readonly number[]): Promise<void> {
    const nextStep = step + 1;
    const next = this.stepsOn(indices, 1);
    const asked = this.later;
    this.later = null;
    const askedNext = asked && asked.step === nextStep && sameList(asked.indices, next) ? asked.batches : null;
    if (!this.feed.connectedTo(address)) {
      // Compute went away after this step's batches came: nothing to read ahead from (the next step
      // connects again); the reads asked for are done with before anything reads from a new stream.
      if (asked) await Promise.allSettled(asked.batches);
      return;
    }
    if (asked && !askedNext) {
      // Not the batches the plan comes to next (it cannot be, while the plan deals as predicted). They stay
      // the stream's next ones: the next step, finding its batches are not these, starts the stream again
      // once this step's batch has been acknowledged.
      this.next = { address, ...asked, pulled: null };
      return;
    }
    if (!next.length) return;
    let batches = askedNext;
    if (!batches) {
      this.feed.want(next);
      batches = this.read(next);
    }
    const pulled = this.pullAhead && this.params.pullsAhead ? new PulledAhead(this.params, nextStep, { batches: next, workingOn: [...indices] }, batches[0]!) : null;
    this.next = { address, step: nextStep, indices: next, batches, pulled };
    const after = this.stepsOn(indices, 2);
    if (after.length) {
      this.feed.want(after);
      this.later = { step: nextStep + 1, indices: after, batches: this.read(after, batches.at(-1)) };
    }
    // The pull goes out before this step computes (a call is written once the event loop turns), so the
    // orchestrator holds it when the step's update is made, instead of waiting for it afterwards.
    if (pulled) await new Promise((resolve) => setImmediate(resolve));
  }

  /** Compute was lost, or the trainer leaves: nothing read ahead stands, and a pull still held is dropped. */
  drop(): void {
    this.next?.pulled?.abandon();
    this.next = null;
    this.later = null;
  }

  /** The batches `steps` steps on from `indices` (the plan deals each step's batches round-robin over the same trainers). */
  private stepsOn(indices: readonly number[], steps: number): number[] {
    return indices.map((x) => x + steps * this.batchesPerStep).filter((x) => x < this.totalBatches);
  }
}
