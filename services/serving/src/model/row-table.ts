/** A table's arrays, shared with the forward threads (see ForwardPool), which read them through RowTable.attach. */
export interface RowTableView {
  dim: number;
  keys: Uint32Array;
  slots: Int32Array;
  rows: Float32Array;
}

/** Typed arrays on shared memory, so forward threads read the same rows without a copy. */
const shared = {
  u32: (n: number) => new Uint32Array(new SharedArrayBuffer(n * 4)),
  i32: (n: number) => new Int32Array(new SharedArrayBuffer(n * 4)),
  f32: (n: number) => new Float32Array(new SharedArrayBuffer(n * 4)),
};

/**
 * Embedding rows of one slot for serving: open addressing over typed arrays
 * (on shared memory), keyed by the id's (lo, hi) words. Read-mostly; rows
 * can be replaced and removed in place by parameter sync while requests are
 * served: the event loop applies an update only while no forward pass runs
 * (MicroBatcher.exclusive), so a reader never sees half a row.
 */
export class RowTable {
  private keys: Uint32Array;
  /** Row index per bucket, -1 empty, -2 removed. */
  private slots: Int32Array;
  rows: Float32Array;
  private count = 0;
  private used = 0;
  private free: number[] = [];

  constructor(readonly dim: number, capacity = 16) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.keys = shared.u32(n * 2);
    this.slots = shared.i32(n).fill(-1);
    this.rows = shared.f32(Math.max(capacity, 1) * dim);
  }

  /** The arrays as they are now (growing replaces them: a reader takes a new view after each update). */
  view(): RowTableView {
    return { dim: this.dim, keys: this.keys, slots: this.slots, rows: this.rows };
  }

  /** A reader over another thread's table: find and rows only (it must not be changed through this object). */
  static attach(v: RowTableView): RowTable {
    const t = new RowTable(v.dim, 1);
    t.keys = v.keys;
    t.slots = v.slots;
    t.rows = v.rows;
    return t;
  }

  get size(): number {
    return this.count;
  }

  private bucketOf(lo: number, hi: number): number {
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    return (h >>> 0) & (this.slots.length - 1);
  }

  /** Row index of an id, or -1. */
  find(lo: number, hi: number): number {
    const mask = this.slots.length - 1;
    for (let b = this.bucketOf(lo, hi); ; b = (b + 1) & mask) {
      const r = this.slots[b]!;
      if (r === -1) return -1;
      if (r >= 0 && this.keys[2 * b] === lo && this.keys[2 * b + 1] === hi) return r;
    }
  }

  /** Sets an id's row (adding it if new). */
  set(lo: number, hi: number, row: Float32Array, at = 0): void {
    const existing = this.find(lo, hi);
    if (existing >= 0) {
      this.rows.set(row.subarray(at, at + this.dim), existing * this.dim);
      return;
    }
    if ((this.used + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    const r = this.free.length ? this.free.pop()! : this.count + this.free.length;
    if ((r + 1) * this.dim > this.rows.length) {
      const grown = shared.f32(Math.max((r + 1) * this.dim, this.rows.length * 2));
      grown.set(this.rows);
      this.rows = grown;
    }
    this.rows.set(row.subarray(at, at + this.dim), r * this.dim);
    const mask = this.slots.length - 1;
    let b = this.bucketOf(lo, hi);
    while (this.slots[b]! >= 0) b = (b + 1) & mask;
    if (this.slots[b] === -1) this.used++;
    this.slots[b] = r;
    this.keys[2 * b] = lo;
    this.keys[2 * b + 1] = hi;
    this.count++;
  }

  /** Removes an id (a tombstone from training: its row was evicted there); true if it was present. */
  remove(lo: number, hi: number): boolean {
    const mask = this.slots.length - 1;
    for (let b = this.bucketOf(lo, hi); ; b = (b + 1) & mask) {
      const r = this.slots[b]!;
      if (r === -1) return false;
      if (r >= 0 && this.keys[2 * b] === lo && this.keys[2 * b + 1] === hi) {
        this.slots[b] = -2;
        this.free.push(r);
        this.count--;
        return true;
      }
    }
  }

  private rehash(n: number): void {
    const oldKeys = this.keys;
    const oldSlots = this.slots;
    this.keys = shared.u32(n * 2);
    this.slots = shared.i32(n).fill(-1);
    this.used = 0;
    const mask = n - 1;
    for (let b = 0; b < oldSlots.length; b++) {
      const r = oldSlots[b]!;
      if (r < 0) continue;
      const lo = oldKeys[2 * b]!;
      const hi = oldKeys[2 * b + 1]!;
      let nb = this.bucketOf(lo, hi);
      while (this.slots[nb] !== -1) nb = (nb + 1) & mask;
      this.slots[nb] = r;
      this.keys[2 * nb] = lo;
      this.keys[2 * nb + 1] = hi;
      this.used++;
    }
  }
}
