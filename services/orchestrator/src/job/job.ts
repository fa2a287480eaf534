import { EventEmitter } from "node:events";
import type { Logger } from "@pangea/kit";
import { validateSpec, type DlrmSpec } from "@pangea/model";
import type { EvalReport__Output, JobSpec, JobState, JobStatus, SourceInfo__Output, Work, WorkerEvent, WorkerStatus } from "@pangea/schema";
import { EmbeddingStore, type SlotConfig, type StoreStats } from "../embeddings/embedding-store.js";
import { DEFAULT_INITIALIZER } from "../embeddings/initializer.js";
import { DenseStore } from "../params/dense-store.js";
import { DEFAULT_MAX_GRADIENT_ABS, GradientAggregator, type StepResult, type WorkerGradients } from "../aggregation/gradient-aggregator.js";
import { exportModel, exportedVersions } from "../export/export-model.js";
import { writeCompletion } from "../checkpoint/completion.js";
import { pruneCheckpoints, reshard, restoreStoreCounters, restoreTables, saveCheckpoint, type CheckpointData, type TrainingProgress } from "../checkpoint/checkpoint.js";
import { readCounters, saveCounters, type JobCounters } from "./job-counters.js";
import { WorkPlan, type TrainingMode } from "./work-plan.js";
import { ParameterSyncPusher } from "../sync/parameter-sync.js";
import type { SparseOptimizerName } from "../optim/sparse-optimizers.js";
import type { DenseOptimizerName } from "../optim/optimizers.js";
import { OrchestratorErrors } from "../errors.js";
import type { WorkerKind } from "../server/peer-check.js";
import { TokenBucket } from "./token-bucket.js";
import { checkEvalReport } from "./eval-report-check.js";
import type { PangeaError } from "@pangea/kit";

/**
 * New trainer ids a job accepts at once, then per second: far above any real
 * cluster's joins, far below what fills the 256-trainer table in a blink.
 */
const NEW_TRAINER_BURST = 32;
const NEW_TRAINER_PER_SECOND = 2;

export interface JobConfig {
  jobId: string;
  trainers: number;
  steps: number;
  batchSize: number;
  evalBatchSize: number;
  embeddingDim: number;
  bottomMlp: readonly number[];
  topMlp: readonly number[];
  denseLr: number;
  denseOptimizer: DenseOptimizerName;
  sparseLr: number;
  sparseOptimizer: SparseOptimizerName;
  /** Table settings of slots --slot-config does not name. */
  slotDefaults?: SlotConfig;
  /** Per-slot table settings, from --slot-config; slots not named use the defaults. */
  slotConfigs: ReadonlyMap<number, SlotConfig>;
  maxEmbeddingBytes: number;
  /** Gradients above this magnitude are refused (--max-gradient-abs). */
  maxGradientAbs?: number;
  expireSweepSeconds: number;
  /** Parameter-server shards in all, this process (shard 0) included. */
  psShards: number;
  gradientCompression: "none" | "fp16";
  /** A checkpoint (its shards, loaded and checked at start) to begin from instead of fresh parameters. */
  restoreFrom?: readonly CheckpointData[];
  /** Continue the checkpoint's training (step, data position, optimizer clock) instead of only taking its parameters. */
  resume?: boolean;
  /** The resumed checkpoint is the final one of a job that completed with this evaluation: the job starts completed. */
  completed?: EvalReport__Output;
  mode: TrainingMode;
  /** Global batches per step; 0 = one per expected trainer. */
  batchesPerStep: number;
  maxStaleness: number;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  /** What a lost trainer means: its batches go to the others, or the job fails. */
  onTrainerLoss: "reassign" | "fail";
  checkpointEverySteps: number;
  checkpointEverySeconds: number;
  keepCheckpoints: number;
  /** Serving replicas to push changed rows and dense weights to (ParameterSync). */
  servingSync?: readonly string[];
  syncIntervalSeconds?: number;
  denseSyncIntervalSeconds?: number;
  seed: number;
  checkpointDir: string;
  /** A model base path the final checkpoint (and the first, while it holds no version) is exported to. */
  exportDir?: string;
  /** The feature list copied into each export. */
  exportFeatureList?: string;
  registerTimeoutMs: number;
}

/** Where a job's session events go; the gRPC layer adapts a server stream to it. */
export interface SessionSink {
  send(event: WorkerEvent): void;
  end(): void;
}

interface TrainerEntry {
  workerId: string;
  rank: number;
  session: SessionSink | null;
  backend: string;
  /** A member of the job: registered and not declared dead. */
  alive: boolean;
  lastBeat: number;
  batchesDone: number;
  /** The trainer's latest streaming AUC (NaN until it reports one). */
  streamingAuc: number;
  /** Cumulative seconds per phase, from the trainer's last heartbeat. */
  phaseSeconds: Record<string, number>;
}

type WorkWaiter = (w: Work) => void;

export interface JobModel {
  spec: DlrmSpec;
  dense: DenseStore;
  store: EmbeddingStore;
}

/**
 * One training job's state machine: WAITING (for compute and the expected
 * trainers) -> RUNNING -> EVALUATING (one trainer scores the held-out split)
 * -> COMPLETED, or FAILED from any state with one reason.
 *
 * Work is handed out by global batch index (WorkPlan), so trainers may join
 * and leave while it runs: a trainer whose session breaks, or whose
 * heartbeats stop, is declared dead and its unfinished batches go to the
 * others (--on-trainer-loss reassign), or the job fails (fail).
 */
