import type { BestCheckpoint, EvalReport__Output, JobState, JobStatus, SourceInfo__Output } from "@pangea/schema";
import type { StoreStats } from "../embeddings/embedding-store.js";
import type { JobCounters } from "./job-counters.js";
import type { JobModel } from "./job-model.js";
import type { Membership } from "./membership.js";
import { WARMUP_STEPS, type StepCoordinator } from "./step-coordinator.js";
import type { TrainingMode } from "./work-plan.js";
import { buildTaskStatuses, type TaskLosses } from "./task-status.js";
import { describeArchitecture, taskCount, tasksOf } from "@pangea/model";

/** Everything GetJobStatus reports, gathered from the job's parts. */
export interface StatusParts {
  jobId: string;
  state: JobState;
  error: string;
  /** The failure's exit code (its error's), 0 while the job has not failed. */
  errorExitCode: number;
  mode: TrainingMode;
  steps: number;
  progressStep: number;
  /** Seconds the job has trained over all its runs (before the start: seconds waiting for workers). */
  elapsedSeconds: number;
  /** Seconds this process has trained, and the samples it started from. */
  runSeconds: number;
  /** This process's rate after its first WARMUP_STEPS steps (0 before). */
  afterWarmup: number;
  samples: number;
  resumedSamples: number;
  resumedFromStep: number;
  /** --restore-from's checkpoint, "DIR (step N of job J)", or "". */
  restoredFrom: string;
  counters: JobCounters;
  members: Membership;
  coordinator: StepCoordinator | null;
  model: JobModel | null;
  evalReport: EvalReport__Output | null;
  /** Every evaluation so far, oldest first, and --keep-best's best. */
  evaluations: readonly EvalReport__Output[];
  best: BestCheckpoint | null;
  taskLosses: TaskLosses;
  source: SourceInfo__Output | null;
  checkpointPath: string;
  checkpoints: string[];
  /** --export-dir: the last export's version directory, or why it failed. */
  lastExport: { dir: string; error: string };
  /** A job that started completed has no model or coordinator here: its final checkpoint's batches, embedding rows and model (describeArchitecture). */
  final?: { batchesApplied: number; embeddingRows: number; model: string };
  /** A job completed on several shards: every shard's embedding rows (its final checkpoint's parts). */
  everyShardsRows?: number;
  /** Batches whose part another shard never got (a trainer pushed them to shard 0 alone), from the shards' reports. */
  shardPartsSkipped: number;
}

export function buildJobStatus(p: StatusParts): JobStatus {
  const c = p.counters;
  const { applied, missing } = p.coordinator?.batchTally() ?? { applied: p.final?.batchesApplied ?? 0, missing: 0 };
  return {
    jobId: p.jobId,
    state: p.state,
    step: p.progressStep,
    steps: p.steps,
    lastLoss: c.lastLoss,
    smoothedLoss: c.smoothedLoss,
    firstLoss: c.firstLoss,
    firstLossStep: c.firstLossStep,
    samples: p.samples,
    elapsedSeconds: p.elapsedSeconds,
    // This process's rate: the figure of the machines training now, not an average over a restart's downtime.
    samplesPerSecond: p.runSeconds > 0 ? (p.samples - p.resumedSamples) / p.runSeconds : 0,
    samplesPerSecondAfterWarmup: p.afterWarmup,
    warmupSteps: p.afterWarmup > 0 ? WARMUP_STEPS : 0,
    workers: p.members.workerStatuses(p.state === "JOB_STATE_WAITING"),
    eval: p.evalReport,
    evaluations: [...p.evaluations],
    best: p.best,
    source: p.source,
    checkpointPath: p.checkpointPath,
    exported: p.lastExport.dir,
    exportError: p.lastExport.error,
    warnings: p.model?.warnings ?? [],
    error: p.error,
    errorExitCode: p.errorExitCode,
    embeddingRows: p.everyShardsRows ?? p.model?.store.size() ?? p.final?.embeddingRows ?? 0,
    // The final checkpoint's figure (a completed job reported from it, or counted at the end) covers every shard.
    embeddingRowsEveryShard: p.everyShardsRows !== undefined || (!p.model && p.final !== undefined),
    embeddings: p.model ? storeStatus(p.model.store.stats()) : null,
    backend: p.members.backends().join(","),
    model: p.model ? describeArchitecture(p.model.spec) : (p.final?.model ?? ""),
    mode: p.mode,
    batchesApplied: applied,
    duplicateBatches: c.duplicateBatches,
    reassignedBatches: c.reassignedBatches,
    staleGradients: c.staleGradients,
    maxStalenessSeen: c.maxStalenessSeen,
    resumedFromStep: p.resumedFromStep,
    restoredFrom: p.restoredFrom,
    checkpoints: p.checkpoints,
    liveTrainers: p.members.liveTrainers().length,
    deadTrainers: c.deadTrainers,
    missingBatches: missing,
    shardPartsSkipped: p.shardPartsSkipped,
    streamingAuc: p.members.streamingAuc(),
    tasks: buildTaskStatuses({
      tasks: p.model ? tasksOf(p.model.spec) : null,
      lastLoss: c.lastLoss,
      smoothedLoss: c.smoothedLoss,
      losses: p.taskLosses,
      streamingAuc: p.model ? p.members.taskStreamingAuc(taskCount(p.model.spec)) : [],
      scalarStreamingAuc: p.members.streamingAuc(),
      evalReport: p.evalReport,
      source: p.source,
    }),
  };
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
    slots: s.perSlot.map((p) => ({ slot: p.slot, rows: p.rows, evictedRows: p.evicted, rowWidth: p.rowWidth, bytes: p.bytes })),
  };
}
