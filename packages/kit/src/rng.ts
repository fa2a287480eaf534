/**
 * Small deterministic generators. Seeds are plain numbers so that any process
 * can regenerate the same stream (data records, initial weights) without
 * coordination.
 */

/** Mixes a 32-bit integer into a well-spread 32-bit hash (murmur3 finaliser). */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of several 32-bit words, for seeding a stream from (seed, index, ...) tuples. */
export function hashWords(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    h = mix32((h ^ (w >>> 0)) + 0x7f4a7c15);
    // fold in the high part of numbers above 2^32 so record indexes stay distinct
    if (w > 0xffffffff) h = mix32(h ^ Math.floor(w / 0x100000000));
  }
  return h;
}

/** mulberry32: fast 32-bit state PRNG, uniform in [0, 1). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal via Box-Muller. */
  normal(): number {
    let u = this.next();
    while (u <= 1e-12) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}