export class Job extends EventEmitter<{ finished: [JobStatus] }> {
  state: JobState = "JOB_STATE_WAITING";
  private compute: { workerId: string; address: string; source: SourceInfo__Output; session: SessionSink | null } | null = null;
  private readonly trainers = new Map<string, TrainerEntry>();
  private nextRank = 0;
  /** Parameter-server shards 1..psShards-1, by worker id. */
  private readonly shards = new Map<string, { workerId: string; index: number; address: string; session: SessionSink | null }>();
  /** The address trainers use to reach this process's parameter server (shard 0). */
  address = "";
  model: JobModel | null = null;
  private aggregator: GradientAggregator | null = null;
  private plan: WorkPlan | null = null;
  private readonly waiters = new Map<string, WorkWaiter>();
  private evaluator: string | null = null;
  private readonly newTrainerIds = new TokenBucket(NEW_TRAINER_BURST, NEW_TRAINER_PER_SECOND);
  private startedAt = 0;
  private endedAt = 0;
  private samples = 0;
  /** Running totals, carried on from the checkpoint a resumed job started from. */
  private readonly counts: JobCounters;
  private evalReport: EvalReport__Output | null = null;
  private checkpointPath = "";
  private readonly checkpoints: string[] = [];
  private lastCheckpointAt = 0;
  private error = "";
  private readonly registerTimer: NodeJS.Timeout;
  private sweeper: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private orphanTimer: NodeJS.Timeout | null = null;
  private readonly createdAt = Date.now();
  private readonly resumed: TrainingProgress | null;
  /** Times each global batch was applied; must end all ones. */
  private applied = new Uint8Array(0);
  private sync: ParameterSyncPusher | null = null;
  /** The pusher, kept after training for its figures. */
  private syncStats: ParameterSyncPusher | null = null;

  constructor(readonly config: JobConfig, private readonly log: Logger) {
    super();
    this.resumed = config.resume ? (config.restoreFrom?.[0]?.manifest.training ?? null) : null;
    this.counts = readCounters(this.resumed?.counters ?? undefined);
    this.samples = this.resumed?.samples ?? 0;
    if (config.resume && config.restoreFrom && !this.resumed) {
      throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", "the checkpoint records no training progress (written by an older version); use --restore-from to take only its parameters");
    }
    if (this.resumed) {
      if (this.resumed.mode !== config.mode || this.resumed.batchesPerStep !== this.batchesPerStep || this.resumed.batchSize !== config.batchSize) {
        throw OrchestratorErrors.create(
          "ORCH_ERR_CHECKPOINT_CORRUPT",
          `cannot resume: the checkpoint was taken in ${this.resumed.mode} mode with ${this.resumed.batchesPerStep} batches of ${this.resumed.batchSize} per step; this job has ${config.mode}, ${this.batchesPerStep} of ${config.batchSize}`,
        );
      }
    }
    this.registerTimer = setTimeout(() => {
      if (this.state === "JOB_STATE_WAITING") {
        const connected = [...this.trainers.values()].filter((t) => t.session).length;
        const shards = [...this.shards.values()].filter((s) => s.session).length;
        this.fail(
          OrchestratorErrors.create(
            "ORCH_ERR_REGISTER_TIMEOUT",
            `timed out after ${(config.registerTimeoutMs / 1000).toFixed(0)}s waiting for workers: ${connected}/${config.trainers} trainers connected, compute ${this.compute ? "registered" : "not registered"}${config.psShards > 1 ? `, ${shards}/${config.psShards - 1} parameter-server shards connected` : ""}`,
          ),
        );
      }
    }, config.registerTimeoutMs);
    this.registerTimer.unref();
    if (config.completed) {
      clearTimeout(this.registerTimer);
      this.evalReport = config.completed;
      this.state = "JOB_STATE_COMPLETED";
    }
  }

  get batchesPerStep(): number {
    return this.config.batchesPerStep || this.config.trainers;
  }

  /** The parameter version pulls see: steps applied (sync/hybrid) or dense updates (async). */
  get step(): number {
    return this.aggregator?.version ?? 0;
  }

  /** Steps of training done (async: whole steps' worth of batches). */
  get progressStep(): number {
    return this.plan?.step ?? this.resumed?.step ?? 0;
  }

