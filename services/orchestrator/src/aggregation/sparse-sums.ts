import type { EmbeddingStore, FoundRows } from "../embeddings/embedding-store.js";
import { nativeBlas } from "@pangea/blas";
import { slotOfV2 } from "@pangea/features";
import { OrchestratorErrors } from "../errors.js";

const blas = nativeBlas().blas;

/**
 * One step's row gradients of every table, summed per row: a row that
 * appears in several pushes is added up once, in the order the pushes are
 * added. Table n's sums are laid out for the addon's accumulateRows:
 * slots[2n] maps a row to its place among the rows summed so far (-1:
 * none), slots[2n + 1] lists those rows in first-touch order (counts[n] of
 * them), sums[n] their sums, the table's width each. The addon adds a
 * push's rows in one call (the JavaScript loop here was the orchestrator's
 * largest item per step); without it, the loop below does the same sums.
 */
export class SparseSums {
  private readonly slots: Int32Array[] = [];
  private readonly sums: Float32Array[] = [];
  private counts = new Int32Array(0);
  /** accumulateRows' resume point: [id, value, refused, table that needs room]. */
  private readonly progress = new Int32Array(4);

  constructor(
    private readonly store: EmbeddingStore,
    /** The addon (null: the JavaScript loop); tests compare the two. */
    private readonly native = blas,
  ) {}

  /**
   * Adds one push's row gradients (ids as word pairs, `found` their rows);
   * an id without a row is passed over, as is a row with a value NaN or
   * beyond ±maxAbs. Returns how many rows were refused that way.
   */
  add(ids: Uint32Array, count: number, grads: Float32Array, found: FoundRows, maxAbs: number): number {
    this.coverTables();
    const native = this.native;
    if (!native) return this.addInJs(ids, count, grads, found, maxAbs);
    const p = this.progress;
    p.fill(0);
    const widthOfSlot = this.store.widthOfSlot;
    for (let stoppedAt = -1; ; ) {
      native.accumulateRows(this.slots, this.sums, this.counts, widthOfSlot, ids, found.tables, found.rows, count, grads, maxAbs, p);
      const t = p[3]!;
      if (t < 0) return p[2]!;
      const i = p[0]!;
      // Room was made for this id last time: stopping at it again would never end.
      if (i === stoppedAt) throw OrchestratorErrors.create("ORCH_ERR_INTERNAL", `summing row gradients: the addon stopped twice at id ${i} for room in table ${t}`);
      stoppedAt = i;
      this.makeRoom(t, found.rows[i]!, widthOfSlot[slotOfV2(ids[2 * i + 1]!)]!);
    }
  }

  /** Hands each table its summed rows (and their count) and starts the next step's sums. */
  drain(apply: (table: number, rows: Int32Array, count: number, sums: Float32Array) => void): void {
    for (let n = 0; n < this.sums.length; n++) {
      const count = this.counts[n]!;
      if (count === 0) continue;
      const rowSlot = this.slots[2 * n]!;
      const touched = this.slots[2 * n + 1]!;
      apply(n, touched, count, this.sums[n]!);
      for (let i = 0; i < count; i++) rowSlot[touched[i]!] = -1;
      this.counts[n] = 0;
    }
  }

  /** Empty sums for tables made since the last push. */
  private coverTables(): void {
    const tables = this.store.tables.size;
    if (this.sums.length === tables) return;
    const counts = new Int32Array(tables);
    counts.set(this.counts);
    this.counts = counts;
    while (this.sums.length < tables) {
      this.slots.push(new Int32Array(0), new Int32Array(0));
      this.sums.push(new Float32Array(0));
    }
  }

  /** Room in table n's sums for one more row `dim` wide, and in its row map for `row`: doubled, so growing is rare. */
  private makeRoom(n: number, row: number, dim: number): void {
    const rowSlot = this.slots[2 * n]!;
    if (row >= rowSlot.length) {
      const grown = new Int32Array(Math.max(row + 1, rowSlot.length * 2, 1024)).fill(-1);
      grown.set(rowSlot);
      this.slots[2 * n] = grown;
    }
    const count = this.counts[n]!;
    const touched = this.slots[2 * n + 1]!;
    if (count >= touched.length) {
      const grown = new Int32Array(Math.max(1024, touched.length * 2));
      grown.set(touched);
      this.slots[2 * n + 1] = grown;
    }
    const sum = this.sums[n]!;
    if ((count + 1) * dim > sum.length) {
      const grown = new Float32Array(Math.max(1024 * dim, sum.length * 2));
      grown.set(sum);
      this.sums[n] = grown;
    }
  }

  /** accumulateRows in JavaScript, for a machine without the addon: the same sums, bit for bit. */
  private addInJs(ids: Uint32Array, count: number, grads: Float32Array, found: FoundRows, maxAbs: number): number {
    const { rows, tables } = found;
    const widthOfSlot = this.store.widthOfSlot;
    let refused = 0;
    for (let i = 0, at = 0; i < count; i++) {
      const width = widthOfSlot[slotOfV2(ids[2 * i + 1]!)]!;
      const from = at;
      at += width;
      const row = rows[i]!;
      if (row < 0) continue;
      if (firstOutside(grads, maxAbs, from, from + width) >= 0) {
        refused++;
        continue;
      }
      const n = tables[i]!;
      let place = row < this.slots[2 * n]!.length ? this.slots[2 * n]![row]! : -1;
      if (place < 0) {
        this.makeRoom(n, row, width);
        place = this.counts[n]!++;
        this.slots[2 * n + 1]![place] = row;
        this.slots[2 * n]![row] = place;
        this.sums[n]!.fill(0, place * width, (place + 1) * width);
      }
      const sum = this.sums[n]!;
      const base = place * width;
      for (let k = 0; k < width; k++) sum[base + k]! += grads[from + k]!;
    }
    return refused;
  }
}

/** Index of the first value of a[from..to) that is NaN or above `max` in magnitude, or -1 (a whole array on the addon when built). */
export function firstOutside(a: Float32Array, max: number, from = 0, to = a.length): number {
  if (blas && from === 0 && to === a.length) return blas.firstOutside(a, max);
  for (let i = from; i < to; i++) if (!(Math.abs(a[i]!) <= max)) return i;
  return -1;
}
