import type { EmbeddingTable } from "../embeddings/embedding-table.js";
import type { EmbeddingStore, FoundRows } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { OrchestratorErrors } from "../errors.js";
import { nativeBlas } from "@pangea/blas";

/** The largest batch a trainer may report (the orchestrator's --batch-size bound). */
export const MAX_BATCH_ROWS = 65_536;

/** --max-gradient-abs's default. */
export const DEFAULT_MAX_GRADIENT_ABS = 1e6;

/** One worker's gradients for one step, already decoded to typed-array views. */
export interface WorkerGradients {
  rank: number;
  step: number;
  batchSize: number;
  loss: number;
  dense: Float32Array[];
  /** (lo, hi) word pairs of the ids whose rows have gradients. */
  sparseIds: Uint32Array;
  /** [ids, dim] row gradients. */
  sparseGrads: Float32Array;
  /** The global batch the gradients were computed on. */
  batchIndex?: number;
  /** The trainer's streaming AUC as it pushed (NaN = not yet). */
  streamingAuc?: number;
  /** Several tasks: each one's mean loss and streaming AUC on the batch, in task order (empty for one task). */
  taskLosses?: number[];
  taskStreamingAuc?: number[];
}

export interface StepResult {
  /** Parameter version after the update (sync/hybrid: steps applied). */
  step: number;
  meanLoss: number;
  workers: number;
  samples: number;
}

/**
 * Adds up and applies gradients, one global batch at a time.
 *
 * sync: a step's update is the average of its batches' gradients (so N
 * trainers on batch B equal one trainer on a batch of N*B), applied once the
 * step's last batch is in. hybrid: embedding gradients are applied as each
 * batch arrives, dense ones averaged per step. async: every batch's
 * gradients are applied on arrival (`applyNow`).
 */
export class GradientAggregator {
  private readonly denseSum: Float32Array[];
  private lossSum = 0;
  private samples = 0;
  private batches = 0;
  /** sync/hybrid: the step's batches so far, summed in batch order when it ends. */
  private pending: WorkerGradients[] = [];
  /** Each table's step sums, by the table's number (findRows', EmbeddingStore.tableAt). */
  private readonly sparse: (RowAccumulator | undefined)[] = [];
  /** findRows' answer buffers, reused push after push. */
  private found: FoundRows | undefined;
  /** Optimizer updates of the dense parameters so far (the parameter version). */
  version: number;

  constructor(
    /** null on a parameter-server shard other than 0, which takes no dense gradients. */
    private readonly dense: DenseStore | null,
    private readonly store: EmbeddingStore,
    /** hybrid: embedding gradients go in at once instead of at the step's end. */
    private readonly sparseOnArrival = false,
    startVersion = 0,
    /**
     * The largest gradient magnitude taken. A finite 3e38 is as wrong as an
     * infinity (it overflows the optimizer state on the next update), so the
     * one check refuses both: NaN fails the comparison too.
     */
    private readonly maxAbs = DEFAULT_MAX_GRADIENT_ABS,
  ) {
    this.denseSum = dense ? dense.values.map((v) => new Float32Array(v.length)) : [];
    this.version = startVersion;
  }

