/**
 * How long a trainer waits before registering again after leaving the job:
 * not at all after a membership that lasted, and doubling (100 ms up to
 * 5 s) after memberships that ended at once. A cause that recurs at every
 * registration (a shard refusing every pull of the step it gave) had made a
 * tight loop of thousands of registrations a minute.
 */
export class RejoinBackoff {
  private quickEnds = 0;

  constructor(
    private readonly minMs = 100,
    private readonly maxMs = 5_000,
    /** A membership this long or longer resets the wait. */
    private readonly lastedMs = 10_000,
  ) {}

  /** The membership that began at `startedAt` (ms) ended at `now`: milliseconds to wait before registering again. */
  next(startedAt: number, now = Date.now()): number {
    if (now - startedAt >= this.lastedMs) {
      this.quickEnds = 0;
      return 0;
    }
    const ms = Math.min(this.maxMs, this.minMs * 2 ** this.quickEnds);
    this.quickEnds++;
    return ms;
  }
}
