import { Rng } from "@pangea/kit";

/**
 * The inverted-dropout masks of one training step: for each hidden layer, a
 * [rows, cols] matrix of 1 / (1 - rate) (kept) or 0 (dropped). A layer's
 * mask depends only on the job's seed, the global batch index and the
 * layer's name, not on which trainer runs the batch or in what order the
 * layers ask: a run is reproducible however batches are spread, and a batch
 * index is never trained twice in a job (step s trains its own indexes).
 */
export class DropoutMasks {
  /** Every mask drawn this step, by layer name (what a PyTorch twin is given). */
  readonly drawn = new Map<string, Float32Array>();

  constructor(
    private readonly seed: number,
    private readonly batchIndex: number,
  ) {}

  mask(name: string, rows: number, cols: number, rate: number): Float32Array {
    const rng = new Rng(mix(mix(mix(0x9e3779b9, lowAndHigh(this.seed)), lowAndHigh(this.batchIndex)), nameHash(name)));
    const scale = 1 / (1 - rate);
    const m = new Float32Array(rows * cols);
    for (let i = 0; i < m.length; i++) m[i] = rng.next() < rate ? 0 : scale;
    this.drawn.set(name, m);
    return m;
  }
}

/** A non-negative integer up to 2^53 folded to 32 bits (both halves count). */
function lowAndHigh(n: number): number {
  return (n >>> 0) ^ Math.imul(Math.floor(n / 4294967296) >>> 0, 0x85ebca6b);
}

function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** murmur3's finalizer over h combined with k. */
function mix(h: number, k: number): number {
  let x = (h ^ Math.imul(k >>> 0, 0xcc9e2d51)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