  /**
   * Throws ORCH_ERR_BAD_GRADIENT unless every dense gradient has the right
   * shape and every value is within ±maxAbs (finite); a refused push counts
   * as a rejected gradient. Row gradients are checked per row when applied.
   */
  validate(g: WorkerGradients): void {
    const bad = (msg: string) => OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `trainer rank ${g.rank}, batch ${g.batchIndex ?? "?"}: ${msg}`);
    // The batch's row count feeds the samples counters and throughput; bounded like --batch-size.
    if (!Number.isInteger(g.batchSize) || g.batchSize < 1 || g.batchSize > MAX_BATCH_ROWS) throw bad(`batch_size ${g.batchSize} is outside 1..${MAX_BATCH_ROWS}`);
    if (g.dense.length !== this.denseSum.length) throw bad(`expected ${this.denseSum.length} dense gradients, got ${g.dense.length}`);
    g.dense.forEach((grad, i) => {
      const name = this.dense!.params[i]!.name;
      if (grad.length !== this.denseSum[i]!.length) throw bad(`gradient of ${name} has ${grad.length} elements, expected ${this.denseSum[i]!.length}`);
      const at = firstOutside(grad, this.maxAbs);
      if (at >= 0) {
        this.store.rejectGradient();
        throw bad(`gradient of ${name} has ${grad[at]} at element ${at}, outside ±${this.maxAbs} (--max-gradient-abs)`);
      }
    });
    const ids = g.sparseIds.length / 2;
    let values = 0;
    for (let i = 0; i < ids; i++) values += this.store.widthOf(g.sparseIds[2 * i + 1]!);
    if (g.sparseGrads.length !== values) throw bad(`${ids} sparse ids need ${values} gradient values (a row of its slot's width each), got ${g.sparseGrads.length}`);
    if (!Number.isFinite(g.loss)) throw bad(`loss is ${g.loss}`);
  }

  /** sync/hybrid: adds one batch's (validated) gradients to the step under way. */
  add(g: WorkerGradients): void {
    // Held until the step ends and summed in batch order there: float addition is not
    // associative, and arrival order depends on which trainer is faster, so summing on
    // arrival would make the step's result depend on timing.
    this.pending.push(g);
    if (this.sparseOnArrival) this.applySparseNow(g);
    this.lossSum += g.loss;
    this.samples += g.batchSize;
    this.batches++;
  }

  /** sync/hybrid: applies the mean of the batches added since the last step. */
  applyStep(): StepResult {
    this.pending.sort((a, b) => (a.batchIndex ?? 0) - (b.batchIndex ?? 0));
    for (const g of this.pending) {
      g.dense.forEach((grad, i) => addInto(this.denseSum[i]!, grad));
      if (!this.sparseOnArrival) this.accumulateSparse(g);
    }
    this.pending = [];
    const n = Math.max(1, this.batches);
    if (this.dense) {
      for (const sum of this.denseSum) for (let k = 0; k < sum.length; k++) sum[k]! /= n;
      this.dense.apply(this.denseSum);
      for (const sum of this.denseSum) sum.fill(0);
    }
    this.applySparse(n);
    this.version++;
    const result: StepResult = { step: this.version, meanLoss: this.lossSum / n, workers: this.batches, samples: this.samples };
    this.lossSum = 0;
    this.samples = 0;
    this.batches = 0;
    return result;
  }

  /** async: applies one batch's (validated) gradients at once. */
  applyNow(g: WorkerGradients): StepResult {
    if (this.dense) this.dense.apply(g.dense);
    this.applySparseNow(g);
    this.version++;
    return { step: this.version, meanLoss: g.loss, workers: 1, samples: g.batchSize };
  }

  private applySparseNow(g: WorkerGradients): void {
    this.accumulateSparse(g);
    this.applySparse(1);
  }

  private accumulateSparse(g: WorkerGradients): void {
    const ids = g.sparseIds.length / 2;
    const { rows, tables } = (this.found = this.store.findRows(g.sparseIds, ids, this.found));
    // Rows side by side, each its slot's width (validate checked the total).
    for (let i = 0, at = 0; i < ids; i++) {
      const n = tables[i]!;
      const width = n >= 0 ? this.store.tableAt(n).dim : this.store.widthOf(g.sparseIds[2 * i + 1]!);
      const from = at;
      at += width;
      // An id still below its occurrence threshold has no row: its gradient has nowhere to go.
      const row = rows[i]!;
      if (row < 0) continue;
      if (firstOutside(g.sparseGrads, this.maxAbs, from, from + width) >= 0) {
        this.store.rejectGradient();
        continue;
      }
      (this.sparse[n] ??= new RowAccumulator(this.store.tableAt(n).dim)).add(row, g.sparseGrads, from);
    }
  }

  /** Applies each table's summed rows, their mean over `workers`. */
  private applySparse(workers: number): void {
    this.sparse.forEach((acc, n) => acc?.applyMean(this.store.tableAt(n), workers));
  }
}

const blas = nativeBlas().blas;

/** sum += g (on the addon when built: the same float sums). */
function addInto(sum: Float32Array, g: Float32Array): void {
  if (blas) return blas.addInto(sum, g);
  for (let k = 0; k < sum.length; k++) sum[k]! += g[k]!;
}

/** Index of the first value of a[from..to) that is NaN or above `max` in magnitude, or -1. */
function firstOutside(a: Float32Array, max: number, from = 0, to = a.length): number {
  for (let i = from; i < to; i++) if (!(Math.abs(a[i]!) <= max)) return i;
  return -1;
}

/**
 * One step's gradients of one table, summed per row: rowSlot[row] indexes
 * `sum`, so a row that appears in several workers' pushes is added up once.
 */
class RowAccumulator {
  private rowSlot = new Int32Array(0);
  /** The rows summed so far, in first-touch order: sum's row i belongs to touched[i]. */
  private touched = new Int32Array(1024);
  private count = 0;
  private sum = new Float32Array(0);

  constructor(private readonly dim: number) {}

  add(row: number, g: Float32Array, at: number): void {
    const dim = this.dim;
    if (row >= this.rowSlot.length) {
      const grown = new Int32Array(Math.max(row + 1, this.rowSlot.length * 2, 1024)).fill(-1);
      grown.set(this.rowSlot);
      this.rowSlot = grown;
    }
    let slot = this.rowSlot[row]!;
    if (slot < 0) {
      slot = this.count++;
      if (slot === this.touched.length) {
        const grown = new Int32Array(this.touched.length * 2);
        grown.set(this.touched);
        this.touched = grown;
      }
      this.touched[slot] = row;
      this.rowSlot[row] = slot;
      if ((slot + 1) * dim > this.sum.length) {
        const grown = new Float32Array(Math.max((slot + 1) * dim, this.sum.length * 2));
        grown.set(this.sum);
        this.sum = grown;
      }
      this.sum.fill(0, slot * dim, (slot + 1) * dim);
    }
    const base = slot * dim;
    for (let k = 0; k < dim; k++) this.sum[base + k]! += g[at + k]!;
  }

  /** Applies each touched row's mean over `workers` and resets for the next step. */
  applyMean(table: EmbeddingTable, workers: number): void {
    table.applyMeans(this.touched, this.count, this.sum, workers, table.clock());
    for (let i = 0; i < this.count; i++) this.rowSlot[this.touched[i]!] = -1;
    this.count = 0;
  }
}
