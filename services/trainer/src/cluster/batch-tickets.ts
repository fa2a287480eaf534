/**
 * The tickets of the batches this trainer was given (Work.batch_tickets),
 * by global batch index: each push carries its batch's, and a
 * parameter-server shard other than 0 takes a batch only with it. A push
 * that went through no longer needs its ticket; should pushes fail for good,
 * the oldest are forgotten past a bound (the trainer registers again and is
 * given its batches anew, with new tickets).
 */
export class BatchTickets {
  private readonly byBatch = new Map<number, string>();

  constructor(private readonly bound = 4096) {}

  /** The tickets given with `batches`, in their order (none from an orchestrator that gives none). */
  note(batches: readonly number[], tickets: readonly string[]): void {
    batches.forEach((j, i) => {
      const ticket = tickets[i];
      if (ticket === undefined) return;
      this.byBatch.delete(j);
      this.byBatch.set(j, ticket);
    });
    for (const j of this.byBatch.keys()) {
      if (this.byBatch.size <= this.bound) break;
      this.byBatch.delete(j);
    }
  }

  /** The ticket of `batch` ("" if none was given). */
  of(batch: number): string {
    return this.byBatch.get(batch) ?? "";
  }

  /** `batch` is pushed: its ticket is not needed again. */
  done(batch: number): void {
    this.byBatch.delete(batch);
  }

  get size(): number {
    return this.byBatch.size;
  }
}
