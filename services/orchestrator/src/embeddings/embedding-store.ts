import { makeSparseOptimizer, type SparseHyper, type SparseOptimizerName } from "../optim/sparse-optimizers.js";
import { OrchestratorErrors } from "../errors.js";
import { EmbeddingTable } from "./embedding-table.js";
import { FrequencyFilter } from "./frequency-filter.js";
import type { Initializer } from "./initializer.js";
import { isValidV2, slotOfV2, V2_MAX_SLOT } from "@pangea/features";
import type { Pooling } from "@pangea/model";
import { nativeBlas } from "@pangea/blas";

const blas = nativeBlas().blas;

/** Where many ids' rows are: rows[i] in tables[i] (a table number, EmbeddingStore.tableAt), -1 where absent. */
export interface FoundRows {
  rows: Int32Array;
  tables: Int32Array;
}

/** What a slot's table is made of, as Monolith configures each slot. */
export interface SlotConfig {
  /** The table's row width (see model-tables' tablesFor). */
  dim: number;
  /** The embedding dim --slot-config names for this slot itself (not inherited from its default), if any. */
  slotDim?: number;
  /** How a cell's several ids are pooled, where --slot-config names it for this slot (or, on the default, for every slot). */
  pooling?: Pooling;
  initializer: Initializer;
  optimizer: SparseOptimizerName;
  hyper: SparseHyper;
  /** An id gets a row only once seen this many times (0 or 1: at once). */
  occurrenceThreshold: number;
  /** Rows not updated for this long are evicted by the sweep (0: never). */
  expireSeconds: number;
}

export interface StoreStats {
  rows: number;
  bytes: number;
  /** Lookups of ids still below their slot's occurrence threshold. */
  filtered: number;
  /** Ids given a row after passing their threshold. */
  admitted: number;
  evicted: number;
  /** Row gradients refused for a NaN or infinite value. */
  rejectedGradients: number;
  /** Rows refused because the tables were at the memory limit. */
  memoryLimitHits: number;
  perSlot: { slot: number; rows: number; rowWidth: number; bytes: number; evicted: number; admitted: number }[];
}

/**
 * The largest embedding value an assignment may set. Trained CTR embeddings
 * lie within a few units; a row of 1e30 only makes every gradient that
 * touches it overflow, which stalls training (the gradients are refused).
 */
export const MAX_ASSIGNED_ABS = 1e6;

/** The store's running totals: a checkpoint carries them, so a resumed job counts on from them. */
export interface StoreCounters {
  filtered: number;
  admitted: number;
  evicted: number;
  rejectedGradients: number;
  memoryLimitHits: number;
  slots: { slot: number; evicted: number; admitted: number }[];
}

/**
 * The embedding tables of a job, one per slot, keyed by the v2 id's slot
 * bits, each with its slot's dim, initializer, optimizer, occurrence
 * threshold and expiry. Enforces the memory limit and counts what it
 * filters, evicts and refuses.
 */
export class EmbeddingStore {
  private readonly bySlot = new Map<number, EmbeddingTable>();
  /** The tables by slot; made only by table(), which also numbers them for findRows. */
  get tables(): ReadonlyMap<number, EmbeddingTable> {
    return this.bySlot;
  }
  /** The tables by number, in the order they were made (tables are never removed), and each slot's number (-1: none yet). */
  private readonly tableList: EmbeddingTable[] = [];
  private readonly tableOfSlot = new Int32Array(V2_MAX_SLOT + 1).fill(-1);
  readonly filter = new FrequencyFilter();
  private readonly evictedBySlot = new Map<number, number>();
  /** Evicted ids since the store started, as word pairs, for serving to drop. */
  readonly evictionLog: number[] = [];
  /** How much of the eviction log parameter sync has sent on. */
  private tombstonesSent = 0;
  private tracking = false;
  private readonly admittedBySlot = new Map<number, number>();
  private stats0 = { filtered: 0, admitted: 0, evicted: 0, rejectedGradients: 0, memoryLimitHits: 0 };
  /** known[slot] = 1 for the slots the job's data declares; null = any slot. */
  private known: Uint8Array | null = null;
  /**
   * Each slot's row width (its config's dim; a table is made with it), by
   * slot: read per id in every push and pull, where two map lookups an id
   * showed in the orchestrator's profile.
   */
  readonly widthOfSlot = new Int32Array(V2_MAX_SLOT + 1);
  /** 1 for a slot whose new ids get rows on first sight (no occurrence threshold): newRowsPlan has them made many at once. */
  private readonly eager = new Uint8Array(V2_MAX_SLOT + 1);

