import type { Logger } from "@pangea/kit";
import { DEFAULT_MAX_GRADIENT_ABS, GradientAggregator, type StepResult, type WorkerGradients } from "../aggregation/gradient-aggregator.js";
import type { TrainingProgress } from "../checkpoint/checkpoint.js";
import { Checkpointer, type CheckpointSettings } from "../checkpoint/checkpointer.js";
import { OrchestratorErrors } from "../errors.js";
import type { TrainingMode } from "../job/work-plan.js";
import type { HostedModel } from "../server/parameter-host.js";
import { ServingSync, type ServingSyncSettings } from "../sync/serving-sync.js";

export type PushAck = StepResult & { stale?: boolean; duplicate?: boolean };

export interface ParameterShardSettings {
  index: number;
  mode: TrainingMode;
  batchesPerStep: number;
  steps: number;
  /**
   * async: gradients computed on parameters more than this many updates old
   * are dropped. Only shard 0 judges (null on the others): trainers push to
   * it first in async mode and send the other shards only what it accepted,
   * because the shards' own update counts differ with arrival order and
   * would drop different batches.
   */
  maxStaleness: number | null;
  maxGradientAbs?: number;
  slotIds: readonly number[];
  checkpoint: CheckpointSettings;
  /** Serving replicas this shard pushes its rows (shard 0: and the dense weights) to; null = no sync. */
  sync: ServingSyncSettings | null;
}

/** Where a resumed job's training stood, from the checkpoint's progress. */
export interface ResumePoint {
  /** Parameter updates so far (the version pulls see). */
  version: number;
  finishedBatches: number;
  /** async: batches handed out but unfinished at the checkpoint (they come again). */
  outstanding: readonly number[];
}

/** What taking one batch's gradients did. */
export interface Taken {
  ack: PushAck;
  /** The update this batch completed (sync/hybrid: the step's last batch; async: every batch, a dropped one with its own loss), else null. */
  result: StepResult | null;
  /** async: how many updates old the gradients were (0 otherwise). */
  staleness: number;
}

/**
 * One parameter-server shard's part of training, the same on shard 0 (the
 * orchestrator, with the dense parameters) and on shards 1..n-1: which global
 * batches it has taken (none twice), applying their gradients (sync/hybrid:
 * at the step's last batch; async: on arrival, shard 0 dropping stale ones),
 * the step it is at, its part of each checkpoint, and the serving sync from
 * the start of training to one final push at its end. What surrounds it
 * differs: shard 0 adds the work plan, membership and the decision when to
 * checkpoint (ShardCheckpoints); the other shards follow the orchestrator's
 * session (ShardHost).
 */
export class ParameterShard {
  readonly checkpointer: Checkpointer;
  private readonly aggregator: GradientAggregator;
  private readonly sync: ServingSync;
  /** 1 for each global batch taken (applied, or dropped as stale). */
  private readonly taken: Uint8Array;
  private takenCount = 0;
  /** One past the highest batch index taken: what lies above it is known untaken without a scan. */
  private takenEnd = 0;
  /** Batches whose gradients went into the parameters (taken and not dropped), counted from the job's start. */
  private applied = 0;
  /** sync/hybrid: batches of the step under way taken so far. */
  private stepTaken = 0;
  /** sync/hybrid, shards other than 0: batches of steps applied without their part here (completeStep). */
  private skipped = 0;
  private ended = false;

  constructor(
    private readonly s: ParameterShardSettings,
    readonly model: HostedModel,
    resumed: ResumePoint | null,
    log: Logger,
  ) {
    this.aggregator = new GradientAggregator(model.dense, model.store, s.mode === "hybrid", resumed?.version ?? 0, s.maxGradientAbs ?? DEFAULT_MAX_GRADIENT_ABS);
    this.taken = new Uint8Array(s.steps * s.batchesPerStep);
    if (resumed) {
      // Batches before the checkpoint were taken in the run that wrote it.
      const out = new Set(resumed.outstanding);
      for (let j = 0; j < resumed.finishedBatches + out.size && j < this.taken.length; j++) {
        if (out.has(j)) continue;
        this.taken[j] = 1;
        this.takenEnd = j + 1;
      }
      this.takenCount = resumed.finishedBatches;
      this.applied = resumed.finishedBatches;
    }
    this.checkpointer = new Checkpointer(s.checkpoint, log);
    this.sync = new ServingSync(log);
  }

