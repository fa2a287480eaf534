import { Rng, hashWords, mix32 } from "@pangea/kit";
import type { SparseOptimizer } from "../optim/sparse-optimizers.js";

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
  /** Optimizer state: row r's is state[r * stateSize .. (r + 1) * stateSize). */
  state: Float32Array;
  readonly stateSize: number;
  /** Row r's id words, for checkpoints. */
  rowIds: Uint32Array;
  size = 0;

  constructor(
    readonly dim: number,
    private readonly seed: number,
    readonly optimizer: SparseOptimizer,
    private readonly initRange = 0.05,
    initialRows = 1024,
  ) {
    this.stateSize = optimizer.stateSize(dim);
    this.rowCapacity = initialRows;
    this.capacity = nextPow2(initialRows * 2);
    this.keysLo = new Uint32Array(this.capacity);
    this.keysHi = new Uint32Array(this.capacity);
    this.slotRow = new Int32Array(this.capacity).fill(-1);
    this.weights = new Float32Array(this.rowCapacity * dim);
    this.state = new Float32Array(this.rowCapacity * this.stateSize);
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
    for (let k = 0; k < this.dim; k++) this.weights[base + k] = rng.uniform(-this.initRange, this.initRange);
    this.optimizer.init(this.state, row * this.stateSize, this.dim);
  }

  /** Applies one gradient (g[gAt .. gAt + dim)) to a row with the table's optimizer. */
  applyGradient(row: number, g: Float32Array, gAt: number): void {
    this.optimizer.apply(this.weights, row * this.dim, this.state, row * this.stateSize, g, gAt, this.dim);
  }

  /** Inserts a row with given values (checkpoint restore). */
  restoreRow(lo: number, hi: number, weights: Float32Array, state: Float32Array): void {
    const row = this.findOrInsert(lo, hi);
    this.weights.set(weights, row * this.dim);
    this.state.set(state, row * this.stateSize);
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
    this.state = grow(this.state, rows * this.stateSize);
    this.rowIds = growU32(this.rowIds, rows * 2);
  }

  memoryBytes(): number {
    return this.capacity * 12 + this.rowCapacity * ((this.dim + this.stateSize) * 4 + 8);
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
