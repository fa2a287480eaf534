import type { Logger } from "@pangea/kit";
import type { JobSpec__Output } from "@pangea/schema";
import { EmbeddingStore, type SlotConfig } from "../embeddings/embedding-store.js";
import { tablesFor } from "../embeddings/model-tables.js";
import { modelSpecFromWire } from "@pangea/model";
import { GradientAggregator, type StepResult, type WorkerGradients } from "../aggregation/gradient-aggregator.js";
import { loadShardedCheckpoint, reshard, restoreStoreCounters, restoreTables, type CheckpointData } from "../checkpoint/checkpoint.js";
import { Checkpointer } from "../checkpoint/checkpointer.js";
import { OrchestratorErrors } from "../errors.js";
import { ServingSync } from "../sync/serving-sync.js";
import type { HostedModel, ParameterHost } from "../server/parameter-host.js";
import type { PangeaError } from "@pangea/kit";
import { join } from "node:path";

export interface ShardSettings {
  index: number;
  defaults: SlotConfig;
  perSlot: ReadonlyMap<number, SlotConfig>;
  seed: number;
  maxEmbeddingBytes: number;
  /** Gradients above this magnitude are refused (see GradientAggregator.validate). */
  maxGradientAbs: number;
  checkpointDir: string;
  restoreFrom?: readonly CheckpointData[];
}

/**
 * A parameter-server shard other than 0: the embedding rows of the ids with
 * id % shards == index, no dense parameters. It learns the job (mode,
 * batches per step, checkpoint interval) from the orchestrator's session.
 * Trainers push each batch to the other shards before shard 0, so when shard
 * 0 has all of a step's batches every shard has them too; a batch arriving
 * twice (its first trainer died after pushing here) is ignored.
 */
export class ShardHost implements ParameterHost {
  private model: HostedModel | null = null;
  private aggregator: GradientAggregator | null = null;
  private job: JobSpec__Output | null = null;
  private failure: PangeaError | null = null;
  /** Global batches whose gradients this shard has taken. */
  private seen = new Uint8Array(0);
  private stepBatches = 0;
  /** Global batches per step, from the job. */
  private batchesPerStep = 1;
  private applied = 0;
  private readonly sync: ServingSync;
  private checkpointer: Checkpointer | null = null;

  constructor(private readonly s: ShardSettings, private readonly log: Logger) {
    this.sync = new ServingSync(log);
  }

  /** The newest checkpoint part this shard wrote ("" before the first). */
  get checkpointPath(): string {
    return this.checkpointer?.path ?? "";
  }

  get step(): number {
    return this.aggregator?.version ?? 0;
  }

  /** Forgets the job (its orchestrator went away); the next jobStarted begins again. */
  reset(): void {
    this.sync.stop();
    this.checkpointer = null;
    this.model = null;
    this.aggregator = null;
    this.job = null;
    this.failure = null;
  }

