import { EventEmitter } from "node:events";
import type { Logger } from "@pangea/kit";
import { validateSpec, type DlrmSpec } from "@pangea/model";
import type { EvalReport__Output, JobSpec, JobState, JobStatus, SourceInfo__Output, WorkerEvent, WorkerStatus } from "@pangea/schema";
import { EmbeddingStore, type SlotConfig, type StoreStats } from "../embeddings/embedding-store.js";
import { DEFAULT_INITIALIZER } from "../embeddings/initializer.js";
import { DenseStore } from "../params/dense-store.js";
import { SyncAggregator, type StepResult, type WorkerGradients } from "../aggregation/sync-aggregator.js";
import { reshard, restoreTables, saveCheckpoint, type CheckpointData } from "../checkpoint/checkpoint.js";
import type { SparseOptimizerName } from "../optim/sparse-optimizers.js";
import { OrchestratorErrors } from "../errors.js";
import type { PangeaError } from "@pangea/kit";

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
  sparseLr: number;
  sparseOptimizer: SparseOptimizerName;
  /** Table settings of slots --slot-config does not name. */
  slotDefaults?: SlotConfig;
  /** Per-slot table settings, from --slot-config; slots not named use the defaults. */
  slotConfigs: ReadonlyMap<number, SlotConfig>;
  maxEmbeddingBytes: number;
  expireSweepSeconds: number;
  /** Parameter-server shards in all, this process (shard 0) included. */
  psShards: number;
  gradientCompression: "none" | "fp16";
  /** A checkpoint (its shards, loaded and checked at start) to begin from instead of fresh parameters. */
  restoreFrom?: readonly CheckpointData[];
  seed: number;
  checkpointDir: string;
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
}

export interface JobModel {
  spec: DlrmSpec;
  dense: DenseStore;
  store: EmbeddingStore;
}

/**
 * One training job's state machine: WAITING (for compute and the expected
 * trainers) -> RUNNING (synchronous steps) -> EVALUATING (rank 0 scores the
 * held-out split) -> COMPLETED, or FAILED from any state with one reason.
 * A trainer's session stream is its liveness: if it breaks before the
 * trainer's part is done, the job fails at once instead of waiting forever.
 */
export class Job extends EventEmitter<{ finished: [JobStatus] }> {
  state: JobState = "JOB_STATE_WAITING";
  private compute: { workerId: string; address: string; source: SourceInfo__Output } | null = null;
  private readonly trainers = new Map<string, TrainerEntry>();
  /** Parameter-server shards 1..psShards-1, by worker id. */
  private readonly shards = new Map<string, { workerId: string; index: number; address: string; session: SessionSink | null }>();
  /** The address trainers use to reach this process's parameter server (shard 0). */
  address = "";
  model: JobModel | null = null;
  private aggregator: SyncAggregator | null = null;
  private startedAt = 0;
  private endedAt = 0;
  private samples = 0;
  private firstLoss = Number.NaN;
  private lastLoss = Number.NaN;
  private smoothedLoss = Number.NaN;
  private evalReport: EvalReport__Output | null = null;
  private checkpointPath = "";
  private error = "";
  private readonly registerTimer: NodeJS.Timeout;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly createdAt = Date.now();

  constructor(readonly config: JobConfig, private readonly log: Logger) {
    super();
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
  }

  get step(): number {
    return this.aggregator?.currentStep ?? 0;
  }

