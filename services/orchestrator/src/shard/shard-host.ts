import { TokenBucket, type Logger, type PangeaError } from "@pangea/kit";
import type { JobSpec__Output } from "@pangea/schema";
import type { WorkerGradients } from "../aggregation/gradient-aggregator.js";
import { loadShardedCheckpoint, stepCheckpointDir, reshard, restoreStoreCounters, restoreTables, type CheckpointData } from "../checkpoint/checkpoint.js";
import { EmbeddingStore, type SlotConfig } from "../embeddings/embedding-store.js";
import { tablesFor } from "../embeddings/model-tables.js";
import { modelIdentity, modelSpecFromWire } from "@pangea/model";
import { OrchestratorErrors } from "../errors.js";
import type { TrainingMode } from "../job/work-plan.js";
import type { HostedModel, ParameterHost, SealedBatch, TrainingPull } from "../server/parameter-host.js";
import { runOf, sealProblem } from "../server/batch-row-budget.js";
import { ParameterShard, type PushAck } from "./parameter-shard.js";
import { isShardFatal } from "./shard-failure.js";
import { RevokedTokens, tokenIsForRank, ticketIsFor } from "@pangea/rpc";
import { discoveredSyncModel } from "@pangea/service-flags";

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
  /** Serving's API token for this shard's parameter sync pushes (--serving-sync-token-file). */
  servingSyncToken?: string;
  /** With --discovery etcd: the registry's serving replicas of a model, for a job whose --serving-sync is discovery:<model>. */
  servingReplicas?: (model: string) => () => Promise<readonly string[]>;
}

/** What a shard tells the orchestrator after a checkpoint request: its part written (path), or why not (error). */
export interface CheckpointReport {
  step: number;
  path: string;
  error: string;
  /** Batches of steps this shard applied without their part (completeStep), since it started. */
  partsSkipped: number;
}

interface PendingCheckpoint {
  step: number;
  final: boolean;
  batches: number;
  timer: NodeJS.Timeout;
}

/**
 * A parameter-server shard other than 0: the embedding rows of the ids with
 * id % shards == index, no dense parameters. It learns the job from the
 * orchestrator's session and trains it with the same ParameterShard as
 * shard 0. Trainers push each batch to the other shards before shard 0
 * (async: after, and only if shard 0 took it), so when shard 0 has all of a
 * sync step's batches every shard has them too; a batch arriving twice (its
 * first trainer died after pushing here) is ignored. It writes its part of
 * a checkpoint when shard 0 asks, and reports it (onCheckpoint).
 */
export class ShardHost implements ParameterHost {
  private shard: ParameterShard | null = null;
  private job: JobSpec__Output | null = null;
  private failure: PangeaError | null = null;
  private pending: PendingCheckpoint | null = null;

  /**
   * The key trainers' tokens are bound to their ranks with, from this shard's registration. Null until it registers
   * (a shard with no job refuses pushes anyway) or when its orchestrator sent none (one that predates the check).
   */
  pushKey: Buffer | null = null;
  /** The key batch tickets are made with, from the same registration; null from an orchestrator that gives no tickets. */
  ticketKey: Buffer | null = null;
  /** The nonces of trainer tokens the orchestrator revoked (WorkerEvent.tokens_revoked). */
  private readonly revoked = new RevokedTokens();
  /** Refused pushes are logged a few a second at most: a flood of them must not flood the log. */
  private readonly refusalsLogged = new TokenBucket(5, 1);

  constructor(private readonly s: ShardSettings, private readonly log: Logger) {}

  checkPush({ rank, token, batch, ticket }: { rank: number; token: string; batch: number; ticket: string }, call: string): void {
    if (!this.pushKey) return;
    let why = this.tokenProblem(rank, token, call, true);
    if (!why && this.ticketKey && !ticketIsFor(this.ticketKey, rank, token, batch, ticket)) {
      why = ticket ? `its batch_ticket is not for batch ${batch} given to rank ${rank} with this worker_token` : `it carries no batch_ticket for batch ${batch} (GetWork gives one with each batch)`;
    }
    if (why) this.refuse(rank, `${call} refused by parameter-server shard ${this.s.index}: ${why}`);
  }