  constructor(
    private readonly defaults: SlotConfig,
    private readonly perSlot: ReadonlyMap<number, SlotConfig>,
    private readonly seed: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.widthOfSlot.fill(defaults.dim);
    for (const [slot, c] of perSlot) this.widthOfSlot[slot] = c.dim;
    this.eager.fill(defaults.occurrenceThreshold > 1 ? 0 : 1);
    for (const [slot, c] of perSlot) this.eager[slot] = c.occurrenceThreshold > 1 ? 0 : 1;
  }

  /** Restricts the store to the slots the job's feature list declares. */
  declareSlots(slots: readonly number[]): void {
    this.known = new Uint8Array(0x8000);
    for (const s of slots) this.known[s] = 1;
  }

  private checkSlot(slot: number, lo: number, hi: number): void {
    if (this.known && !this.known[slot]) {
      const id = (BigInt(hi) << 32n) | BigInt(lo);
      throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_SLOT", `feature id ${id} has slot ${slot}, which the job's data does not declare`);
    }
    // The slot is read from the 15 bits below it: such an id would be taken as one of that slot's.
    if (!isValidV2(hi)) {
      const id = (BigInt(hi) << 32n) | BigInt(lo);
      throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_SLOT", `feature id ${id} has the reserved top bit set, which no feature id has`);
    }
  }

