import type { EmbeddingTable } from "../embeddings/embedding-table.js";
import { slotOfId, type EmbeddingStore } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { OrchestratorErrors } from "../errors.js";

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
}

export interface StepResult {
  step: number;
  meanLoss: number;
  workers: number;
  samples: number;
}

interface Waiter {
  resolve(r: StepResult): void;
  reject(e: unknown): void;
}

/**
 * Synchronous data-parallel aggregation: a step's update is the average of
 * every worker's gradient (so N workers on batch B equal one worker on a
 * batch of N*B), applied once all N have arrived. Each push is answered only
 * after that, which makes the push the step barrier.
 */
export class SyncAggregator {
  private step = 0;
  private readonly waiters = new Map<number, Waiter>();
  private readonly denseSum: Float32Array[];
  private lossSum = 0;
  private samples = 0;
  private readonly sparse = new Map<EmbeddingTable, RowAccumulator>();
  private failed: unknown = null;

  constructor(
    private readonly worldSize: number,
    /** null on a parameter-server shard other than 0, which takes no dense gradients. */
    private readonly dense: DenseStore | null,
    private readonly store: EmbeddingStore,
  ) {
    this.denseSum = dense ? dense.values.map((v) => new Float32Array(v.length)) : [];
  }

  get currentStep(): number {
    return this.step;
  }

  /** Adds a worker's gradients; resolves when the step they belong to has been applied. */
  accept(g: WorkerGradients): Promise<StepResult> {
    if (this.failed) return Promise.reject(this.failed);
    if (g.step !== this.step) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${g.rank} pushed gradients for step ${g.step}, the job is at step ${this.step}`);
    }
    if (this.waiters.has(g.rank)) {
      throw OrchestratorErrors.create("ORCH_ERR_DUPLICATE_PUSH", `trainer rank ${g.rank} already pushed gradients for step ${g.step}`);
    }
    this.validate(g);
    g.dense.forEach((grad, i) => {
      const sum = this.denseSum[i]!;
      for (let k = 0; k < sum.length; k++) sum[k]! += grad[k]!;
    });
    this.accumulateSparse(g);
    this.lossSum += g.loss;
    this.samples += g.batchSize;
    const done = new Promise<StepResult>((resolve, reject) => this.waiters.set(g.rank, { resolve, reject }));
    if (this.waiters.size === this.worldSize) this.applyStep();
    return done;
  }

  private validate(g: WorkerGradients): void {
    const bad = (msg: string) => OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `trainer rank ${g.rank}, step ${g.step}: ${msg}`);
    if (g.dense.length !== this.denseSum.length) throw bad(`expected ${this.denseSum.length} dense gradients, got ${g.dense.length}`);
    g.dense.forEach((grad, i) => {
      const name = this.dense!.params[i]!.name;
      if (grad.length !== this.denseSum[i]!.length) throw bad(`gradient of ${name} has ${grad.length} elements, expected ${this.denseSum[i]!.length}`);
      if (!allFinite(grad)) throw bad(`gradient of ${name} has a NaN or infinite value`);
    });
    const ids = g.sparseIds.length / 2;
    if (ids > 0 && g.sparseGrads.length % ids !== 0) throw bad(`${g.sparseGrads.length} gradient values do not split into rows for ${ids} sparse ids`);
    for (let i = 0; i < ids; i++) {
      const t = this.store.tables.get(slotOfId(g.sparseIds[2 * i + 1]!));
      if (t && g.sparseGrads.length !== ids * t.dim) throw bad(`${ids} sparse ids of dim ${t.dim} need ${ids * t.dim} gradient values, got ${g.sparseGrads.length}`);
    }
    if (!Number.isFinite(g.loss)) throw bad(`loss is ${g.loss}`);
  }

  private accumulateSparse(g: WorkerGradients): void {
    const ids = g.sparseIds.length / 2;
    for (let i = 0; i < ids; i++) {
      const lo = g.sparseIds[2 * i]!;
      const hi = g.sparseIds[2 * i + 1]!;
      const table = this.store.tables.get(slotOfId(hi));
      // An id still below its occurrence threshold has no row: its gradient has nowhere to go.
      const row = table ? table.find(lo, hi) : -1;
      if (row < 0) continue;
      const dim = table!.dim;
      let finite = true;
      for (let k = 0; k < dim; k++) if (!Number.isFinite(g.sparseGrads[i * dim + k]!)) finite = false;
      if (!finite) {
        this.store.rejectGradient();
        continue;
      }
      this.accumulatorOf(table!).add(row, g.sparseGrads, i * dim);
    }
  }

  private accumulatorOf(table: EmbeddingTable): RowAccumulator {
    let a = this.sparse.get(table);
    if (!a) this.sparse.set(table, (a = new RowAccumulator(table.dim)));
    return a;
  }

  private applyStep(): void {
    const n = this.worldSize;
    const avg = this.denseSum.map((sum) => {
      for (let k = 0; k < sum.length; k++) sum[k]! /= n;
      return sum;
    });
    this.dense?.apply(avg);
    for (const sum of this.denseSum) sum.fill(0);
    for (const [table, acc] of this.sparse) acc.applyMean(table, n);
    this.step++;
    const result: StepResult = { step: this.step, meanLoss: this.lossSum / n, workers: n, samples: this.samples };
    this.lossSum = 0;
    this.samples = 0;
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of waiters) w.resolve(result);
  }

  /** Fails every waiting push and all later ones with `err`. */
  abort(err: unknown): void {
    this.failed = err;
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of waiters) w.reject(err);
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

/**
 * One step's gradients of one table, summed per row: rowSlot[row] indexes
 * `sum`, so a row that appears in several workers' pushes is added up once.
 */
class RowAccumulator {
  private rowSlot = new Int32Array(0);
  private touched: number[] = [];
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
      slot = this.touched.length;
      this.touched.push(row);
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
    const dim = this.dim;
    for (let k = 0; k < this.touched.length * dim; k++) this.sum[k]! /= workers;
    this.touched.forEach((row, slot) => {
      table.applyGradient(row, this.sum, slot * dim);
      this.rowSlot[row] = -1;
    });
    this.touched = [];
  }
}