  /**
   * A training pull carries a token issued for its rank, not revoked (it counts ids and makes rows here too), and the
   * ticket of the batch it is for: this shard does not know the plan, and a token alone let a trainer holding no batch
   * (one registered for the purpose) make rows here. In sync/hybrid the batch is of the step pulled for (an old ticket
   * is good for no other step); in async one taken here is done with.
   */
  checkTrainingPull(pull: TrainingPull, call: string): SealedBatch | null {
    const { rank, token, step = 0, batch = 0, ticket = "" } = pull;
    if (!this.pushKey) return null;
    let why = this.tokenProblem(rank, token, call, false);
    if (!why && this.ticketKey) {
      const notOfStep = this.shard && this.job?.mode !== "async" ? this.shard.notOfStep(batch, step) : "";
      if (!ticket) why = "it carries no batch_ticket (a training pull names the batch GetWork gave it, with its ticket)";
      else if (!ticketIsFor(this.ticketKey, rank, token, batch, ticket)) why = `its batch_ticket is not for batch ${batch} given to rank ${rank} with this worker_token`;
      else if (notOfStep) why = `batch ${batch} is not of step ${step} (${notOfStep})`;
      else if (this.job?.mode === "async" && this.shard?.wasTaken(batch)) why = `batch ${batch} was pushed here already`;
    }
    // Without a job the pull is refused further on (requireModel), with nothing read.
    if (!why && this.job) why = sealProblem(this.pushKey, this.job.batchSize, pull);
    if (why) this.refuse(rank, `${call} refused by parameter-server shard ${this.s.index}: ${why}`);
    return this.job ? { run: this.runOf(this.job.jobId, this.pushKey), batch, ids: pull.batchIds ?? 0, seal: pull.batchIdsSeal ?? "" } : null;
  }

  /** runOf, worked out once per job and key (a hash: not once per pull). */
  private runOf(jobId: string, key: Buffer): string {
    if (this.run?.key !== key || this.run.jobId !== jobId) this.run = { jobId, key, run: runOf(jobId, key) };
    return this.run.run;
  }
  private run: { jobId: string; key: Buffer; run: string } | null = null;

  /** Sync/hybrid: a batch of a step before the one before this shard's (a pull is for its step or the one before); async: one pushed here. */
  batchDone(batch: number): boolean {
    const shard = this.shard;
    if (!shard || !this.job) return true;
    if (this.job.mode === "async") return shard.wasTaken(batch);
    return batch < Math.max(0, shard.version - 1) * (this.job.batchesPerStep || this.job.worldSize);
  }