  registerCompute(workerId: string, address: string, source: SourceInfo__Output | null): void {
    if (!address) throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered without an address`);
    if (!source || source.numDense < 1 || source.slotIds.length < 1) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered without a usable source description (dense features and slots)`);
    }
    if (this.state !== "JOB_STATE_WAITING" && this.compute?.workerId !== workerId) {
      throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `compute ${workerId} registered after the job started with ${this.compute?.workerId}`);
    }
    this.compute = { workerId, address, source };
    this.log.info({ workerId, address, source: source.description }, "compute registered");
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

  registerTrainer(workerId: string): { rank: number; worldSize: number } {
    const existing = this.trainers.get(workerId);
    if (existing) return { rank: existing.rank, worldSize: this.config.trainers };
    if (this.state !== "JOB_STATE_WAITING" || this.trainers.size >= this.config.trainers) {
      throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `trainer ${workerId} refused: the job expects ${this.config.trainers} trainers and already has them`);
    }
    const rank = this.trainers.size;
    this.trainers.set(workerId, { workerId, rank, session: null, backend: "" });
    this.log.info({ workerId, rank }, "trainer registered");
    return { rank, worldSize: this.config.trainers };
  }

  /** A trainer's or parameter-server shard's session: the job's start and end go down it. */
  openSession(workerId: string, sink: SessionSink): void {
    const member = this.shards.get(workerId) ?? this.trainers.get(workerId);
    if (!member) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `session for unregistered worker ${workerId}; call RegisterWorker first`);
    if (this.isFinished()) {
      sink.send({ jobFinished: { state: this.state, error: this.error } });
      sink.end();
      return;
    }
    member.session = sink;
    if (this.state !== "JOB_STATE_WAITING") sink.send({ jobStarted: this.jobSpec() });
    this.maybeStart();
  }

  /** A session stream ended: fine once the trainer's part is done, fatal before. */
  sessionClosed(workerId: string, sink: SessionSink): void {
    const shard = this.shards.get(workerId);
    if (shard && shard.session === sink) {
      shard.session = null;
      if (this.isFinished() || this.state === "JOB_STATE_WAITING") return;
      this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `parameter-server shard ${workerId} (index ${shard.index}) disconnected at step ${this.step} of ${this.config.steps}`));
      return;
    }
    const t = this.trainers.get(workerId);
    if (!t || t.session !== sink) return;
    t.session = null;
    if (this.isFinished()) return;
    const trainingDone = this.state === "JOB_STATE_EVALUATING" || (this.model !== null && this.step >= this.config.steps);
    if (trainingDone && t.rank !== 0) return;
    if (this.state === "JOB_STATE_WAITING") {
      this.log.warn({ workerId, rank: t.rank }, "trainer disconnected before the job started");
      return;
    }
    this.fail(
      OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `trainer ${workerId} (rank ${t.rank}) disconnected at step ${this.step} of ${this.config.steps}`),
    );
  }

  setBackend(workerId: string, backend: string): void {
    const t = this.trainers.get(workerId);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `unknown worker ${workerId}`);
    t.backend = backend;
  }

  private maybeStart(): void {
    if (this.state !== "JOB_STATE_WAITING" || !this.compute) return;
    const ready = [...this.trainers.values()].filter((t) => t.session);
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
    const dense = new DenseStore(spec, this.config.seed, this.config.denseLr);
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
        dense.restore(ck[0]!.dense, ck[0]!.adamM, ck[0]!.adamV);
        restoreTables(reshard(ck, this.config.psShards)[0]!, store);
        this.log.info({ step: ck[0]!.manifest.step, rows: store.size(), shards: `${ck.length} -> ${this.config.psShards}` }, "parameters restored from checkpoint");
      } catch (err) {
        this.fail(OrchestratorErrors.is(err) ? err : OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", (err as Error).message));
        return;
      }
    }
    this.model = { spec, dense, store };
    this.aggregator = new SyncAggregator(this.config.trainers, dense, store);
    if (defaults.expireSeconds > 0 || [...this.config.slotConfigs.values()].some((c) => c.expireSeconds > 0)) {
      this.sweeper = setInterval(() => {
        const n = store.sweep();
        if (n > 0) this.log.info({ evicted: n, rows: store.size() }, "expired embedding rows evicted");
      }, this.config.expireSweepSeconds * 1000);
      this.sweeper.unref();
    }
    this.state = "JOB_STATE_RUNNING";
    this.startedAt = Date.now();
    clearTimeout(this.registerTimer);
    const jobSpec = this.jobSpec();
    this.log.info({ jobSpec, denseParams: dense.totalElements() }, "job started");
    for (const t of [...this.shards.values(), ...this.trainers.values()]) t.session?.send({ jobStarted: jobSpec });
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
      worldSize: this.config.trainers,
      computeAddress: this.compute!.address,
      seed: this.config.seed,
      evalBatchSize: this.config.evalBatchSize,
      gradientCompression: this.config.gradientCompression,
      psShards: [this.address, ...[...this.shards.values()].sort((a, b) => a.index - b.index).map((s) => s.address)],
    };
  }

  /** The running model, for parameter pulls; throws unless a job has started. */
  requireModel(readOnly: boolean): JobModel {
    if (!this.model) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `no parameters yet: the job is ${this.state}`);
    if (!readOnly && this.state !== "JOB_STATE_RUNNING") {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `training pulls need a running job; the job is ${this.state}${this.error ? `: ${this.error}` : ""}`);
    }
    return this.model;
  }

  rankExists(rank: number): boolean {
    return rank < this.config.trainers && [...this.trainers.values()].some((t) => t.rank === rank);
  }

  async push(g: WorkerGradients): Promise<StepResult> {
    if (this.state !== "JOB_STATE_RUNNING" || !this.aggregator) {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `gradients refused: the job is ${this.state}${this.error ? `: ${this.error}` : ""}`);
    }
    if (!this.rankExists(g.rank)) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `no trainer with rank ${g.rank} is registered`);
    const result = await this.aggregator.accept(g);
    if (g.rank === 0) this.recordStep(result);
    return result;
  }

  private recordStep(r: StepResult): void {
    this.samples += r.samples;
    if (Number.isNaN(this.firstLoss)) this.firstLoss = r.meanLoss;
    this.lastLoss = r.meanLoss;
    this.smoothedLoss = Number.isNaN(this.smoothedLoss) ? r.meanLoss : 0.95 * this.smoothedLoss + 0.05 * r.meanLoss;
    if (r.step >= this.config.steps && this.state === "JOB_STATE_RUNNING") this.finishTraining();
  }

  private finishTraining(): void {
    this.endedAt = Date.now();
    const m = this.model!;
    try {
      this.checkpointPath = saveCheckpoint(this.config.checkpointDir, this.config.jobId, this.step, m.spec, m.dense, m.store, { index: 0, count: this.config.psShards });
      this.log.info({ path: this.checkpointPath, rows: m.store.size() }, "checkpoint saved");
    } catch (err) {
      this.fail(err as PangeaError);
      return;
    }
    this.state = "JOB_STATE_EVALUATING";
  }

  reportEval(report: EvalReport__Output): void {
    if (this.state !== "JOB_STATE_EVALUATING") {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `evaluation report refused: the job is ${this.state}`);
    }
    this.evalReport = report;
    this.state = "JOB_STATE_COMPLETED";
    this.log.info({ auc: report.auc, logloss: report.logloss, records: report.records }, "job completed");
    this.finish();
  }

  fail(err: PangeaError): void {
    if (this.isFinished()) return;
    this.error = `${err.code}: ${err.message}`;
    this.state = "JOB_STATE_FAILED";
    if (!this.endedAt) this.endedAt = Date.now();
    clearTimeout(this.registerTimer);
    if (this.sweeper) clearInterval(this.sweeper);
    this.log.error({ code: err.code }, err.message);
    this.aggregator?.abort(err);
    this.finish();
  }

  private finish(): void {
    for (const t of [...this.trainers.values(), ...this.shards.values()]) {
      t.session?.send({ jobFinished: { state: this.state, error: this.error } });
      t.session?.end();
      t.session = null;
    }
    this.emit("finished", this.status());
  }

  isFinished(): boolean {
    return this.state === "JOB_STATE_COMPLETED" || this.state === "JOB_STATE_FAILED";
  }

  status(): JobStatus {
    const end = this.endedAt || Date.now();
    const elapsed = this.startedAt ? (end - this.startedAt) / 1000 : (Date.now() - this.createdAt) / 1000;
    const workers: WorkerStatus[] = [...this.trainers.values()].map((t) => ({
      workerId: t.workerId,
      kind: "WORKER_KIND_TRAINER",
      rank: t.rank,
      connected: t.session !== null,
      stepsDone: this.step,
    }));
    if (this.compute) workers.push({ workerId: this.compute.workerId, kind: "WORKER_KIND_COMPUTE", address: this.compute.address, connected: true });
    for (const s of this.shards.values()) workers.push({ workerId: s.workerId, kind: "WORKER_KIND_PS_SHARD", rank: s.index, address: s.address, connected: s.session !== null });
    const backends = [...new Set([...this.trainers.values()].map((t) => t.backend).filter(Boolean))];
    return {
      jobId: this.config.jobId,
      state: this.state,
      step: this.step,
      steps: this.config.steps,
      lastLoss: this.lastLoss,
      smoothedLoss: this.smoothedLoss,
      firstLoss: this.firstLoss,
      samples: this.samples,
      elapsedSeconds: elapsed,
      samplesPerSecond: this.startedAt && elapsed > 0 ? this.samples / elapsed : 0,
      workers,
      eval: this.evalReport,
      source: this.compute?.source ?? null,
      checkpointPath: this.checkpointPath,
      error: this.error,
      embeddingRows: this.model?.store.size() ?? 0,
      embeddings: this.model ? storeStatus(this.model.store.stats()) : null,
      backend: backends.join(","),
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
