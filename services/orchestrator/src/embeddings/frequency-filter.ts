import { mix32 } from "@pangea/kit";

/**
 * Counts how often ids were seen, in bounded memory: a count-min sketch
 * (DEPTH rows of saturating 16-bit counters). Counts can only be
 * overestimated, so an id is never held back longer than its threshold says,
 * and may be admitted a little early when the sketch is crowded.
 */
const DEPTH = 2;

export class FrequencyFilter {
  /** Allocated on first use: a job whose slots have no threshold pays nothing. */
  private counts: Uint16Array | null = null;
  private readonly mask: number;

  constructor(readonly widthLog2 = 20) {
    this.mask = (1 << widthLog2) - 1;
  }

  get counters(): Uint16Array {
    return (this.counts ??= new Uint16Array(DEPTH << this.widthLog2));
  }

  /** The counters as saved: empty when the filter was never used. */
  snapshot(): Uint16Array {
    return this.counts ?? new Uint16Array(0);
  }

  /** Counts one more sighting and returns the (over)estimated total. */
  add(lo: number, hi: number): number {
    const counters = this.counters;
    let min = 0xffff;
    let h = mix32(lo ^ mix32(hi));
    for (let d = 0; d < DEPTH; d++) {
      const i = (d << this.widthLog2) | (h & this.mask);
      const c = counters[i]!;
      if (c < 0xffff) counters[i] = c + 1;
      min = Math.min(min, c + 1);
      h = mix32(h + 0x9e3779b9);
    }
    return min;
  }

  bytes(): number {
    return this.counts?.byteLength ?? 0;
  }
}
