/**
 * Which Kafka offsets of one partition may be committed: a message counts as
 * done when every record decoded from it has been acknowledged by the
 * trainer that received its batch (an ExampleBatch message holds several
 * records, which may land in different batches; a message that gives no
 * record, skipped as bad or empty, is done at once), and the commit point
 * only moves past a prefix of done messages, so a crash never commits a
 * record that was not trained on.
 */
export class OffsetTracker {
  /** Offsets received, in order; those before `head` are done and committed past. */
  private open: bigint[] = [];
  private head = 0;
  private readonly done = new Set<bigint>();
  /** Records of a message not yet acknowledged. */
  private readonly remaining = new Map<bigint, number>();
  /** The next offset to read once everything before it is done (Kafka's commit convention). */
  commitPoint: bigint | null = null;

  /** A message at `offset` gave `records` records (0: skipped or empty, done now); returns the new commit point when it moved. */
  received(offset: bigint, records = 1): bigint | null {
    this.open.push(offset);
    if (records > 0) {
      this.remaining.set(offset, records);
      return null;
    }
    this.done.add(offset);
    return this.advance();
  }

  /** One record of the message at `offset` is done; returns the new commit point when it moved. */
  complete(offset: bigint): bigint | null {
    const left = (this.remaining.get(offset) ?? 1) - 1;
    if (left > 0) {
      this.remaining.set(offset, left);
      return null;
    }
    this.remaining.delete(offset);
    this.done.add(offset);
    return this.advance();
  }

  private advance(): bigint | null {
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
