import { hashWords, mix32 } from "@pangea/kit";
import { nativeBlas } from "@pangea/blas";
import type { SparseOptimizer } from "../optim/sparse-optimizers.js";
import { DEFAULT_INITIALIZER, initialize, type Initializer } from "./initializer.js";
import { OrchestratorErrors } from "../errors.js";

/**
 * A collisionless embedding table: every 64-bit feature id owns its own row.
 * Ids live in an open-addressing index (linear probing over typed arrays,
 * keys as two 32-bit words, so no BigInt or per-entry object); rows, their
 * optimizer state and last-update times live in dense slabs addressed by row
 * number. Rows stay dense under eviction: the last row moves into the hole.
 */
export class EmbeddingTable {
  private capacity: number; // index slots, a power of two
  /**
   * The index, one slot per 3 words: id low word, id high word, row + 1
   * (0 = empty). Interleaved so a probe touches one cache line, not three.
   */
  private slots: Uint32Array;
  private rowCapacity: number;
  /** Row r's weights are weights[r * dim .. (r + 1) * dim). */
  weights: Float32Array;
  /** Optimizer state: row r's is state[r * stateSize .. (r + 1) * stateSize). */
  state: Float32Array;
  readonly stateSize: number;
  /** A new row's optimizer state (init does not depend on the row), for the addon's many-row insert. */
  private readonly statePattern: Float32Array;
  /** Row r's id words, for checkpoints and eviction. */
  rowIds: Uint32Array;
  /** Row r's last update, in whole seconds of the table's clock. */
  lastUpdate: Uint32Array;
  size = 0;

  constructor(
    readonly dim: number,
    private readonly seed: number,
    readonly optimizer: SparseOptimizer,
    readonly initializer: Initializer = DEFAULT_INITIALIZER,
    initialRows = 1024,
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.stateSize = optimizer.stateSize(dim);
    this.statePattern = new Float32Array(this.stateSize);
    optimizer.init(this.statePattern, 0, dim);
    this.rowCapacity = Math.max(1, initialRows);
    this.capacity = nextPow2(this.rowCapacity * 2);
    this.slots = new Uint32Array(this.capacity * 3);
    this.weights = new Float32Array(this.rowCapacity * dim);
    this.state = new Float32Array(this.rowCapacity * this.stateSize);
    this.rowIds = new Uint32Array(this.rowCapacity * 2);
    this.lastUpdate = new Uint32Array(this.rowCapacity);
  }

  private home(lo: number, hi: number): number {
    return mix32(lo ^ mix32(hi ^ 0x27d4eb2d)) & (this.capacity - 1);
  }

  private slotOf(lo: number, hi: number): number {
    const mask = this.capacity - 1;
    const s = this.slots;
    let i = this.home(lo, hi);
    for (;;) {
      const at = 3 * i;
      if (s[at + 2] === 0 || (s[at] === lo && s[at + 1] === hi)) return i;
      i = (i + 1) & mask;
    }
  }

  private rowAt(slot: number): number {
    return this.slots[3 * slot + 2]! - 1;
  }

  private setSlot(slot: number, lo: number, hi: number, row: number): void {
    const at = 3 * slot;
    this.slots[at] = lo;
    this.slots[at + 1] = hi;
    this.slots[at + 2] = row + 1;
  }

  /** The id index itself (3 words a slot: lo, hi, row + 1), for the addon's many-id lookups; replaced when the table rehashes. */
  get index(): Uint32Array {
    return this.slots;
  }

  /** Row of an id, or -1. */
  find(lo: number, hi: number): number {
    return this.rowAt(this.slotOf(lo, hi));
  }

  /** Row of an id, creating and initialising it if absent. */
  findOrInsert(lo: number, hi: number): number {
    let slot = this.slotOf(lo, hi);
    const existing = this.rowAt(slot);
    if (existing >= 0) return existing;
    if ((this.size + 1) * 10 > this.capacity * 7) {
      this.rehash(this.capacity * 2);
      slot = this.slotOf(lo, hi);
    }
    if (this.size === this.rowCapacity) this.growRows(this.rowCapacity * 2);
    const row = this.size++;
    this.setSlot(slot, lo, hi, row);
    this.rowIds[2 * row] = lo;
    this.rowIds[2 * row + 1] = hi;
    initialize(this.initializer, this.weights, row * this.dim, this.dim, this.seed, lo, hi);
    this.optimizer.init(this.state, row * this.stateSize, this.dim);
    this.lastUpdate[row] = this.now();
    if (this.dirty) this.markDirty(row);
    return row;
  }

  /** The bytes `more` new rows add to memoryBytes() (the index and slabs doubled as often as that takes). */
  growthBytesFor(more: number): number {
    const { capacity, rows } = this.roomFor(more);
    return (capacity - this.capacity) * 12 + (rows - this.rowCapacity) * ((this.dim + this.stateSize) * 4 + 12);
  }

  private roomFor(more: number): { capacity: number; rows: number } {
    const size = this.size + more;
    let capacity = this.capacity;
    while (size * 10 > capacity * 7) capacity *= 2;
    let rows = this.rowCapacity;
    while (rows < size) rows *= 2;
    return { capacity, rows };
  }