  registerCompute(workerId: string, address: string, source: SourceInfo__Output | null): void {
    if (!address) throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered without an address`);
    if (!source || source.numDense < 1 || source.slotIds.length < 1) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered without a usable source description (dense features and slots)`);
    }
    if (this.isFinished()) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `compute ${workerId} registered after the job ended (${this.state})`);
    if (this.compute?.session && this.compute.workerId !== workerId) {
      // The registered compute is connected: a second one would send the trainers elsewhere mid-job.
      throw OrchestratorErrors.create("ORCH_ERR_WORKER_CONFLICT", `compute ${workerId} refused: compute ${this.compute.workerId} is registered and connected`);
    }
    const prev = this.compute?.source;
    if (this.state !== "JOB_STATE_WAITING" && prev) {
      // A compute that comes back (restarted, maybe elsewhere) must serve the same data, or batch k would mean other records.
      const same = prev.numDense === source.numDense && prev.slotIds.join() === source.slotIds.join() && Number(prev.trainRecords) === Number(source.trainRecords) && Number(prev.evalRecords) === Number(source.evalRecords) && prev.description === source.description;
      if (!same) {
        throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} serves "${source.description}" (${source.trainRecords} train records), but the running job reads "${prev.description}" (${prev.trainRecords})`);
      }
    }
    this.compute = { workerId, address, source, session: null };
    this.log.info({ workerId, address, source: source.description }, "compute registered");
    this.wakeWorkers();
    this.maybeStart();
  }

  registerShard(workerId: string, index: number, address: string): void {
    const n = this.config.psShards;
    if (!address) throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `parameter-server shard ${workerId} registered without an address`);
    if (!(index >= 1 && index < n)) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `parameter-server shard ${workerId} has index ${index}; this job has shards 1..${n - 1} besides the orchestrator (--ps-shards ${n})`);
    }
    const taken = [...this.shards.values()].find((s) => s.index === index && s.workerId !== workerId);
    if (taken || this.state !== "JOB_STATE_WAITING") {
      throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `parameter-server shard ${workerId} refused: shard ${index} is ${taken ? `already ${taken.workerId}` : "taken by the running job"}`);
    }
    this.shards.set(workerId, { workerId, index, address, session: null });
    this.log.info({ workerId, index, address }, "parameter-server shard registered");
  }

  /** A trainer joins: before the start, one of the expected ones; later, an extra pair of hands for the steps to come. */
  registerTrainer(workerId: string): { rank: number; worldSize: number } {
    const existing = this.trainers.get(workerId);
    if (existing?.alive && existing.session) {
      // Its process is connected: a second process under the same id would take over its rank and batches.
      throw OrchestratorErrors.create("ORCH_ERR_WORKER_CONFLICT", `trainer ${workerId} refused: a trainer of that id is registered and connected (rank ${existing.rank})`);
    }
    if (existing?.alive) return { rank: existing.rank, worldSize: this.batchesPerStep };
    if (this.isFinished()) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `trainer ${workerId} refused: the job has ended (${this.state})`);
    if (this.state === "JOB_STATE_WAITING" && this.liveTrainers().length >= this.config.trainers) {
      throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `trainer ${workerId} refused: the job expects ${this.config.trainers} trainers and already has them`);
    }
    if (!existing) {
      // A trainer seen before may always come back; only new ids count against the cap and the rate.
      if (this.trainers.size >= 256) throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `trainer ${workerId} refused: the job has seen 256 trainers`);
      if (!this.newTrainerIds.take()) {
        throw OrchestratorErrors.create("ORCH_ERR_RATE_LIMITED", `trainer ${workerId} refused: more than ${NEW_TRAINER_BURST} new trainer ids in a burst (then ${NEW_TRAINER_PER_SECOND}/s); try again shortly`);
      }
    }
    // A returning trainer gets a fresh rank: ranks are never reused, so a late push from its old life is recognisable.
    const rank = this.nextRank++;
    this.trainers.set(workerId, { workerId, rank, session: null, backend: existing?.backend ?? "", alive: true, lastBeat: Date.now(), batchesDone: 0, streamingAuc: Number.NaN, phaseSeconds: existing?.phaseSeconds ?? {} });
    this.log.info({ workerId, rank, joining: this.state !== "JOB_STATE_WAITING" }, "trainer registered");
    return { rank, worldSize: this.batchesPerStep };
  }

  /** A trainer's, shard's or compute's session: the job's start and end go down it, and its breaking means the worker is gone. */
  openSession(workerId: string, sink: SessionSink): void {
    if (this.compute?.workerId === workerId) {
      this.compute.session = sink;
      if (this.isFinished()) this.endSession(sink);
      return;
    }
    const member = this.shards.get(workerId) ?? this.trainers.get(workerId);
    if (!member) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `session for unregistered worker ${workerId}; call RegisterWorker first`);
    if ("alive" in member && !member.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${workerId} was declared dead; register again`);
    if (this.isFinished()) {
      this.endSession(sink);
      return;
    }
    member.session = sink;
    if ("alive" in member) member.lastBeat = Date.now();
    if (this.state !== "JOB_STATE_WAITING") {
      sink.send({ jobStarted: this.jobSpec() });
      if ("alive" in member) this.joined(member);
    }
    this.maybeStart();
  }

  private endSession(sink: SessionSink): void {
    sink.send({ jobFinished: { state: this.state, error: this.error } });
    sink.end();
  }

  /** A session stream ended: fine once the worker's part is done; otherwise the worker is lost. */
  sessionClosed(workerId: string, sink: SessionSink): void {
    if (this.compute?.workerId === workerId && this.compute.session === sink) {
      this.compute.session = null;
      if (!this.isFinished()) this.log.warn({ workerId }, "compute disconnected; trainers wait for it to come back");
      return;
    }
    const shard = this.shards.get(workerId);
    if (shard && shard.session === sink) {
      shard.session = null;
      if (this.isFinished() || this.state === "JOB_STATE_WAITING") return;
      this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `parameter-server shard ${workerId} (index ${shard.index}) disconnected at step ${this.progressStep} of ${this.config.steps}`));
      return;
    }
    const t = this.trainers.get(workerId);
    if (!t || t.session !== sink) return;
    t.session = null;
    if (this.isFinished() || !t.alive) return;
    if (this.state === "JOB_STATE_WAITING") {
      this.log.warn({ workerId, rank: t.rank }, "trainer disconnected before the job started");
      t.alive = false;
      return;
    }
    this.trainerLost(t, "disconnected");
  }

  /** Records a trainer's heartbeat; false if it is not (or no longer) a member. */
  heartbeat(workerId: string, phaseSeconds?: Record<string, number>): boolean {
    const t = this.trainers.get(workerId);
    if (!t?.alive) return false;
    t.lastBeat = Date.now();
    if (phaseSeconds) t.phaseSeconds = { ...phaseSeconds };
    return true;
  }

  private checkHeartbeats(): void {
    const now = Date.now();
    for (const t of this.trainers.values()) {
      if (t.alive && now - t.lastBeat > this.config.heartbeatTimeoutMs) this.trainerLost(t, `sent no heartbeat for ${((now - t.lastBeat) / 1000).toFixed(1)}s`);
    }
  }

  private trainerLost(t: TrainerEntry, why: string): void {
    if (!t.alive || this.isFinished()) return;
    const trainingDone = this.state === "JOB_STATE_EVALUATING" || (this.plan?.done ?? false);
    if (this.config.onTrainerLoss === "fail" && !(trainingDone && this.evaluator !== t.workerId)) {
      this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `trainer ${t.workerId} (rank ${t.rank}) ${why} at step ${this.progressStep} of ${this.config.steps}`));
      return;
    }
    t.alive = false;
    this.counts.deadTrainers++;
    const session = t.session;
    t.session = null;
    session?.end();
    const freed = this.plan ? this.plan.release(t.workerId, this.liveTrainers()) : [];
    if (this.evaluator === t.workerId) this.evaluator = null;
    this.waiters.delete(t.workerId);
    this.log.warn({ workerId: t.workerId, rank: t.rank, reassigned: freed, live: this.liveTrainers().length }, `trainer ${why}; declared dead`);
    this.watchForOrphans();
    this.wakeWorkers();
  }

  /** With no trainer left the job waits for one to join, but not forever. */
  private watchForOrphans(): void {
    if (this.liveTrainers().length > 0 || this.orphanTimer || this.isFinished()) return;
    this.orphanTimer = setTimeout(() => {
      this.orphanTimer = null;
      if (this.liveTrainers().length === 0) {
        this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `no trainer left for ${(this.config.registerTimeoutMs / 1000).toFixed(0)}s at step ${this.progressStep} of ${this.config.steps}`));
      }
    }, this.config.registerTimeoutMs);
    this.orphanTimer.unref();
  }

  private joined(t: TrainerEntry): void {
    if (this.orphanTimer) {
      clearTimeout(this.orphanTimer);
      this.orphanTimer = null;
    }
    this.plan?.adopt(this.liveTrainers());
    this.wakeWorkers();
    this.log.info({ workerId: t.workerId, rank: t.rank, live: this.liveTrainers().length }, "trainer joined the running job");
  }

  /** Live trainers with an open session, in rank order (the plan deals batches in this order). */
  private liveTrainers(): string[] {
    return [...this.trainers.values()].filter((t) => t.alive && t.session).sort((a, b) => a.rank - b.rank).map((t) => t.workerId);
  }

  setBackend(workerId: string, backend: string): void {
    const t = this.trainers.get(workerId);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `unknown worker ${workerId}`);
    t.backend = backend;
  }

  private maybeStart(): void {
    if (this.state !== "JOB_STATE_WAITING" || !this.compute) return;
    const ready = [...this.trainers.values()].filter((t) => t.alive && t.session);
    if (ready.length < this.config.trainers) return;
    if ([...this.shards.values()].filter((s) => s.session).length < this.config.psShards - 1) return;
    const source = this.compute.source;
    const spec: DlrmSpec = {
      numDense: source.numDense,
      numSlots: source.slotIds.length,
      embeddingDim: this.config.embeddingDim,
      bottomMlp: this.config.bottomMlp,
      topMlp: this.config.topMlp,
    };
    try {
      validateSpec(spec);
      const slotDefaults = this.config.slotDefaults;
      if (slotDefaults && slotDefaults.dim !== spec.embeddingDim) {
        throw OrchestratorErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", `the default slot dim ${slotDefaults.dim} differs from --embedding-dim ${spec.embeddingDim}; the model gives every slot the same width`);
      }
      const badSlot = [...this.config.slotConfigs].find(([, c]) => c.dim !== spec.embeddingDim);
      if (badSlot) {
        throw OrchestratorErrors.create(
          "ORCH_ERR_BAD_SLOT_CONFIG",
          `slot ${badSlot[0]} asks for embedding dim ${badSlot[1].dim}, but the model gives every slot --embedding-dim ${spec.embeddingDim}`,
        );
      }
      const wrong = source.slotDims.findIndex((d) => d !== spec.embeddingDim);
      if (wrong >= 0) {
        throw OrchestratorErrors.create(
          "ORCH_ERR_BAD_REGISTRATION",
          `compute's feature list gives slot ${source.slotIds[wrong]} embedding dim ${source.slotDims[wrong]}, but the model gives every slot --embedding-dim ${spec.embeddingDim}`,
        );
      }
    } catch (err) {
      this.fail(err as PangeaError);
      return;
    }
    const dense = new DenseStore(spec, this.config.seed, this.config.denseLr, this.config.denseOptimizer);
    const defaults = this.config.slotDefaults ?? defaultSlotConfig(this.config, spec.embeddingDim);
    const store = new EmbeddingStore(defaults, this.config.slotConfigs, this.config.seed, this.config.maxEmbeddingBytes || undefined);
    store.declareSlots(source.slotIds);
    const ck = this.config.restoreFrom;
    if (ck) {
      try {
        const saved = ck[0]!.manifest.model;
        if (saved.embeddingDim !== spec.embeddingDim || saved.numSlots !== spec.numSlots || saved.numDense !== spec.numDense || saved.bottomMlp.join() !== spec.bottomMlp.join() || saved.topMlp.join() !== spec.topMlp.join()) {
          throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `the checkpoint's model ${JSON.stringify(saved)} is not this job's ${JSON.stringify(spec)}`);
        }
        const savedOptimizer = ck[0]!.manifest.denseOptimizer ?? "adam";
        if (savedOptimizer !== dense.optimizer) {
          throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", `the checkpoint's dense optimizer is ${savedOptimizer}, this job's --dense-optimizer is ${dense.optimizer}`);
        }
        dense.restore(ck[0]!.dense, ck[0]!.momentM, ck[0]!.momentV, this.resumed?.denseUpdates);
        restoreTables(reshard(ck, this.config.psShards)[0]!, store);
        if (this.resumed) restoreStoreCounters(ck, this.config.psShards, 0, store);
        if (this.resumed && ck[0]!.filter.length === store.filter.counters.length) store.filter.counters.set(ck[0]!.filter);
        this.log.info({ step: ck[0]!.manifest.step, rows: store.size(), shards: `${ck.length} -> ${this.config.psShards}`, resume: this.resumed !== null }, "parameters restored from checkpoint");
      } catch (err) {
        this.fail(OrchestratorErrors.is(err) ? err : OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", (err as Error).message));
        return;
      }
    }
    this.model = { spec, dense, store };
    const r = this.resumed;
    this.plan = new WorkPlan(this.config.mode, this.batchesPerStep, this.config.steps, r ? { step: r.step, finishedBatches: r.finishedBatches, outstanding: r.outstanding } : undefined);
    this.aggregator = new GradientAggregator(dense, store, this.config.mode === "hybrid", r?.denseUpdates ?? 0, this.config.maxGradientAbs ?? DEFAULT_MAX_GRADIENT_ABS);
    this.plan.reassigned = this.counts.reassignedBatches;
    this.applied = new Uint8Array(this.plan.totalBatches);
    if (r) {
      // Batches before the checkpoint were applied in the run that wrote it.
      const before = new Set(r.outstanding);
      for (let j = 0; j < r.finishedBatches + r.outstanding.length && j < this.applied.length; j++) if (!before.has(j)) this.applied[j] = 1;
    }
    if (defaults.expireSeconds > 0 || [...this.config.slotConfigs.values()].some((c) => c.expireSeconds > 0)) {
      this.sweeper = setInterval(() => {
        const n = store.sweep();
        if (n > 0) this.log.info({ evicted: n, rows: store.size() }, "expired embedding rows evicted");
      }, this.config.expireSweepSeconds * 1000);
      this.sweeper.unref();
    }
    if (this.config.servingSync?.length) {
      this.sync = new ParameterSyncPusher(this.config.servingSync, { store, dense, step: () => this.step, dim: spec.embeddingDim }, (this.config.syncIntervalSeconds ?? 10) * 1000, (this.config.denseSyncIntervalSeconds ?? 60) * 1000, "orchestrator", this.log);
      this.sync.rowsSent = this.counts.syncRowsSent;
      this.sync.start();
      this.syncStats = this.sync;
    }
    this.heartbeatTimer = setInterval(() => this.checkHeartbeats(), Math.max(100, Math.min(1000, this.config.heartbeatTimeoutMs / 4)));
    this.heartbeatTimer.unref();
    for (const t of this.trainers.values()) t.lastBeat = Date.now();
    this.state = "JOB_STATE_RUNNING";
    this.startedAt = Date.now();
    this.lastCheckpointAt = this.startedAt;
    clearTimeout(this.registerTimer);
    this.plan.beginStep(this.liveTrainers());
    const jobSpec = this.jobSpec();
    this.log.info({ jobSpec, denseParams: dense.totalElements(), resumedFromStep: r?.step }, "job started");
    for (const t of [...this.shards.values(), ...this.trainers.values()]) t.session?.send({ jobStarted: jobSpec });
    if (this.plan.done) this.finishTraining();
  }

  jobSpec(): JobSpec {
    const spec = this.model!.spec;
    return {
      jobId: this.config.jobId,
      model: {
        numDense: spec.numDense,
        slotIds: this.compute!.source.slotIds,
        embeddingDim: spec.embeddingDim,
        bottomMlp: [...spec.bottomMlp],
        topMlp: [...spec.topMlp],
      },
      batchSize: this.config.batchSize,
      steps: this.config.steps,
      worldSize: this.batchesPerStep,
      computeAddress: this.compute!.address,
      seed: this.config.seed,
      evalBatchSize: this.config.evalBatchSize,
      gradientCompression: this.config.gradientCompression,
      psShards: [this.address, ...[...this.shards.values()].sort((a, b) => a.index - b.index).map((s) => s.address)],
      mode: this.config.mode,
      batchesPerStep: this.batchesPerStep,
      maxStaleness: this.config.maxStaleness,
      heartbeatMs: this.config.heartbeatMs,
      heartbeatTimeoutMs: this.config.heartbeatTimeoutMs,
      checkpointEverySteps: this.config.checkpointEverySteps,
      keepCheckpoints: this.config.keepCheckpoints,
      resumedFromStep: this.resumed?.step ?? 0,
      servingSync: [...(this.config.servingSync ?? [])],
      syncIntervalMs: Math.round((this.config.syncIntervalSeconds ?? 10) * 1000),
      denseSyncIntervalMs: Math.round((this.config.denseSyncIntervalSeconds ?? 60) * 1000),
    };
  }

  /** Mean of the live trainers' latest streaming AUCs (NaN before any). */
  private streamingAuc(): number {
    const aucs = [...this.trainers.values()].filter((t) => t.alive && Number.isFinite(t.streamingAuc)).map((t) => t.streamingAuc);
    return aucs.length ? aucs.reduce((a, b) => a + b, 0) / aucs.length : Number.NaN;
  }

  /** Parameter sync's figures (null without --serving-sync). */
  syncState(): { lastAckAt: number; servingVersion: number; rowsSent: number } | null {
    const p = this.syncStats;
    return p ? { lastAckAt: p.lastAckAt, servingVersion: p.servingVersion, rowsSent: p.rowsSent } : null;
  }

  /** The running model, for parameter pulls; throws unless a job has started. */
  requireModel(readOnly: boolean): JobModel {
    if (!this.model) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `no parameters yet: the job is ${this.state}`);
    if (!readOnly && this.state !== "JOB_STATE_RUNNING") {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `training pulls need a running job; the job is ${this.state}${this.error ? `: ${this.error}` : ""}`);
    }
    return this.model;
  }

  /** Training pulls must be for the step under way, except in async mode where any version is fine. */
  checkPullStep(step: number, rank: number): void {
    if (this.config.mode !== "async" && step !== this.step) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${rank} pulled for step ${step}, the job is at step ${this.step}`);
    }
  }

  /** What kind of worker an id is registered as, if it is. */
  kindOf(workerId: string): WorkerKind | undefined {
    if (this.compute?.workerId === workerId) return "compute";
    if (this.shards.has(workerId)) return "shard";
    return this.trainers.has(workerId) ? "trainer" : undefined;
  }

  workerOfRank(rank: number): string | undefined {
    return this.trainerOfRank(rank)?.workerId;
  }

  private trainerOfRank(rank: number): TrainerEntry | undefined {
    for (const t of this.trainers.values()) if (t.rank === rank) return t;
    return undefined;
  }

  /** Work for a trainer: held until it has batches, the job moves on, or ends. */
  getWork(workerId: string): Promise<Work> {
    const t = this.trainers.get(workerId);
    if (!t) return Promise.reject(OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `unknown trainer ${workerId}; call RegisterWorker first`));
    let now: Work | null;
    try {
      now = this.workNow(t);
    } catch (err) {
      return Promise.reject(err);
    }
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.waiters.get(workerId)?.({ done: false, state: this.state, step: this.step, batchIndices: [] });
      this.waiters.set(workerId, resolve);
    });
  }

  private workNow(t: TrainerEntry): Work | null {
    const ended = (): Work => ({ done: true, state: this.state, error: this.error, step: this.step, batchIndices: [] });
    if (this.isFinished()) return ended();
    if (!t.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${t.workerId} was declared dead; register again`);
    if (this.state === "JOB_STATE_WAITING" || !this.plan) return null;
    if (this.state === "JOB_STATE_EVALUATING" || this.plan.done) {
      if (this.evaluator === null && t.session) {
        this.evaluator = t.workerId;
        this.log.info({ workerId: t.workerId, rank: t.rank }, "trainer evaluates the held-out split");
        return { done: true, evaluate: true, state: this.state, step: this.step, batchIndices: [], computeAddress: this.compute?.address ?? "" };
      }
      return null;
    }
    const batches = this.plan.workFor(t.workerId);
    if (!batches.length) return null;
    return { step: this.step, batchIndices: batches, done: false, computeAddress: this.compute?.address ?? "" };
  }

  private wakeWorkers(): void {
    for (const [id, resolve] of [...this.waiters]) {
      const t = this.trainers.get(id);
      let w: Work | null;
      try {
        w = t ? this.workNow(t) : null;
      } catch {
        w = { done: true, state: this.state, error: `trainer ${id} was declared dead`, step: this.step, batchIndices: [] };
      }
      if (w) {
        this.waiters.delete(id);
        resolve(w);
      }
    }
  }

  async push(g: WorkerGradients): Promise<StepResult & { stale?: boolean; duplicate?: boolean }> {
    if (this.state !== "JOB_STATE_RUNNING" || !this.aggregator || !this.plan) {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `gradients refused: the job is ${this.state}${this.error ? `: ${this.error}` : ""}`);
    }
    const t = this.trainerOfRank(g.rank);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `no trainer with rank ${g.rank} is registered`);
    const j = g.batchIndex ?? -1;
    const plan = this.plan;
    const owner = plan.ownerOf(j);
    if (owner !== t.workerId) {
      if (plan.isFinished(j)) {
        // Its gradients arrived before (from this trainer's earlier life or the one it was given to): never apply a batch twice.
        this.counts.duplicateBatches++;
        return { step: this.step, meanLoss: g.loss, workers: 0, samples: 0, duplicate: true };
      }
      if (!t.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${t.workerId} (rank ${g.rank}) was declared dead; its batch ${j} went to another trainer`);
      throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `trainer ${t.workerId} (rank ${g.rank}) pushed batch ${j}, which ${owner ? `belongs to ${owner}` : "it was not given"}${this.config.mode === "async" ? "" : ` (step ${plan.step})`}`);
    }
    if (this.config.mode !== "async" && g.step !== this.step) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${g.rank} pushed gradients for step ${g.step}, the job is at step ${this.step}`);
    }
    this.aggregator.validate(g);
    t.batchesDone++;
    if (g.streamingAuc !== undefined && Number.isFinite(g.streamingAuc)) t.streamingAuc = g.streamingAuc;
    if (j >= 0 && j < this.applied.length) this.applied[j]!++;
    if (this.config.mode === "async") {
      const staleness = this.step - g.step;
      let result: StepResult;
      let stale = false;
      if (staleness > this.config.maxStaleness) {
        this.counts.staleGradients++;
        stale = true;
        result = { step: this.step, meanLoss: g.loss, workers: 0, samples: g.batchSize };
      } else {
        this.counts.maxStalenessSeen = Math.max(this.counts.maxStalenessSeen, staleness);
        result = this.aggregator.applyNow(g);
      }
      const finishedAll = plan.finish(j);
      this.recordProgress(result);
      if (finishedAll) this.finishTraining();
      else this.maybeCheckpoint(false);
      return { ...result, stale };
    }
    this.aggregator.add(g);
    if (!plan.finish(j)) return { step: this.step, meanLoss: g.loss, workers: 0, samples: 0 };
    const result = this.aggregator.applyStep();
    this.recordProgress(result);
    if (plan.done) this.finishTraining();
    else {
      this.maybeCheckpoint(false);
      plan.beginStep(this.liveTrainers());
      this.wakeWorkers();
    }
    return result;
  }

  private recordProgress(r: StepResult): void {
    const c = this.counts;
    this.samples += r.samples;
    if (Number.isNaN(c.firstLoss)) {
      c.firstLoss = r.meanLoss;
      // The 1-based step of the batch just finished (async: the step its index falls in).
      c.firstLossStep = Math.ceil(this.plan!.finishedBatches / this.batchesPerStep);
    }
    c.lastLoss = r.meanLoss;
    c.smoothedLoss = Number.isNaN(c.smoothedLoss) ? r.meanLoss : 0.95 * c.smoothedLoss + 0.05 * r.meanLoss;
  }

  /** Seconds this process has trained the job (0 before it started). */
  private runSeconds(): number {
    return this.startedAt ? ((this.endedAt || Date.now()) - this.startedAt) / 1000 : 0;
  }

  /** The running totals as they stand now, for a checkpoint. */
  private currentCounters(): JobCounters {
    const c = this.counts;
    return { ...c, reassignedBatches: this.plan?.reassigned ?? c.reassignedBatches, trainSeconds: c.trainSeconds + this.runSeconds(), syncRowsSent: this.syncStats?.rowsSent ?? c.syncRowsSent };
  }

  private progress(): TrainingProgress {
    const plan = this.plan!;
    return {
      mode: this.config.mode,
      batchesPerStep: this.batchesPerStep,
      step: plan.step,
      finishedBatches: plan.finishedBatches,
      outstanding: this.config.mode === "async" ? plan.outstanding() : [],
      denseUpdates: this.model!.dense.steps,
      batchSize: this.config.batchSize,
      samples: this.samples,
      counters: saveCounters(this.currentCounters()),
    };
  }

  /** Periodic checkpoints, at a step boundary: every N steps, or when N seconds have passed. */
  private maybeCheckpoint(final: boolean): void {
    const step = this.progressStep;
    const { checkpointEverySteps: everySteps, checkpointEverySeconds: everySeconds } = this.config;
    const due = final || (everySteps > 0 && step % everySteps === 0 && step > 0) || (everySeconds > 0 && Date.now() - this.lastCheckpointAt >= everySeconds * 1000);
    if (!due || this.checkpoints.at(-1)?.endsWith(`step-${step}`)) return;
    const m = this.model!;
    this.checkpointPath = saveCheckpoint(this.config.checkpointDir, this.config.jobId, step, m.spec, m.dense, m.store, { index: 0, count: this.config.psShards }, this.progress(), this.compute!.source.slotIds);
    this.lastCheckpointAt = Date.now();
    this.checkpoints.push(this.checkpointPath);
    if (this.config.keepCheckpoints > 0) {
      const removed = pruneCheckpoints(this.config.checkpointDir, this.config.jobId, this.config.keepCheckpoints, 0);
      for (const r of removed) this.checkpoints.splice(this.checkpoints.indexOf(r), 1);
    }
    this.log.info({ path: this.checkpointPath, step, rows: m.store.size() }, "checkpoint saved");
    if (this.config.exportDir && (final || exportedVersions(this.config.exportDir).length === 0)) this.exportCheckpoint(this.config.exportDir);
  }

  /** A failed export does not fail the job: the checkpoint it came from is intact and `pangea export` can write it later. */
  private exportCheckpoint(base: string): void {
    try {
      const { dir } = exportModel(this.checkpointPath, base, undefined, this.config.exportFeatureList);
      this.log.info({ path: dir, checkpoint: this.checkpointPath }, "model version exported");
    } catch (err) {
      this.log.error({ code: (err as PangeaError).code, checkpoint: this.checkpointPath }, `export to ${base} failed: ${(err as Error).message}; run pangea export --checkpoint ${this.checkpointPath} --out ${base}`);
    }
  }

  private finishTraining(): void {
    this.endedAt = Date.now();
    try {
      this.maybeCheckpoint(true);
    } catch (err) {
      this.fail(err as PangeaError);
      return;
    }
    this.state = "JOB_STATE_EVALUATING";
    this.wakeWorkers();
    // Serving gets the final rows and dense weights at once rather than at the next interval.
    const sync = this.sync;
    if (sync) void sync.push(true).finally(() => sync.stop());
    this.sync = null;
  }

  reportEval(report: EvalReport__Output): void {
    if (this.state !== "JOB_STATE_EVALUATING") {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `evaluation report refused: the job is ${this.state}`);
    }
    checkEvalReport(report, this.evaluator, Number(this.compute?.source.evalRecords ?? 0));
    this.evalReport = report;
    this.state = "JOB_STATE_COMPLETED";
    try {
      writeCompletion(this.config.checkpointDir, this.config.jobId, this.progressStep, report);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not record the job's completion; a restarted orchestrator would evaluate again");
    }
    this.log.info({ auc: report.auc, logloss: report.logloss, records: report.records }, "job completed");
    this.finish();
  }

  fail(err: PangeaError): void {
    if (this.isFinished()) return;
    this.error = `${err.code}: ${err.message}`;
    this.state = "JOB_STATE_FAILED";
    if (!this.endedAt) this.endedAt = Date.now();
    this.log.error({ code: err.code }, err.message);
    this.finish();
  }

  private finish(): void {
    clearTimeout(this.registerTimer);
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    this.sync?.stop();
    for (const t of [...this.trainers.values(), ...this.shards.values(), ...(this.compute ? [this.compute] : [])]) {
      if (t.session) this.endSession(t.session);
      t.session = null;
    }
    this.wakeWorkers();
    this.emit("finished", this.status());
  }

  isFinished(): boolean {
    return this.state === "JOB_STATE_COMPLETED" || this.state === "JOB_STATE_FAILED";
  }

  status(): JobStatus {
    const run = this.runSeconds();
    // Before the start: how long the job has been waiting for its workers.
    const elapsed = this.startedAt || this.config.completed ? this.counts.trainSeconds + run : (Date.now() - this.createdAt) / 1000;
    const c = this.currentCounters();
    const now = Date.now();
    const workers: WorkerStatus[] = [...this.trainers.values()].map((t) => ({
      workerId: t.workerId,
      kind: "WORKER_KIND_TRAINER",
      rank: t.rank,
      connected: t.session !== null,
      stepsDone: this.progressStep,
      batchesDone: t.batchesDone,
      heartbeatAgeSeconds: (now - t.lastBeat) / 1000,
      phaseSeconds: t.phaseSeconds,
      alive: t.alive,
    }));
    // Compute and shards have no heartbeat: they are alive while their session is open.
    if (this.compute) {
      const open = this.compute.session !== null;
      workers.push({ workerId: this.compute.workerId, kind: "WORKER_KIND_COMPUTE", address: this.compute.address, connected: open || this.state === "JOB_STATE_WAITING", alive: open });
    }
    for (const s of this.shards.values()) workers.push({ workerId: s.workerId, kind: "WORKER_KIND_PS_SHARD", rank: s.index, address: s.address, connected: s.session !== null, alive: s.session !== null });
    const backends = [...new Set([...this.trainers.values()].map((t) => t.backend).filter(Boolean))];
    const finished = this.plan?.finishedBatches ?? 0;
    let applied = 0;
    let missing = 0;
    const outstanding = new Set(this.plan?.outstanding() ?? []);
    for (let j = 0; j < this.applied.length; j++) {
      if (this.applied[j]! > 0) applied++;
      else if (j < finished + outstanding.size && !outstanding.has(j) && (this.config.mode === "async" || j < this.progressStep * this.batchesPerStep)) missing++;
    }
    return {
      jobId: this.config.jobId,
      state: this.state,
      step: this.progressStep,
      steps: this.config.steps,
      lastLoss: c.lastLoss,
      smoothedLoss: c.smoothedLoss,
      firstLoss: c.firstLoss,
      firstLossStep: c.firstLossStep,
      samples: this.samples,
      elapsedSeconds: elapsed,
      // This process's rate: the figure of the machines training now, not an average over a restart's downtime.
      samplesPerSecond: run > 0 ? (this.samples - (this.resumed?.samples ?? 0)) / run : 0,
      workers,
      eval: this.evalReport,
      source: this.compute?.source ?? null,
      checkpointPath: this.checkpointPath,
      error: this.error,
      embeddingRows: this.model?.store.size() ?? 0,
      embeddings: this.model ? storeStatus(this.model.store.stats()) : null,
      backend: backends.join(","),
      mode: this.config.mode,
      batchesApplied: applied,
      duplicateBatches: c.duplicateBatches,
      reassignedBatches: c.reassignedBatches,
      staleGradients: c.staleGradients,
      maxStalenessSeen: c.maxStalenessSeen,
      resumedFromStep: this.resumed?.step ?? 0,
      checkpoints: [...this.checkpoints],
      liveTrainers: this.liveTrainers().length,
      deadTrainers: c.deadTrainers,
      missingBatches: missing,
      streamingAuc: this.streamingAuc(),
    };
  }
}

/** The table settings of every slot --slot-config does not name. */
export function defaultSlotConfig(c: Pick<JobConfig, "sparseOptimizer" | "sparseLr">, dim: number): SlotConfig {
  return { dim, initializer: DEFAULT_INITIALIZER, optimizer: c.sparseOptimizer, hyper: { learningRate: c.sparseLr }, occurrenceThreshold: 0, expireSeconds: 0 };
}

function storeStatus(s: StoreStats) {
  return {
    rows: s.rows,
    bytes: s.bytes,
    filteredLookups: s.filtered,
    admittedIds: s.admitted,
    evictedRows: s.evicted,
    rejectedGradients: s.rejectedGradients,
    memoryLimitHits: s.memoryLimitHits,
    slots: s.perSlot.map((p) => ({ slot: p.slot, rows: p.rows, evictedRows: p.evicted })),
  };
}
