/**
 * Which Kafka offsets of one partition may be committed: a record counts as
 * done when the trainer that received it has acknowledged its batch (or it
 * was skipped as bad), and the commit point only moves past a prefix of done
 * records, so a crash never commits a record that was not trained on.
 */
export class OffsetTracker {
  /** Offsets received, in order; those before `head` are done and committed past. */
  private open: bigint[] = [];
  private head = 0;
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
    while (this.head < this.open.length && this.done.has(this.open[this.head]!)) {
      const o = this.open[this.head++]!;
      this.done.delete(o);
      this.commitPoint = o + 1n;
      moved = true;
    }
    // Drop the done prefix now and then, so the array does not grow without bound.
    if (this.head > 4096 && this.head * 2 > this.open.length) {
      this.open = this.open.slice(this.head);
      this.head = 0;
    }
    return moved ? this.commitPoint : null;
  }

  get pending(): number {
    return this.open.length - this.head;
  }
}
