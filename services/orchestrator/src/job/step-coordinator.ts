import { DEFAULT_MAX_GRADIENT_ABS, GradientAggregator, type StepResult, type WorkerGradients } from "../aggregation/gradient-aggregator.js";
import type { TrainingProgress } from "../checkpoint/checkpoint.js";
import { OrchestratorErrors } from "../errors.js";
import type { JobCounters } from "./job-counters.js";
import type { JobModel } from "./job-model.js";
import { WorkPlan, type TrainingMode } from "./work-plan.js";

export type PushAck = StepResult & { stale?: boolean; duplicate?: boolean };

/**
 * What the job does after an accepted push: nothing yet (a sync step still
 * misses batches), a checkpoint check (async, after each batch), the next
 * step (sync/hybrid, after the step's last batch), or the end of training.
 */
export type AfterPush = "wait" | "continue" | "step" | "done";

export interface StepSettings {
  mode: TrainingMode;
  batchesPerStep: number;
  steps: number;
  maxStaleness: number;
  maxGradientAbs?: number;
}

/**
 * The training loop on shard 0: which trainer owes which global batch
 * (WorkPlan), the gradients taken for them (GradientAggregator), and the
 * sync barrier (a step is applied when its last batch arrives). It checks
 * each push against the plan, never applies a batch twice, and keeps the
 * loss and staleness figures in the job's counters.
 */
export class StepCoordinator {
  readonly plan: WorkPlan;
  private readonly aggregator: GradientAggregator;
  /** Times each global batch was applied; must end all ones. */
  private readonly applied: Uint8Array;
  samples: number;

  constructor(
    private readonly s: StepSettings,
    model: JobModel,
    private readonly counts: JobCounters,
    resumed: TrainingProgress | null,
  ) {
    const r = resumed;
    this.samples = r?.samples ?? 0;
    this.plan = new WorkPlan(s.mode, s.batchesPerStep, s.steps, r ? { step: r.step, finishedBatches: r.finishedBatches, outstanding: r.outstanding } : undefined);
    this.aggregator = new GradientAggregator(model.dense, model.store, s.mode === "hybrid", r?.denseUpdates ?? 0, s.maxGradientAbs ?? DEFAULT_MAX_GRADIENT_ABS);
    this.plan.reassigned = counts.reassignedBatches;
    this.applied = new Uint8Array(this.plan.totalBatches);
    if (r) {
      // Batches before the checkpoint were applied in the run that wrote it.
      const before = new Set(r.outstanding);
      for (let j = 0; j < r.finishedBatches + r.outstanding.length && j < this.applied.length; j++) if (!before.has(j)) this.applied[j] = 1;
    }
  }

  /** The parameter version pulls see: steps applied (sync/hybrid) or dense updates (async). */
  get version(): number {
    return this.aggregator.version;
  }

  /**
   * Checks a push from `worker` (`alive`: still a member) against the plan.
   * Returns the answer for a batch finished before (it is not applied again),
   * null for one to apply; throws for one that is not the worker's to give.
   */
  admit(g: WorkerGradients, worker: { workerId: string; alive: boolean }): PushAck | null {
    const j = g.batchIndex ?? -1;
    const plan = this.plan;
    const owner = plan.ownerOf(j);
    if (owner !== worker.workerId) {
      if (plan.isFinished(j)) {
        // Its gradients arrived before (from this trainer's earlier life or the one it was given to): never apply a batch twice.
        this.counts.duplicateBatches++;
        return { step: this.version, meanLoss: g.loss, workers: 0, samples: 0, duplicate: true };
      }
      if (!worker.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${worker.workerId} (rank ${g.rank}) was declared dead; its batch ${j} went to another trainer`);
      throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `trainer ${worker.workerId} (rank ${g.rank}) pushed batch ${j}, which ${owner ? `belongs to ${owner}` : "it was not given"}${this.s.mode === "async" ? "" : ` (step ${plan.step})`}`);
    }
    if (this.s.mode !== "async" && g.step !== this.version) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${g.rank} pushed gradients for step ${g.step}, the job is at step ${this.version}`);
    }
    this.aggregator.validate(g);
    return null;
  }

  /** Takes an admitted batch's gradients: async applies them now, sync/hybrid once the step has all its batches. */
  apply(g: WorkerGradients): { ack: PushAck; next: AfterPush } {
    const j = g.batchIndex ?? -1;
    const plan = this.plan;
    if (j >= 0 && j < this.applied.length) this.applied[j]!++;
    if (this.s.mode === "async") {
      const staleness = this.version - g.step;
      let result: StepResult;
      let stale = false;
      if (staleness > this.s.maxStaleness) {
        this.counts.staleGradients++;
        stale = true;
        result = { step: this.version, meanLoss: g.loss, workers: 0, samples: g.batchSize };
      } else {
        this.counts.maxStalenessSeen = Math.max(this.counts.maxStalenessSeen, staleness);
        result = this.aggregator.applyNow(g);
      }
      const finishedAll = plan.finish(j);
      this.recordProgress(result);
      return { ack: { ...result, stale }, next: finishedAll ? "done" : "continue" };
    }
    this.aggregator.add(g);
    if (!plan.finish(j)) return { ack: { step: this.version, meanLoss: g.loss, workers: 0, samples: 0 }, next: "wait" };
    const result = this.aggregator.applyStep();
    this.recordProgress(result);
    return { ack: result, next: plan.done ? "done" : "step" };
  }

  private recordProgress(r: StepResult): void {
    const c = this.counts;
    this.samples += r.samples;
    if (Number.isNaN(c.firstLoss)) {
      c.firstLoss = r.meanLoss;
      // The 1-based step of the batch just finished (async: the step its index falls in).
      c.firstLossStep = Math.ceil(this.plan.finishedBatches / this.s.batchesPerStep);
    }
    c.lastLoss = r.meanLoss;
    c.smoothedLoss = Number.isNaN(c.smoothedLoss) ? r.meanLoss : 0.95 * c.smoothedLoss + 0.05 * r.meanLoss;
  }

  /** Where training stands, for a checkpoint (`denseUpdates`: the dense optimizer's clock). */
  progress(denseUpdates: number, batchSize: number, counters: TrainingProgress["counters"]): TrainingProgress {
    const plan = this.plan;
    return {
      mode: this.s.mode,
      batchesPerStep: this.s.batchesPerStep,
      step: plan.step,
      finishedBatches: plan.finishedBatches,
      outstanding: this.s.mode === "async" ? plan.outstanding() : [],
      denseUpdates,
      batchSize,
      samples: this.samples,
      counters,
    };
  }

  /**
   * Global batches applied, and those missing: before the training front,
   * neither applied nor handed out (a correct run ends with none missing).
   */
  batchTally(): { applied: number; missing: number } {
    const finished = this.plan.finishedBatches;
    const outstanding = new Set(this.plan.outstanding());
    const stepsDone = this.plan.step;
    let applied = 0;
    let missing = 0;
    for (let j = 0; j < this.applied.length; j++) {
      if (this.applied[j]! > 0) applied++;
      else if (j < finished + outstanding.size && !outstanding.has(j) && (this.s.mode === "async" || j < stepsDone * this.s.batchesPerStep)) missing++;
    }
    return { applied, missing };
  }
}