  /**
   * findOrInsert for many ids at once, on the addon: the ids i (in request
   * order) with tables[i] === table and rows[i] < 0, this table's number
   * among the caller's; rows[i] is set to each one's row, every new row
   * stamped `now`. The index rehashes and the slabs grow when and as
   * findOrInsert would make them (the table ends the same, row for row).
   * Needs the addon (callers without it go one id at a time).
   */
  insertMany(ids: Uint32Array, count: number, tables: Int32Array, table: number, rows: Int32Array, now = this.now()): void {
    if (!blas) throw OrchestratorErrors.create("ORCH_ERR_INTERNAL", "insertMany needs the native addon (packages/blas)");
    const init = this.initializer;
    const [kind, value] = init.kind === "uniform" ? [1, init.range] : [0, init.kind === "zeros" ? 0 : init.kind === "ones" ? 1 : init.value];
    const seedHash = hashWords(this.seed);
    const before = this.size;
    for (;;) {
      // now >>> 0: the stamp a Uint32Array store makes of it (a clock past 2^32 wraps, as findOrInsert's does).
      const r = blas.insertRows(this.slots, this.rowIds, this.weights, this.state, this.lastUpdate, this.size, this.dim, this.statePattern, kind, value, seedHash, now >>> 0, ids, count, tables, table, rows);
      this.size = r < 0 ? -r - 1 : r;
      if (r >= 0) break;
      // Out of room at its next new id: grown here as findOrInsert grows, then on from that id.
      const full = (this.size + 1) * 10 > this.capacity * 7;
      if (full) this.rehash(this.capacity * 2);
      if (this.size === this.rowCapacity) this.growRows(this.rowCapacity * 2);
      else if (!full) throw OrchestratorErrors.create("ORCH_ERR_INTERNAL", `insertRows stopped at row ${this.size} of ${this.rowCapacity} with room in the index (${this.capacity} slots)`);
    }
    if (this.dirty) for (let r = before; r < this.size; r++) this.markDirty(r);
  }

  /** The table's clock (seconds), for callers that stamp many rows at once (applyGradient's `now`). */
  clock(): number {
    return this.now();
  }

  /**
   * Applies one gradient (g[gAt .. gAt + dim)) to a row with the table's
   * optimizer; `now` stamps its last update (a step's rows take one reading
   * of the clock, not one each).
   */
  applyGradient(row: number, g: Float32Array, gAt: number, now = this.now()): void {
    this.optimizer.apply(this.weights, row * this.dim, this.state, row * this.stateSize, g, gAt, this.dim);
    this.lastUpdate[row] = now;
    if (this.dirty) this.markDirty(row);
  }

  /**
   * Applies the mean over `workers` of summed gradients to many rows: row
   * rows[i] takes sums[i * dim ..] / workers (the division rounded to float
   * first, as the sums are stored). Adagrad runs on the addon when it is
   * built (the same bits as the loop here); every row is stamped `now`.
   */
  applyMeans(rows: Int32Array, count: number, sums: Float32Array, workers: number, now = this.now()): void {
    const dim = this.dim;
    const ada = this.optimizer.adagrad;
    if (ada && blas) {
      blas.adagradRows(this.weights, this.state, this.lastUpdate, dim, rows, count, sums, workers, ada.lr, ada.wd, now);
      if (this.dirty) for (let i = 0; i < count; i++) this.markDirty(rows[i]!);
      return;
    }
    for (let k = 0; k < count * dim; k++) sums[k]! /= workers;
    for (let i = 0; i < count; i++) this.applyGradient(rows[i]!, sums, i * dim, now);
  }

  /** Rows changed since the last drain, kept only once tracking is on (parameter sync). */
  private dirty: Uint8Array | null = null;
  private dirtyRows: number[] = [];

  /** Starts remembering which rows change, for parameter sync; every existing row counts as changed. */
  trackChanges(): void {
    if (this.dirty) return;
    this.dirty = new Uint8Array(this.rowCapacity);
    for (let r = 0; r < this.size; r++) this.markDirty(r);
  }

  private markDirty(row: number): void {
    if (this.dirty![row]) return;
    this.dirty![row] = 1;
    this.dirtyRows.push(row);
  }

  /** The ids (word pairs) and weights of the rows changed since the last call. */
  drainChanges(): { ids: Uint32Array; rows: Float32Array } {
    const live = this.dirtyRows.filter((r) => r < this.size && this.dirty![r]);
    const ids = new Uint32Array(live.length * 2);
    const rows = new Float32Array(live.length * this.dim);
    live.forEach((r, i) => {
      ids[2 * i] = this.rowIds[2 * r]!;
      ids[2 * i + 1] = this.rowIds[2 * r + 1]!;
      rows.set(this.weights.subarray(r * this.dim, (r + 1) * this.dim), i * this.dim);
      this.dirty![r] = 0;
    });
    this.dirtyRows = [];
    return { ids, rows };
  }