  /**
   * Throws ORCH_ERR_UNKNOWN_SLOT for the first of count ids no table may hold
   * (an undeclared slot, the reserved top bit): a push's row gradients for
   * such ids were passed over and the push acknowledged.
   */
  checkSlots(ids: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) this.checkSlot(slotOfV2(ids[2 * i + 1]!), ids[2 * i]!, ids[2 * i + 1]!);
  }

  configOf(slot: number): SlotConfig {
    return this.perSlot.get(slot) ?? this.defaults;
  }

  /** The row width of an id's slot (by its high word), whether or not its table exists yet. */
  widthOf(hi: number): number {
    return this.widthOfSlot[slotOfV2(hi)]!;
  }

  /** The values `count` ids' rows take side by side: their slots' widths added up. */
  widthSum(ids: Uint32Array, count: number): number {
    let values = 0;
    for (let i = 0; i < count; i++) values += this.widthOfSlot[slotOfV2(ids[2 * i + 1]!)]!;
    return values;
  }

  /**
   * Where each of count ids' rows starts when sent side by side (rows of
   * different slots may differ in width), the total at [count], and the
   * width they share or null. Throws for an id of a slot the job does not declare.
   */
  rowOffsets(ids: Uint32Array, count: number): { offsets: Int32Array; uniform: number | null } {
    const offsets = new Int32Array(count + 1);
    const uniform = this.fillRowOffsets(ids, count, offsets);
    return { offsets, uniform: uniform < 0 ? null : uniform };
  }

  /**
   * rowOffsets' loop, in a function that ends with it: V8 compiles a long loop
   * on the stack in the first call, before the code after it has run once, and
   * the object rowOffsets returns then deoptimized every later pull (measured:
   * 154 deoptimizations in a 73-step job). Returns the shared width, or -1.
   */
  private fillRowOffsets(ids: Uint32Array, count: number, offsets: Int32Array): number {
    let uniform = count > 0 ? this.widthOf(ids[1]!) : -1;
    for (let i = 0; i < count; i++) {
      const lo = ids[2 * i]!;
      const hi = ids[2 * i + 1]!;
      this.checkSlot(slotOfV2(hi), lo, hi);
      const w = this.widthOf(hi);
      if (w !== uniform) uniform = -1;
      offsets[i + 1] = offsets[i]! + w;
    }
    return uniform;
  }

  table(slot: number): EmbeddingTable {
    let t = this.tables.get(slot);
    if (!t) {
      const c = this.configOf(slot);
      t = new EmbeddingTable(c.dim, this.seed, makeSparseOptimizer(c.optimizer, c.hyper), c.initializer, 1024, this.now);
      // A new table's first rows' worth of memory counts as its growth does: with tables of many slots it is megabytes.
      this.refuseOverLimit(t.memoryBytes(), `slot ${slot}'s new table needs`);
      if (this.tracking) t.trackChanges();
      this.bySlot.set(slot, t);
      this.tableOfSlot[slot] = this.tableList.length;
      this.tableList.push(t);
    }
    return t;
  }

  memoryBytes(): number {
    let b = this.filter.bytes();
    for (const t of this.tables.values()) b += t.memoryBytes();
    return b;
  }

  /**
   * The row of an id for training: counts the sighting, and creates the row
   * once the id passes its slot's threshold. Returns -1 while it is filtered.
   */
  rowForTraining(lo: number, hi: number): { table: EmbeddingTable; row: number } {
    const slot = slotOfV2(hi);
    this.checkSlot(slot, lo, hi);
    const t = this.table(slot);
    return { table: t, row: this.trainingRow(t, slot, lo, hi) };
  }

  /** Throws ORCH_ERR_MEMORY_LIMIT (and counts it) when `bytes` more would pass --max-embedding-bytes; `need` says for what. */
  private refuseOverLimit(bytes: number, need: string, more = ""): void {
    const now = this.memoryBytes();
    if (bytes <= 0 || now + bytes <= this.maxBytes) return;
    this.stats0.memoryLimitHits++;
    throw OrchestratorErrors.create("ORCH_ERR_MEMORY_LIMIT", `embedding tables would exceed the memory limit of ${this.maxBytes} bytes (now ${now}, ${need} ${bytes}${more})`);
  }

  private trainingRow(t: EmbeddingTable, slot: number, lo: number, hi: number): number {
    let row = t.find(lo, hi);
    if (row >= 0) return row;
    const threshold = this.configOf(slot).occurrenceThreshold;
    if (threshold > 1 && this.filter.add(lo, hi) < threshold) {
      this.stats0.filtered++;
      return -1;
    }
    this.refuseOverLimit(t.growthBytes(), `slot ${slot} needs`, " more");
    row = t.findOrInsert(lo, hi);
    if (threshold > 1) {
      this.stats0.admitted++;
      this.admittedBySlot.set(slot, (this.admittedBySlot.get(slot) ?? 0) + 1);
    }
    return row;
  }

  /** Table number n of findRows' answers. */
  tableAt(n: number): EmbeddingTable {
    return this.tableList[n]!;
  }

  /**
   * The rows of many ids as they stand (nothing created, nothing counted):
   * on the addon when built (prefetching some ids ahead: the per-id cost of a
   * large table is its cache misses), else a find each.
   */
  findRows(ids: Uint32Array, count: number, into?: FoundRows): FoundRows {
    const found = into && into.rows.length >= count ? into : { rows: new Int32Array(count), tables: new Int32Array(count) };
    if (blas) {
      blas.findRows(this.tableList.map((t) => t.index), this.tableOfSlot, ids, count, found.rows, found.tables);
      return found;
    }
    for (let i = 0; i < count; i++) {
      const n = this.tableOfSlot[slotOfV2(ids[2 * i + 1]!)]!;
      found.tables[i] = n;
      found.rows[i] = n < 0 ? -1 : this.tableList[n]!.find(ids[2 * i]!, ids[2 * i + 1]!);
    }
    return found;
  }

  /**
   * A pull's rows: id i's row into out[offsets[i]..offsets[i+1]) (offsets
   * from rowOffsets), exactly as read() one id at a time gives them: the same
   * rows made, counted and refused, the same error at the same id. Ids with
   * rows are found and copied at once; a training pull's new ids get their
   * rows a table at a time (see newRowsPlan); the rest (filtered ids, ids a
   * read-only pull does not know) go through read() in request order.
   * `admitNew`, given a training pull's count of ids without a row before
   * anything is made or counted, may refuse the pull by throwing.
   */
  readMany(ids: Uint32Array, count: number, readOnly: boolean, out: Float32Array, offsets: Int32Array, admitNew?: (fresh: number) => void): void {
    const oneByOne = () => {
      for (let i = 0; i < count; i++) this.read(ids[2 * i]!, ids[2 * i + 1]!, readOnly, out, offsets[i]!, offsets[i + 1]! - offsets[i]!);
    };
    const admit = (rows: Int32Array) => {
      let fresh = 0;
      for (let i = 0; i < count; i++) if (rows[i]! < 0) fresh++;
      admitNew!(fresh);
    };
    if (!blas) {
      if (admitNew && !readOnly) admit(this.findRows(ids, count).rows);
      return oneByOne();
    }
    const { rows, tables } = this.findRows(ids, count);
    if (admitNew && !readOnly) admit(rows);
    const plan = readOnly ? null : this.newRowsPlan(ids, count, rows, tables, offsets);
    if (plan === false) return oneByOne();
    if (plan) {
      const now = this.now();
      plan.forEach((_, n) => this.tableList[n]!.insertMany(ids, count, tables, n, rows, now));
    }
    for (let i = 0; i < count; i++) {
      if (rows[i]! >= 0) {
        // A training pull's widths were all checked by newRowsPlan (its new rows' too); a read-only pull's are checked here.
        const t = this.tableList[tables[i]!]!;
        if (readOnly && offsets[i + 1]! - offsets[i]! !== t.dim) {
          throw OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `slot ${slotOfV2(ids[2 * i + 1]!)} has embedding dim ${t.dim}, the request reads ${offsets[i + 1]! - offsets[i]!}`);
        }
        continue;
      }
      const lo = ids[2 * i]!;
      const hi = ids[2 * i + 1]!;
      this.read(lo, hi, readOnly, out, offsets[i]!, offsets[i + 1]! - offsets[i]!);
      // What read() found or made, for the copy below (a filtered or read-only unknown id stays -1: zeros).
      const n = this.tableOfSlot[slotOfV2(hi)]!;
      tables[i] = n;
      rows[i] = n < 0 || readOnly ? -1 : this.tableList[n]!.find(lo, hi);
    }
    this.copyRows(tables, rows, count, offsets, out);
  }

  /**
   * How many of a training pull's new ids (rows[i] < 0 from findRows) each
   * table takes at once, on the addon, before the pull's other ids are read:
   * those of slots with no occurrence threshold, 16k of which took 17-66 ms
   * one at a time in JavaScript. Only where that changes nothing but the
   * speed: null when there is nothing to make; false (every id then goes
   * through read() in order) when the pull could stop partway, at an
   * undeclared slot, a width that is not its slot's, or a memory limit its
   * rows might reach (with a limit, only pulls whose new ids all have eager
   * tables already are made at once). Tables the pull's new ids lack are made
   * first, in the order read() would make them. One reading of the clock
   * stamps all the rows made.
   */
  private newRowsPlan(ids: Uint32Array, count: number, rows: Int32Array, tables: Int32Array, offsets: Int32Array): number[] | null | false {
    const limited = this.maxBytes !== Number.POSITIVE_INFINITY;
    let eager = 0;
    // Checked before anything changes: a pull that would stop partway is left whole to read().
    for (let i = 0; i < count; i++) {
      const width = offsets[i + 1]! - offsets[i]!;
      if (rows[i]! >= 0) {
        if (width !== this.tableList[tables[i]!]!.dim) return false;
        continue;
      }
      const slot = slotOfV2(ids[2 * i + 1]!);
      if ((this.known && !this.known[slot]) || width !== this.widthOfSlot[slot]) return false;
      if (limited && (!this.eager[slot] || this.tableOfSlot[slot]! < 0)) return false;
      if (this.eager[slot]) eager++;
    }
    if (eager === 0) return null;
    const plan: number[] = [];
    for (let i = 0; i < count; i++) {
      if (rows[i]! >= 0) continue;
      const slot = slotOfV2(ids[2 * i + 1]!);
      if (this.tableOfSlot[slot]! < 0) this.table(slot);
      if (!this.eager[slot]) continue;
      const n = this.tableOfSlot[slot]!;
      tables[i] = n;
      plan[n] = (plan[n] ?? 0) + 1;
    }
    if (limited) {
      // At most this much growth (an id repeated in the pull counts twice here): within the limit, no row can reach it.
      let bytes = 0;
      plan.forEach((more, n) => (bytes += this.tableList[n]!.growthBytesFor(more)));
      if (this.memoryBytes() + bytes > this.maxBytes) return false;
    }
    return plan;
  }

  /** Copies an id's row into out[at..at+dim); an id without a row reads as zeros. */
  read(lo: number, hi: number, readOnly: boolean, out: Float32Array, at: number, dim: number): void {
    const slot = slotOfV2(hi);
    this.checkSlot(slot, lo, hi);
    const t = readOnly ? this.tables.get(slot) : this.table(slot);
    if (t && t.dim !== dim) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `slot ${slot} has embedding dim ${t.dim}, the request reads ${dim}`);
    }
    const row = !t ? -1 : readOnly ? t.find(lo, hi) : this.trainingRow(t, slot, lo, hi);
    if (row >= 0) {
      // A loop, not set(subarray(...)): a pull reads tens of thousands of rows, and a view each was garbage.
      const w = t!.weights;
      for (let k = 0, from = row * dim; k < dim; k++) out[at + k] = w[from + k]!;
    } else out.fill(0, at, at + dim);
  }

  /** Sets rows directly (values: [count, dim]); returns how many were set. */
  assign(ids: Uint32Array, count: number, values: Float32Array, dim: number): number {
    // Every row is checked before any is set: a refused assignment changes nothing.
    for (let i = 0; i < count; i++) {
      const lo = ids[2 * i]!;
      const hi = ids[2 * i + 1]!;
      const slot = slotOfV2(hi);
      this.checkSlot(slot, lo, hi);
      const t = this.table(slot);
      if (t.dim !== dim) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `slot ${slot} has embedding dim ${t.dim}, the assignment gives ${dim}`);
      const row = values.subarray(i * dim, (i + 1) * dim);
      if (!row.every((v) => Number.isFinite(v) && Math.abs(v) <= MAX_ASSIGNED_ABS)) {
        throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `the assignment of id ${(BigInt(hi) << 32n) | BigInt(lo)} has a value that is NaN, infinite or above ${MAX_ASSIGNED_ABS} in magnitude`);
      }
    }
    for (let i = 0; i < count; i++) {
      const lo = ids[2 * i]!;
      const hi = ids[2 * i + 1]!;
      const t = this.table(slotOfV2(hi));
      const row = values.subarray(i * dim, (i + 1) * dim);
      this.refuseOverLimit(t.growthBytes(), `slot ${slotOfV2(hi)} needs`, " more");
      t.assign(lo, hi, row);
    }
    return count;
  }

  /** Removes ids' rows, logging them as evicted; returns how many existed. */
  evict(ids: Uint32Array, count: number): number {
    let removed = 0;
    for (let i = 0; i < count; i++) {
      const lo = ids[2 * i]!;
      const hi = ids[2 * i + 1]!;
      const slot = slotOfV2(hi);
      if (this.tables.get(slot)?.remove(lo, hi)) {
        removed++;
        this.evictionLog.push(lo, hi);
        this.evictedBySlot.set(slot, (this.evictedBySlot.get(slot) ?? 0) + 1);
      }
    }
    this.stats0.evicted += removed;
    return removed;
  }

  /** Counts a row gradient refused for a non-finite value. */
  rejectGradient(): void {
    this.stats0.rejectedGradients++;
  }

  /** Evicts, in every slot with an expire time, the rows not updated within it. */
  sweep(): number {
    const now = this.now();
    let evicted = 0;
    for (const [slot, t] of this.tables) {
      const expire = this.configOf(slot).expireSeconds;
      if (expire <= 0) continue;
      const ids = t.evictOlderThan(now - expire);
      for (const w of ids) this.evictionLog.push(w);
      const n = ids.length / 2;
      evicted += n;
      this.evictedBySlot.set(slot, (this.evictedBySlot.get(slot) ?? 0) + n);
    }
    this.stats0.evicted += evicted;
    return evicted;
  }

  /** Starts tracking changed rows for parameter sync (tables created later track from birth). */
  trackChanges(): void {
    this.tracking = true;
    for (const t of this.tables.values()) t.trackChanges();
  }

  /**
   * Rows changed and ids evicted since the last call: what serving needs to
   * catch up. Rows are side by side in id order, each its slot's width;
   * width is the one they share, or null when slots differ.
   */
  drainChanges(): { ids: Uint32Array; rows: Float32Array; width: number | null; tombstones: Uint32Array } {
    const rows = this.rowsOfTables((t) => t.drainChanges());
    const tombstones = Uint32Array.from(this.evictionLog.slice(this.tombstonesSent));
    this.tombstonesSent = this.evictionLog.length;
    return { ...rows, tombstones };
  }

  /** Every id evicted since the store began (word pairs), for a replica that may hold any of them. */
  allEvictions(): Uint32Array {
    return Uint32Array.from(this.evictionLog);
  }

  /**
   * Every id with a row now (word pairs, a table after another), 8 bytes a row: a whole-table send reads the rows a
   * part at a time (rowsOf) instead of copying the table at once.
   */
  allIds(): Uint32Array {
    const tables = [...this.tables.values()];
    const ids = new Uint32Array(2 * tables.reduce((a, t) => a + t.size, 0));
    let at = 0;
    for (const t of tables) {
      ids.set(t.rowIds.subarray(0, 2 * t.size), at);
      at += 2 * t.size;
    }
    return ids;
  }

  /**
   * The rows of those of `ids` (word pairs) that have one now, laid out as drainChanges lays out the changed ones;
   * ids removed since they were listed are left out. Nothing is made or counted.
   */
  rowsOf(ids: Uint32Array): { ids: Uint32Array; rows: Float32Array; width: number | null } {
    const count = ids.length / 2;
    const found = this.findRows(ids, count);
    let n = 0;
    for (let i = 0; i < count; i++) if (found.rows[i]! >= 0) n++;
    const present = new Uint32Array(2 * n);
    const tables = new Int32Array(n);
    const rows = new Int32Array(n);
    const offsets = new Int32Array(n + 1);
    let k = 0;
    for (let i = 0; i < count; i++) {
      if (found.rows[i]! < 0) continue;
      present[2 * k] = ids[2 * i]!;
      present[2 * k + 1] = ids[2 * i + 1]!;
      tables[k] = found.tables[i]!;
      rows[k] = found.rows[i]!;
      offsets[k + 1] = offsets[k]! + this.tableList[tables[k]!]!.dim;
      k++;
    }
    const values = new Float32Array(offsets[n]!);
    this.copyRows(tables, rows, n, offsets, values);
    return { ids: present, rows: values, width: this.uniformWidth() };
  }

  /** out[offsets[i]..offsets[i+1]) = row rows[i] of table tables[i], zeros where either is -1: on the addon where it loaded. */
  private copyRows(tables: Int32Array, rows: Int32Array, count: number, offsets: Int32Array, out: Float32Array): void {
    if (blas) return blas.readRows(this.tableList.map((t) => t.weights), tables, rows, count, offsets, out);
    for (let i = 0; i < count; i++) {
      const t = tables[i]! < 0 || rows[i]! < 0 ? null : this.tableList[tables[i]!]!;
      if (t) out.set(t.weights.subarray(rows[i]! * t.dim, (rows[i]! + 1) * t.dim), offsets[i]!);
      else out.fill(0, offsets[i]!, offsets[i + 1]!);
    }
  }

  /** The row width every table shares (0 with none), or null when they differ. */
  private uniformWidth(): number | null {
    const tables = [...this.tables.values()];
    return tables.every((t) => t.dim === tables[0]!.dim) ? (tables[0]?.dim ?? 0) : null;
  }

  private rowsOfTables(take: (t: EmbeddingTable) => { ids: Uint32Array; rows: Float32Array }): { ids: Uint32Array; rows: Float32Array; width: number | null } {
    const tables = [...this.tables.values()];
    const parts = tables.map(take);
    const n = parts.reduce((a, p) => a + p.ids.length / 2, 0);
    const values = parts.reduce((a, p) => a + p.rows.length, 0);
    const width = this.uniformWidth();
    const ids = new Uint32Array(n * 2);
    const rows = new Float32Array(values);
    let at = 0;
    let rowAt = 0;
    for (const p of parts) {
      ids.set(p.ids, at * 2);
      rows.set(p.rows, rowAt);
      at += p.ids.length / 2;
      rowAt += p.rows.length;
    }
    return { ids, rows, width };
  }

  size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  counters(): StoreCounters {
    const slots = [...new Set([...this.evictedBySlot.keys(), ...this.admittedBySlot.keys()])].sort((a, b) => a - b);
    return { ...this.stats0, slots: slots.map((slot) => ({ slot, evicted: this.evictedBySlot.get(slot) ?? 0, admitted: this.admittedBySlot.get(slot) ?? 0 })) };
  }

  /** Adds saved totals to this store's (adds, so the totals of several shards' checkpoints can go to one store). */
  addCounters(c: StoreCounters): void {
    for (const k of ["filtered", "admitted", "evicted", "rejectedGradients", "memoryLimitHits"] as const) this.stats0[k] += c[k];
    for (const s of c.slots) {
      this.evictedBySlot.set(s.slot, (this.evictedBySlot.get(s.slot) ?? 0) + s.evicted);
      this.admittedBySlot.set(s.slot, (this.admittedBySlot.get(s.slot) ?? 0) + s.admitted);
    }
  }

  stats(): StoreStats {
    return {
      rows: this.size(),
      bytes: this.memoryBytes(),
      ...this.stats0,
      perSlot: [...this.tables].map(([slot, t]) => ({ slot, rows: t.size, rowWidth: t.dim, bytes: t.memoryBytes(), evicted: this.evictedBySlot.get(slot) ?? 0, admitted: this.admittedBySlot.get(slot) ?? 0 })).sort((a, b) => a.slot - b.slot),
    };
  }
}
