/**
 * Which Kafka offsets of one partition may be committed: a record counts as
 * done when the trainer that received it has acknowledged its batch (or it
 * was skipped as bad), and the commit point only moves past a prefix of done
 * records, so a crash never commits a record that was not trained on.
 */
export class OffsetTracker {
  /** Offsets handed out and not yet done, in the order received. */
  private readonly open: bigint[] = [];
  private readonly done = new Set<bigint>();
  /** The next offset to read once everything before it is done (Kafka's commit convention). */
  commitPoint: bigint | null = null;

  received(offset: bigint): void {
    this.open.push(offset);
  }

  /** Marks an offset done; returns the new commit point when it moved. */
  complete(offset: bigint): bigint | null {
    this.done.add(offset);
    let moved = false;
    while (this.open.length > 0 && this.done.has(this.open[0]!)) {
      const o = this.open.shift()!;
      this.done.delete(o);
      this.commitPoint = o + 1n;
      moved = true;
    }
    return moved ? this.commitPoint : null;
  }

  get pending(): number {
    return this.open.length;
  }
}