  /** Inserts or overwrites a row (checkpoint restore, assign). */
  restoreRow(lo: number, hi: number, weights: ArrayLike<number>, state?: ArrayLike<number>, lastUpdate?: number): number {
    const row = this.findOrInsert(lo, hi);
    this.weights.set(weights, row * this.dim);
    if (state) this.state.set(state, row * this.stateSize);
    if (lastUpdate !== undefined) this.lastUpdate[row] = lastUpdate;
    if (this.dirty) this.markDirty(row);
    return row;
  }

  /** Sets an id's row to `values`, creating it if absent; its optimizer state starts afresh. */
  assign(lo: number, hi: number, values: ArrayLike<number>): number {
    const row = this.findOrInsert(lo, hi);
    this.weights.set(values, row * this.dim);
    this.optimizer.init(this.state, row * this.stateSize, this.dim);
    this.lastUpdate[row] = this.now();
    if (this.dirty) this.markDirty(row);
    return row;
  }

  /**
   * Removes an id. Linear probing needs the entries after the hole shifted
   * back (no tombstones, so lookups never slow down); the last row moves into
   * the freed row so the slabs stay dense.
   */
  remove(lo: number, hi: number): boolean {
    const mask = this.capacity - 1;
    const s = this.slots;
    let hole = this.slotOf(lo, hi);
    const row = this.rowAt(hole);
    if (row < 0) return false;
    let i = hole;
    for (;;) {
      i = (i + 1) & mask;
      const r = this.rowAt(i);
      if (r < 0) break;
      const h = this.home(s[3 * i]!, s[3 * i + 1]!);
      // Move entry i back into the hole unless its home lies cyclically in (hole, i].
      const inRange = hole <= i ? h > hole && h <= i : h > hole || h <= i;
      if (!inRange) {
        this.setSlot(hole, s[3 * i]!, s[3 * i + 1]!, r);
        hole = i;
      }
    }
    s[3 * hole + 2] = 0;
    const last = --this.size;
    // The removed row's change no longer matters (a tombstone replaces it); the moved row keeps its own.
    const movedDirty = this.dirty ? this.dirty[last]! : 0;
    if (this.dirty) {
      this.dirty[row] = 0;
      this.dirty[last] = 0;
    }
    if (row !== last) {
      if (movedDirty) this.markDirty(row);
      const lastLo = this.rowIds[2 * last]!;
      const lastHi = this.rowIds[2 * last + 1]!;
      this.weights.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      this.state.copyWithin(row * this.stateSize, last * this.stateSize, (last + 1) * this.stateSize);
      this.rowIds[2 * row] = lastLo;
      this.rowIds[2 * row + 1] = lastHi;
      this.lastUpdate[row] = this.lastUpdate[last]!;
      this.setSlot(this.slotOf(lastLo, lastHi), lastLo, lastHi, row);
    }
    return true;
  }

  /** Evicts every row not updated since `cutoff` (seconds); returns the evicted ids as word pairs. */
  evictOlderThan(cutoff: number): Uint32Array {
    const evicted: number[] = [];
    for (let r = this.size - 1; r >= 0; r--) {
      if (this.lastUpdate[r]! < cutoff) evicted.push(this.rowIds[2 * r]!, this.rowIds[2 * r + 1]!);
    }
    for (let k = 0; k < evicted.length; k += 2) this.remove(evicted[k]!, evicted[k + 1]!);
    return Uint32Array.from(evicted);
  }

  private rehash(capacity: number): void {
    this.capacity = capacity;
    this.slots = new Uint32Array(capacity * 3);
    // On the addon: the same layout, without a JavaScript probe per row (a 10M-row table rehashes a 10M-row index).
    if (blas) return blas.rehashIndex(this.rowIds, this.size, this.slots);
    for (let row = 0; row < this.size; row++) {
      const lo = this.rowIds[2 * row]!;
      const hi = this.rowIds[2 * row + 1]!;
      this.setSlot(this.slotOf(lo, hi), lo, hi, row);
    }
  }

  private growRows(rows: number): void {
    this.rowCapacity = rows;
    this.weights = grow(this.weights, rows * this.dim);
    this.state = grow(this.state, rows * this.stateSize);
    this.rowIds = growU32(this.rowIds, rows * 2);
    this.lastUpdate = growU32(this.lastUpdate, rows);
    if (this.dirty) {
      const d = new Uint8Array(rows);
      d.set(this.dirty);
      this.dirty = d;
    }
  }

  /** Bytes the table holds now (index and slabs at their current capacity). */
  memoryBytes(): number {
    return this.capacity * 12 + this.rowCapacity * ((this.dim + this.stateSize) * 4 + 12);
  }

  /** Bytes one more row may cost, counting the doubling of slabs or index it may trigger. */
  growthBytes(): number {
    let extra = 0;
    if (this.size === this.rowCapacity) extra += this.rowCapacity * ((this.dim + this.stateSize) * 4 + 12);
    if ((this.size + 1) * 10 > this.capacity * 7) extra += this.capacity * 12;
    return extra;
  }
}

const blas = nativeBlas().blas;

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
