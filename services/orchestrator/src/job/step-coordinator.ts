import type { StepResult, WorkerGradients } from "../aggregation/gradient-aggregator.js";
import type { TrainingProgress } from "../checkpoint/checkpoint.js";
import { OrchestratorErrors } from "../errors.js";
import type { ParameterShard, PushAck } from "../shard/parameter-shard.js";
import { smoothLoss, type JobCounters } from "./job-counters.js";
import type { SavedTaskLosses } from "./task-status.js";
import { WorkPlan, type TrainingMode } from "./work-plan.js";

export type { PushAck } from "../shard/parameter-shard.js";

/**
 * The steps a process trains before its rate is taken again without them
 * (samples_per_second_after_warmup): the first ones also pay for the first
 * batches' reading and parsing, new rows and V8 compiling the services' code
 * as it runs (measured: a 73-step Wide&Deep job's first 7 steps 3x as long
 * as its last 20, steps 8-21 still 1.7x).
 */
export const WARMUP_STEPS = 10;

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
}

/**
 * The training loop on shard 0: which trainer owes which global batch
 * (WorkPlan) and the sync barrier (the next step is planned once the
 * current one's last batch is in). It checks each push against the plan,
 * hands it to shard 0's ParameterShard (which applies it, as every shard
 * does), and keeps the loss and staleness figures in the job's counters.
 */
export class StepCoordinator {
  readonly plan: WorkPlan;
  samples: number;
  /** When this process's WARMUP_STEPS-th step's worth of batches ended (Date.now()), and the samples trained then (null before). */
  warmedUp: { at: number; samples: number } | null = null;
  /** Batches finished before this process (a resumed job's; async ones need not end on a step). */
  private readonly firstFinished: number;

  constructor(
    private readonly s: StepSettings,
    private readonly shard: ParameterShard,
    private readonly counts: JobCounters,
    resumed: TrainingProgress | null,
  ) {
    const r = resumed;
    this.samples = r?.samples ?? 0;
    this.plan = new WorkPlan(s.mode, s.batchesPerStep, s.steps, r ? { step: r.step, finishedBatches: r.finishedBatches, outstanding: r.outstanding } : undefined);
    this.plan.reassigned = counts.reassignedBatches;
    this.firstFinished = this.plan.finishedBatches;
  }

  /** The parameter version pulls see: steps applied (sync/hybrid) or dense updates (async). */
  get version(): number {
    return this.shard.version;
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
        // Its gradients arrived before (from this trainer's earlier life or the one it was given to): never apply a batch
        // twice. A bad push is refused as bad all the same, not counted as a duplicate.
        this.shard.validate(g);
        this.counts.duplicateBatches++;
        return { step: this.version, meanLoss: g.loss, workers: 0, samples: 0, duplicate: true };
      }
      if (!worker.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${worker.workerId} (rank ${g.rank}) was declared dead; its batch ${j} went to another trainer`);
      throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `trainer ${worker.workerId} (rank ${g.rank}) pushed batch ${j}, which ${owner ? `belongs to ${owner}` : "it was not given"}${this.s.mode === "async" ? "" : ` (step ${plan.step})`}`);
    }
    return this.shard.admit(g);
  }

  /** Takes an admitted batch's gradients: async applies them now, sync/hybrid once the step has all its batches. */
  apply(g: WorkerGradients): { ack: PushAck; next: AfterPush } {
    const { ack, result, staleness } = this.shard.take(g);
    const stepOrJobDone = this.plan.finish(g.batchIndex ?? -1);
    if (this.s.mode === "async") {
      if (ack.stale) this.counts.staleGradients++;
      else this.counts.maxStalenessSeen = Math.max(this.counts.maxStalenessSeen, staleness);
      this.recordProgress(result!);
      return { ack, next: stepOrJobDone ? "done" : "continue" };
    }
    if (!result) return { ack, next: "wait" };
    this.recordProgress(result);
    return { ack, next: this.plan.done ? "done" : "step" };
  }

  private recordProgress(r: StepResult): void {
    const c = this.counts;
    this.samples += r.samples;
    if (!this.warmedUp && this.plan.finishedBatches - this.firstFinished >= WARMUP_STEPS * this.s.batchesPerStep) this.warmedUp = { at: Date.now(), samples: this.samples };
    if (Number.isNaN(c.firstLoss)) {
      c.firstLoss = r.meanLoss;
      // The 1-based step of the batch just finished (async: the step its index falls in).
      c.firstLossStep = Math.ceil(this.plan.finishedBatches / this.s.batchesPerStep);
    }
    c.lastLoss = r.meanLoss;
    c.smoothedLoss = smoothLoss(c.smoothedLoss, r.meanLoss);
  }

  /** Samples per second from the end of the warm-up steps to `end` (Date.now() time); 0 before it, or with nothing trained since. */
  rateAfterWarmup(end: number): number {
    const w = this.warmedUp;
    const seconds = w ? (end - w.at) / 1000 : 0;
    return w && seconds > 0 && this.samples > w.samples ? (this.samples - w.samples) / seconds : 0;
  }

  /** Where training stands, for a checkpoint (`denseUpdates`: the dense optimizer's clock). */
  progress(denseUpdates: number, batchSize: number, counters: TrainingProgress["counters"], taskLosses: SavedTaskLosses): TrainingProgress {
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
      ...(taskLosses.last.length ? { taskLosses } : {}),
    };
  }

  /**
   * Global batches applied, and those missing: before the training front,
   * neither applied nor handed out (a correct run ends with none missing).
   */
  batchTally(): { applied: number; missing: number } {
    // Counted, not scanned over every batch of the job: GetJobStatus builds this at every call (a million-step job's scan
    // took 30 ms, and a client calling 140 times a second stalled training).
    const outstanding = new Set(this.plan.outstanding());
    const bound = this.plan.finishedBatches + outstanding.size;
    // Missing: a batch below `end` neither taken nor out with a trainer (sync/hybrid: of a step already applied).
    const end = Math.min(this.plan.totalBatches, this.s.mode === "async" ? bound : Math.min(bound, this.plan.step * this.s.batchesPerStep));
    const applied = this.shard.takenBatches;
    let missing = end - (applied - this.shard.takenFrom(end));
    for (const j of outstanding) if (j < end && !this.shard.wasTaken(j)) missing--;
    return { applied, missing };
  }
}