  /** Why `token` is not one a call for `rank` may carry ("" when it is); throws for a revoked one. */
  private tokenProblem(rank: number, token: string, call: string, push: boolean): string {
    if (!tokenIsForRank(this.pushKey!, rank, token)) {
      return token ? `its worker_token was not issued for rank ${rank}` : "it carries no worker_token (RegisterWorker's response gives it)";
    }
    if ((!push || this.job?.mode !== "async") && this.revoked.has(token)) {
      // As shard 0 answers a trainer declared dead: an honest one (stalled, then woken) registers again. A push is taken
      // in async mode, where trainers push to shard 0 first: a batch shard 0 took before the trainer was declared dead
      // must still be taken here (its ticket holds: a batch is given again only if shard 0 did not take it).
      throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `${call} refused by parameter-server shard ${this.s.index}: its worker_token was revoked (the trainer of rank ${rank} was declared dead or registered again); register again`);
    }
    return "";
  }

  private refuse(rank: number, message: string): never {
    const err = OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", message);
    if (this.refusalsLogged.take()) this.log.warn({ rank }, err.message);
    throw err;
  }

  /** Trainer tokens the orchestrator revoked, by nonce: their pushes are refused from now on. */
  revoke(nonces: readonly string[]): void {
    // A few a job (a trainer declared dead or registering again, rate-limited by the orchestrator): worth a line.
    this.log.info({ tokens: nonces.length }, "trainer tokens revoked by the orchestrator");
    this.revoked.add(nonces);
  }

  /** Where the outcome of each checkpoint request goes (run-shard sends it to the orchestrator). */
  onCheckpoint: (report: CheckpointReport) => void = () => {};

  /** Called when this shard can no longer serve the job at all (the memory limit): the process ends with it. */
  onFatal: (err: PangeaError) => void = () => {};

  /** The newest checkpoint part this shard wrote ("" before the first). */
  get checkpointPath(): string {
    return this.shard?.checkpointer.path ?? "";
  }

  get step(): number {
    return this.shard?.version ?? 0;
  }

  /** Forgets the job (its orchestrator went away); the next jobStarted begins again. */
  reset(): void {
    this.pushKey = null;
    this.ticketKey = null;
    this.revoked.clear();
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = null;
    this.shard?.stop();
    this.shard = null;
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
    const ck = resumed > 0 ? loadShardedCheckpoint(stepCheckpointDir(this.s.checkpointDir, job.jobId, resumed)) : this.s.restoreFrom;
    if (ck) {
      restoreTables(reshard(ck, job.psShards.length)[this.s.index]!, store);
      if (resumed > 0) restoreStoreCounters(ck, job.psShards.length, this.s.index, store);
      this.log.info({ rows: store.size(), resumedFromStep: resumed }, "shard rows restored from checkpoint");
    }
    const training = resumed > 0 ? ck?.[0]?.manifest.training : undefined;
    const { jobId, keepCheckpoints } = job;
    const sync = job.servingSync.length
      ? { ...this.syncTargets(job.servingSync), intervalMs: job.syncIntervalMs || 10_000, denseIntervalMs: job.denseSyncIntervalMs || 60_000, sender: `ps-shard-${this.s.index}`, model: modelIdentity(spec), ...(this.s.servingSyncToken ? { token: this.s.servingSyncToken } : {}) }
      : null;
    this.shard = new ParameterShard(
      {
        index: this.s.index,
        mode: job.mode as TrainingMode,
        batchesPerStep: job.batchesPerStep || job.worldSize,
        steps: Number(job.steps),
        maxStaleness: null,
        maxGradientAbs: this.s.maxGradientAbs,
        slotIds: m.slotIds,
        // Shard 0 decides when a checkpoint is due; this one writes when asked.
        checkpoint: { checkpointDir: this.s.checkpointDir, jobId, psShards: job.psShards.length, shardIndex: this.s.index, checkpointEverySteps: 0, checkpointEverySeconds: 0, keepCheckpoints },
        sync,
      },
      { spec, store, dense: null },
      training ? { version: training.denseUpdates, finishedBatches: training.finishedBatches, outstanding: training.outstanding } : null,
      this.log,
    );
    this.shard.start();
    this.log.info({ job: job.jobId, shard: this.s.index, of: job.psShards.length, mode: job.mode }, "shard serving the job");
  }

  /**
   * Where this shard pushes its rows: the job's addresses, or the replicas
   * etcd lists for discovery:<model>. A shard that cannot read the registry
   * would leave its part of every table unsynced, so it refuses the job.
   */
  private syncTargets(servingSync: readonly string[]): { targets: readonly string[]; listReplicas?: () => Promise<readonly string[]> } {
    const model = discoveredSyncModel(servingSync);
    if (model === null) return { targets: servingSync };
    if (!this.s.servingReplicas) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_JOB_CONFIG", `the job's --serving-sync ${servingSync[0]} finds serving replicas in etcd, and this shard was started without a registry: start it with the orchestrator's --discovery etcd://...`);
    }
    return { targets: [], listReplicas: this.s.servingReplicas(model) };
  }

  fail(err: PangeaError): void {
    this.failure = err;
    // Conditions the shard cannot train past: it says why to the orchestrator, which fails the job, and ends the process.
    if (isShardFatal(err)) this.onFatal(err);
  }

  requireModel(readOnly: boolean): HostedModel {
    if (this.failure) throw this.failure;
    if (!this.shard) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `parameter-server shard ${this.s.index} has no job yet`);
    if (!readOnly && this.shard.trainingOver) {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `training on shard ${this.s.index} is over (step ${this.step})`);
    }
    return this.shard.model;
  }

  /**
   * sync/hybrid: a training pull is for this shard's step, or the one before: a trainer that died between pushing a
   * batch here and to shard 0 (trainers push to shard 0 last) let this shard complete the step shard 0 still waits on,
   * and the trainer given that batch pulls for it. It gets the rows as they are now (one step on: the only rows this
   * shard has), and its push here is the batch's repeat, ignored; refused, it registered again and again for ever.
   */
  checkPullStep(step: number, rank: number): void {
    // One step ahead: shard 0 applied this shard's step without a part no trainer pushed here, and its word of it
    // (StepApplied) is still on the way while the trainers, told of the next step, pull for it. UNAVAILABLE: the
    // trainer asks again after a pause (FAILED_PRECONDITION had it register again, its batches given to another).
    if (this.job?.mode !== "async" && step === this.step + 1) {
      throw OrchestratorErrors.create("ORCH_ERR_SHARD_BEHIND", `trainer rank ${rank} pulled for step ${step} from shard ${this.s.index}, which is still at step ${this.step}: it has not yet heard that shard 0 applied step ${this.step}; ask again`);
    }
    if (this.job?.mode !== "async" && step !== this.step && step !== this.step - 1) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${rank} pulled for step ${step} from shard ${this.s.index}, which is at step ${this.step}`);
    }
  }

  async push(g: WorkerGradients): Promise<PushAck> {
    this.requireModel(false);
    const shard = this.shard!;
    const duplicate = shard.admit(g);
    if (duplicate) return duplicate;
    const { ack } = shard.take(g);
    if (this.pending && shard.settledBatches >= this.pending.batches) this.writePending();
    return ack;
  }

  /**
   * sync/hybrid: shard 0 applied `step` (StepApplied). A batch of it not pushed here by then never will be (trainers
   * push here first), so the step is applied without it: waiting, this shard held every trainer's next pull
   * (WRONG_STEP) for good while shard 0 moved on (a trainer had pushed its batch to shard 0 alone).
   */
  stepApplied(step: number): void {
    const shard = this.shard;
    if (!shard) return;
    const missing = shard.completeStep(step);
    if (missing.length && this.refusalsLogged.take()) {
      this.log.warn({ step, batches: missing, skippedSoFar: shard.skippedBatches }, `step ${step} applied on shard ${this.s.index} without the part of batch${missing.length > 1 ? "es" : ""} ${missing.join(", ")}: shard 0 has applied it and no trainer pushed ${missing.length > 1 ? "them" : "it"} here`);
    }
    if (this.pending && shard.settledBatches >= this.pending.batches) this.writePending();
  }

  /**
   * Shard 0 asks for this shard's part of the checkpoint of `step`. It is
   * written once this shard has applied `batches` batches (at once in
   * sync/hybrid, where shard 0 holds the next step meanwhile). Should some
   * never come (async: their trainer died between shard 0 and here), the
   * part is written as it stands after the heartbeat timeout, and a newer
   * request writes an older one at once, so every request is answered.
   */
  checkpoint(step: number, final: boolean, batches: number): void {
    if (this.pending) this.writePending();
    const waitMs = this.job?.heartbeatTimeoutMs || 5000;
    const timer = setTimeout(() => {
      if (this.pending?.timer !== timer) return;
      this.log.warn({ step, settled: this.shard?.settledBatches, expected: batches }, "writing the checkpoint part without every batch shard 0 had applied");
      this.writePending();
    }, waitMs);
    timer.unref();
    this.pending = { step, final, batches, timer };
    if ((this.shard?.settledBatches ?? 0) >= batches) this.writePending();
  }

  private writePending(): void {
    const p = this.pending!;
    this.pending = null;
    clearTimeout(p.timer);
    try {
      const shard = this.shard;
      if (!shard) throw new Error(`shard ${this.s.index} has no job`);
      if (this.job!.mode !== "async" && shard.version !== p.step) throw new Error(`shard ${this.s.index} is at step ${shard.version}`);
      const path = shard.writeCheckpoint(p.step);
      shard.commitCheckpoint(p.step, p.final);
      // async: batches shard 0 dropped as stale never come here, so only shard 0 knows training is over.
      if (p.final) shard.finishTraining();
      this.onCheckpoint({ step: p.step, path, error: "", partsSkipped: shard.skippedBatches });
    } catch (err) {
      const error = (err as Error).message;
      this.log.error({ step: p.step }, `cannot write this shard's part of the checkpoint of step ${p.step}: ${error}`);
      this.onCheckpoint({ step: p.step, path: "", error, partsSkipped: this.shard?.skippedBatches ?? 0 });
    }
  }
}