  /** The parameter version pulls see: steps applied (sync/hybrid) or updates (async). */
  get version(): number {
    return this.aggregator.version;
  }

  get appliedBatches(): number {
    return this.applied;
  }

  /** Training is over here: every global batch taken, or (finishTraining) shard 0 said so. */
  get trainingOver(): boolean {
    return this.ended;
  }

  wasTaken(j: number): boolean {
    return this.taken[j] === 1;
  }

  /** Batches settled here: applied, or passed over by completeStep (what a checkpoint request's count is compared with). */
  get settledBatches(): number {
    return this.applied + this.skipped;
  }

  /** Batches of steps completed here without their part (completeStep), counted from this process's start. */
  get skippedBatches(): number {
    return this.skipped;
  }

  /** Batches taken so far (applied or dropped as stale), counted from the job's start. */
  get takenBatches(): number {
    return this.takenCount;
  }

  /** How many batches at index `from` or above were taken (a scan of the few taken past it, not of the whole job). */
  takenFrom(from: number): number {
    let n = 0;
    for (let j = Math.max(0, from); j < this.takenEnd; j++) n += this.taken[j]!;
    return n;
  }

  /** Training begins: the checkpoint clock starts and the serving sync with it (`rowsSentBefore`: a resumed job's count). */
  start(rowsSentBefore = 0): void {
    this.checkpointer.startClock(Date.now());
    if (this.s.sync) {
      const { store, dense } = this.model;
      this.sync.start(this.s.sync, { store, dense, step: () => this.version }, rowsSentBefore);
    }
    if (this.takenCount >= this.taken.length) this.finishTraining();
  }

  /** Throws ORCH_ERR_BAD_GRADIENT for gradients no batch could take (shapes, non-finite values, batch size, loss). */
  validate(g: WorkerGradients): void {
    this.aggregator.validate(g);
  }

  /**
   * Checks a push: the answer for a batch taken before (it is never applied
   * twice), null for one to take; throws for one this shard cannot take.
   */
  admit(g: WorkerGradients): PushAck | null {
    const j = g.batchIndex ?? -1;
    if (!(j >= 0 && j < this.taken.length)) {
      throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `trainer rank ${g.rank} pushed batch ${j} to shard ${this.s.index}; the job has batches 0..${this.taken.length - 1}`);
    }
    // A bad push is refused as such (INVALID_ARGUMENT) whether or not its batch was taken: answered "duplicate", a NaN or
    // an undeclared slot's ids for a batch past passed as accepted.
    if (this.taken[j]) {
      this.validate(g);
      return { step: this.version, meanLoss: g.loss, workers: 0, samples: 0, duplicate: true };
    }
    if (this.s.mode !== "async" && g.step !== this.version) {
      const where = this.s.index === 0 ? "the job" : `shard ${this.s.index}`;
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${g.rank} pushed gradients for step ${g.step}, ${where} is at step ${this.version}`);
    }
    // A step's batches are its own (step s: s*B .. s*B+B-1): a later step's batch taken now would be lost to its step, and a
    // shard other than 0, which does not know who holds a batch, must not let a caller fill the steps to come.
    const notOfStep = this.s.mode === "async" ? "" : this.notOfStep(j, g.step);
    if (notOfStep) throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `trainer rank ${g.rank} pushed batch ${j} for step ${g.step} to shard ${this.s.index}; ${notOfStep}`);
    this.aggregator.validate(g);
    return null;
  }

  /** sync/hybrid: why global batch `j` is not one of step `step`'s ("" when it is): step s's are s*B .. s*B+B-1. */
  notOfStep(j: number, step: number): string {
    const B = this.s.batchesPerStep;
    return Math.floor(j / B) === step ? "" : `step ${step}'s batches are ${step * B}..${(step + 1) * B - 1}`;
  }

