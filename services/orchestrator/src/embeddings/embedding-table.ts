import { Rng, hashWords, mix32 } from "@pangea/kit";

/**
 * A collisionless embedding table: every 64-bit feature id owns its own row.
 * Ids live in an open-addressing index (linear probing over typed arrays,
 * keys as two 32-bit words, so no BigInt or per-entry object); rows and
 * their optimizer state live in dense slabs addressed by row number.
 */
export class EmbeddingTable {
  private capacity: number; // index slots, a power of two
  private keysLo: Uint32Array;
  private keysHi: Uint32Array;
  private slotRow: Int32Array; // -1 = empty
  private rowCapacity: number;
  /** Row r's weights are weights[r * dim .. (r + 1) * dim). */
  weights: Float32Array;
  /** Adagrad accumulators, beside the weights. */
  accum: Float32Array;
  /** Row r's id words, for checkpoints. */
  rowIds: Uint32Array;
  size = 0;

  constructor(
    readonly dim: number,
    private readonly seed: number,
    private readonly initRange = 0.05,
    private readonly initAccum = 0.1,
    initialRows = 1024,
  ) {
    this.rowCapacity = initialRows;
    this.capacity = nextPow2(initialRows * 2);
    this.keysLo = new Uint32Array(this.capacity);
    this.keysHi = new Uint32Array(this.capacity);
    this.slotRow = new Int32Array(this.capacity).fill(-1);
    this.weights = new Float32Array(this.rowCapacity * dim);
    this.accum = new Float32Array(this.rowCapacity * dim);
    this.rowIds = new Uint32Array(this.rowCapacity * 2);
  }

  private slotOf(lo: number, hi: number): number {
    const mask = this.capacity - 1;
    let i = mix32(lo ^ mix32(hi ^ 0x27d4eb2d)) & mask;
    for (;;) {
      const row = this.slotRow[i]!;
      if (row < 0 || (this.keysLo[i] === lo && this.keysHi[i] === hi)) return i;
      i = (i + 1) & mask;
    }
  }

  /** Row of an id, or -1. */
  find(lo: number, hi: number): number {
    return this.slotRow[this.slotOf(lo, hi)]!;
  }

  /** Row of an id, creating and initialising it if absent. */
  findOrInsert(lo: number, hi: number): number {
    let slot = this.slotOf(lo, hi);
    const existing = this.slotRow[slot]!;
    if (existing >= 0) return existing;
    if ((this.size + 1) * 10 > this.capacity * 7) {
      this.rehash(this.capacity * 2);
      slot = this.slotOf(lo, hi);
    }
    if (this.size === this.rowCapacity) this.growRows(this.rowCapacity * 2);
    const row = this.size++;
    this.keysLo[slot] = lo;
    this.keysHi[slot] = hi;
    this.slotRow[slot] = row;
    this.rowIds[2 * row] = lo;
    this.rowIds[2 * row + 1] = hi;
    this.initRow(row, lo, hi);
    return row;
  }

  /** A new row's values depend only on (seed, id), never on arrival order. */
  private initRow(row: number, lo: number, hi: number): void {
    const rng = new Rng(hashWords(this.seed, lo, hi));
    const base = row * this.dim;
    for (let k = 0; k < this.dim; k++) {
      this.weights[base + k] = rng.uniform(-this.initRange, this.initRange);
      this.accum[base + k] = this.initAccum;
    }
  }

  /** Inserts a row with given values (checkpoint restore). */
  restoreRow(lo: number, hi: number, weights: Float32Array, accum: Float32Array): void {
    const row = this.findOrInsert(lo, hi);
    this.weights.set(weights, row * this.dim);
    this.accum.set(accum, row * this.dim);
  }

  private rehash(capacity: number): void {
    this.capacity = capacity;
    this.keysLo = new Uint32Array(capacity);
    this.keysHi = new Uint32Array(capacity);
    this.slotRow = new Int32Array(capacity).fill(-1);
    for (let row = 0; row < this.size; row++) {
      const lo = this.rowIds[2 * row]!;
      const hi = this.rowIds[2 * row + 1]!;
      const slot = this.slotOf(lo, hi);
      this.keysLo[slot] = lo;
      this.keysHi[slot] = hi;
      this.slotRow[slot] = row;
    }
  }

  private growRows(rows: number): void {
    this.rowCapacity = rows;
    this.weights = grow(this.weights, rows * this.dim);
    this.accum = grow(this.accum, rows * this.dim);
    this.rowIds = growU32(this.rowIds, rows * 2);
  }

  memoryBytes(): number {
    return this.capacity * 12 + this.rowCapacity * (this.dim * 8 + 8);
  }
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function grow(a: Float32Array, n: number): Float32Array {
  const b = new Float32Array(n);
  b.set(a);
  return b;
}

function growU32(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}
