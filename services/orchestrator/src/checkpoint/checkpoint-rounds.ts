import { OrchestratorErrors } from "../errors.js";

/**
 * Shard 0's side of a checkpoint with several parameter-server shards: it
 * has written its part of step s and asked shards 1..n-1 for theirs; the
 * checkpoint is whole (and may be committed: listed, older ones pruned) once
 * every shard has reported its part written.
 */
export class CheckpointRounds {
  private readonly pending = new Map<number, { waiting: Set<number>; final: boolean }>();

  begin(step: number, final: boolean, shards: readonly number[]): void {
    this.pending.set(step, { waiting: new Set(shards), final });
  }

  /** Steps whose checkpoint waits for some shard. */
  get open(): number {
    return this.pending.size;
  }

  /** Whether the final checkpoint is written by some shards and not yet by all. */
  get finalOpen(): boolean {
    return [...this.pending.values()].some((p) => p.final);
  }

  /** Shard `index` wrote its part of `step`: the checkpoint it completes (final or not), or null while others are missing. */
  written(index: number, step: number): { final: boolean } | null {
    const p = this.pending.get(step);
    if (!p?.waiting.has(index)) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `parameter-server shard ${index} reported a checkpoint of step ${step}, which it was not asked for`);
    }
    p.waiting.delete(index);
    if (p.waiting.size > 0) return null;
    this.pending.delete(step);
    return { final: p.final };
  }
}
