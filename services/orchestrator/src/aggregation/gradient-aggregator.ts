import type { EmbeddingStore, FoundRows } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { OrchestratorErrors } from "../errors.js";
import { nativeBlas } from "@pangea/blas";
import { SparseSums, firstOutside } from "./sparse-sums.js";

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
  /** The step's row gradients, summed per table and row. */
  private readonly sparse: SparseSums;
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
    this.sparse = new SparseSums(store);
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
    this.store.checkSlots(g.sparseIds, ids);
    const values = this.store.widthSum(g.sparseIds, ids);
    if (g.sparseGrads.length !== values) throw bad(`${ids} sparse ids need ${values} gradient values (a row of its slot's width each), got ${g.sparseGrads.length}`);
    // The job's loss and streaming AUC are the trainers' figures: one that no model computes is refused, not averaged in
    // (a push of loss -123 and AUC 5 read as a job at AUC 2.2).
    if (!(Number.isFinite(g.loss) && g.loss >= 0)) throw bad(`loss is ${g.loss}; a loss is finite and not negative`);
    g.taskLosses?.forEach((l, t) => {
      if (!(Number.isFinite(l) && l >= 0)) throw bad(`task_losses[${t}] is ${l}; a loss is finite and not negative`);
    });
    const aucProblem = (auc: number | undefined) => auc !== undefined && !Number.isNaN(auc) && !(auc >= 0 && auc <= 1);
    if (aucProblem(g.streamingAuc)) throw bad(`streaming_auc is ${g.streamingAuc}; an AUC is within 0..1 (NaN before there is one)`);
    g.taskStreamingAuc?.forEach((auc, t) => {
      if (aucProblem(auc)) throw bad(`task_streaming_auc[${t}] is ${auc}; an AUC is within 0..1 (NaN before there is one)`);
    });
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

  /**
   * sync/hybrid: applies the mean of the batches added since the last step,
   * over `of` batches (a step completed without a batch's part divides by the
   * step's batch count, as shard 0 does, not by the parts it got).
   */
  applyStep(of = this.batches): StepResult {
    this.pending.sort((a, b) => (a.batchIndex ?? 0) - (b.batchIndex ?? 0));
    for (const g of this.pending) {
      g.dense.forEach((grad, i) => addInto(this.denseSum[i]!, grad));
      if (!this.sparseOnArrival) this.accumulateSparse(g);
    }
    this.pending = [];
    const n = Math.max(1, of);
    if (this.dense) {
      for (const sum of this.denseSum) divideBy(sum, n);
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
    this.found = this.store.findRows(g.sparseIds, ids, this.found);
    // An id still below its occurrence threshold has no row: its gradient has nowhere to go.
    const refused = this.sparse.add(g.sparseIds, ids, g.sparseGrads, this.found, this.maxAbs);
    for (let i = 0; i < refused; i++) this.store.rejectGradient();
  }

  /** Applies each table's summed rows, their mean over `workers`. */
  private applySparse(workers: number): void {
    this.sparse.drain((n, rows, count, sums) => {
      const table = this.store.tableAt(n);
      table.applyMeans(rows, count, sums, workers, table.clock());
    });
  }
}

const blas = nativeBlas().blas;

/** sum += g (on the addon when built: the same float sums). */
function addInto(sum: Float32Array, g: Float32Array): void {
  if (blas) return blas.addInto(sum, g);
  for (let k = 0; k < sum.length; k++) sum[k]! += g[k]!;
}

/**
 * sum /= n, element by element (on the addon when built: the same bits). A
 * function of its own: as a loop inside applyStep it was compiled on-stack
 * mid-loop, and that code bailed out at the first untried property access
 * after the loop, at every step.
 */
function divideBy(sum: Float32Array, n: number): void {
  if (blas) return blas.divideBy(sum, n);
  for (let k = 0; k < sum.length; k++) sum[k]! /= n;
}