  /** Takes an admitted batch's gradients: async applies them now (unless stale), sync/hybrid once the step has all its batches. */
  take(g: WorkerGradients): Taken {
    this.mark(g.batchIndex ?? -1);
    let taken: Taken;
    if (this.s.mode === "async") {
      const staleness = this.version - g.step;
      if (this.s.maxStaleness !== null && staleness > this.s.maxStaleness) {
        const result = { step: this.version, meanLoss: g.loss, workers: 0, samples: g.batchSize };
        taken = { ack: { ...result, stale: true }, result, staleness };
      } else {
        const result = this.aggregator.applyNow(g);
        this.applied++;
        taken = { ack: { ...result, stale: false }, result, staleness };
      }
    } else {
      this.aggregator.add(g);
      this.applied++;
      if (++this.stepTaken < this.s.batchesPerStep) {
        taken = { ack: { step: this.version, meanLoss: g.loss, workers: 0, samples: 0 }, result: null, staleness: 0 };
      } else {
        this.stepTaken = 0;
        const result = this.aggregator.applyStep();
        taken = { ack: result, result, staleness: 0 };
      }
    }
    if (this.takenCount >= this.taken.length) this.finishTraining();
    return taken;
  }

  /**
   * sync/hybrid, shards other than 0: shard 0 applied `step`. Still at it,
   * this shard lacks the parts of the step's batches not taken here (their
   * trainers push here before shard 0, so none is on its way): it applies the
   * step without them, their rows' gradients lost, and takes the batches as
   * settled (a late push of one is answered as a repeat). Returns the batches
   * passed over (none when this shard had applied the step itself).
   */
  completeStep(step: number): number[] {
    if (this.s.mode === "async" || this.version !== step || this.ended) return [];
    const B = this.s.batchesPerStep;
    const missing: number[] = [];
    for (let j = step * B; j < (step + 1) * B && j < this.taken.length; j++) {
      if (this.taken[j]) continue;
      missing.push(j);
      this.mark(j);
    }
    this.skipped += missing.length;
    this.stepTaken = 0;
    this.aggregator.applyStep(B);
    if (this.takenCount >= this.taken.length) this.finishTraining();
    return missing;
  }

  private mark(j: number): void {
    this.taken[j] = 1;
    this.takenCount++;
    if (j >= this.takenEnd) this.takenEnd = j + 1;
  }

  /** Whether a checkpoint is due at `step` (shard 0 decides for every shard). */
  checkpointDue(step: number, final: boolean): boolean {
    return this.checkpointer.due(final, step);
  }

  /** Writes this shard's part of the checkpoint of `step` (shard 0 adds the training progress); it counts once committed. */
  writeCheckpoint(step: number, progress?: TrainingProgress): string {
    const { spec, dense, store } = this.model;
    return this.checkpointer.write(step, { spec, dense, store, slotIds: this.s.slotIds, ...(progress ? { progress } : {}) });
  }

  commitCheckpoint(step: number, final: boolean): void {
    this.checkpointer.commit(step, final);
  }

  /** Training is over: serving gets the final rows (and dense weights) at once rather than at the next interval. */
  finishTraining(): void {
    if (this.ended) return;
    this.ended = true;
    this.sync.finishTraining();
  }

  /** The job ended another way (or was forgotten): the sync stops at once. */
  stop(): void {
    this.sync.stop();
  }

  syncState(): ReturnType<ServingSync["state"]> {
    return this.sync.state();
  }

  rowsSent(fallback: number): number {
    return this.sync.rowsSent(fallback);
  }
}