  start(job: JobSpec__Output): void {
    if (this.job) return;
    this.job = job;
    const m = job.model!;
    const spec = modelSpecFromWire(m);
    const tables = tablesFor(spec, m.slotIds, this.s);
    const store = new EmbeddingStore(tables.defaults, tables.perSlot, this.s.seed, this.s.maxEmbeddingBytes || undefined);
    store.declareSlots(m.slotIds);
    const resumed = Number(job.resumedFromStep);
    // A resumed job reloads this shard's part of the checkpoint the orchestrator resumed from.
    const ck = resumed > 0 ? loadShardedCheckpoint(join(this.s.checkpointDir, job.jobId, `step-${resumed}`)) : this.s.restoreFrom;
    if (ck) {
      restoreTables(reshard(ck, job.psShards.length)[this.s.index]!, store);
      if (resumed > 0) restoreStoreCounters(ck, job.psShards.length, this.s.index, store);
      this.log.info({ rows: store.size(), resumedFromStep: resumed }, "shard rows restored from checkpoint");
    }
    const W = (this.batchesPerStep = job.batchesPerStep || job.worldSize);
    const training = ck?.[0]?.manifest.training;
    this.model = { spec, store, dense: null };
    this.aggregator = new GradientAggregator(null, store, job.mode === "hybrid", resumed > 0 ? (job.mode === "async" ? (training?.denseUpdates ?? 0) : resumed) : 0, this.s.maxGradientAbs);
    this.seen = new Uint8Array(Number(job.steps) * W);
    if (resumed > 0 && training) {
      const out = new Set(training.outstanding);
      for (let j = 0; j < training.finishedBatches + out.size; j++) if (!out.has(j)) this.seen[j] = 1;
      this.applied = training.finishedBatches;
    }
    // The orchestrator checkpoints by steps only here: shards cannot see its clock (--checkpoint-every-seconds needs one shard).
    const { jobId, checkpointEverySteps, keepCheckpoints } = job;
    this.checkpointer = new Checkpointer({ checkpointDir: this.s.checkpointDir, jobId, psShards: job.psShards.length, shardIndex: this.s.index, checkpointEverySteps, checkpointEverySeconds: 0, keepCheckpoints }, this.log);
    if (job.servingSync.length) {
      const settings = { targets: job.servingSync, intervalMs: job.syncIntervalMs || 10_000, denseIntervalMs: job.denseSyncIntervalMs || 60_000, sender: `ps-shard-${this.s.index}` };
      this.sync.start(settings, { store, dense: null, step: () => this.step });
    }
    this.log.info({ job: job.jobId, shard: this.s.index, of: job.psShards.length, mode: job.mode }, "shard serving the job");
  }

  /** Called when this shard can no longer serve the job at all (the memory limit): the process ends with it. */
  onFatal: (err: PangeaError) => void = () => {};

  fail(err: PangeaError): void {
    this.failure = err;
    if (err.code === "ORCH_ERR_MEMORY_LIMIT") this.onFatal(err);
  }

  requireModel(readOnly: boolean): HostedModel {
    if (this.failure) throw this.failure;
    if (!this.model) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `parameter-server shard ${this.s.index} has no job yet`);
    if (!readOnly && this.job && this.applied >= this.seen.length) {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `training on shard ${this.s.index} is over (step ${this.step})`);
    }
    return this.model;
  }

  checkPullStep(step: number, rank: number): void {
    if (this.job?.mode !== "async" && step !== this.step) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${rank} pulled for step ${step} from shard ${this.s.index}, which is at step ${this.step}`);
    }
  }

  async push(g: WorkerGradients): Promise<StepResult & { duplicate?: boolean }> {
    this.requireModel(false);
    const job = this.job!;
    const agg = this.aggregator!;
    const j = g.batchIndex ?? -1;
    if (!(j >= 0 && j < this.seen.length)) {
      throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `trainer rank ${g.rank} pushed batch ${j} to shard ${this.s.index}; the job has batches 0..${this.seen.length - 1}`);
    }
    if (this.seen[j]) return { step: this.step, meanLoss: g.loss, workers: 0, samples: 0, duplicate: true };
    agg.validate(g);
    this.seen[j] = 1;
    this.applied++;
    const W = this.batchesPerStep;
    if (job.mode === "async") {
      const r = agg.applyNow(g);
      if (this.applied % W === 0) this.maybeCheckpoint(this.applied / W);
      return r;
    }
    agg.add(g);
    if (++this.stepBatches < W) return { step: this.step, meanLoss: g.loss, workers: 0, samples: 0 };
    this.stepBatches = 0;
    const result = agg.applyStep();
    this.maybeCheckpoint(result.step);
    if (this.applied >= this.seen.length) this.sync.finishTraining();
    return result;
  }

  /** Saves this shard's rows at the steps the orchestrator checkpoints at (every N steps, and the last). */
  private maybeCheckpoint(step: number): void {
    const m = this.model!;
    const slotIds = this.job!.model!.slotIds;
    this.checkpointer!.maybeSave(step >= Number(this.job!.steps), step, () => ({ spec: m.spec, dense: null, store: m.store, slotIds }));
  }
}
