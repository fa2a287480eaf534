import type { ArchitectureConfig } from "@pangea/model";
import type { EvalReport__Output } from "@pangea/schema";
import type { SlotConfig } from "../embeddings/embedding-store.js";
import type { CheckpointData } from "../checkpoint/checkpoint.js";
import type { TrainingMode } from "./work-plan.js";
import type { SparseOptimizerName } from "../optim/sparse-optimizers.js";
import type { DenseOptimizerName } from "../optim/optimizers.js";
import type { BestMetric } from "@pangea/service-flags";

export interface JobConfig {
  jobId: string;
  trainers: number;
  steps: number;
  batchSize: number;
  evalBatchSize: number;
  embeddingDim: number;
  /** The architecture and its hyper-parameters (--model, --model-config; dlrm's --bottom-mlp/--top-mlp), checked at start. */
  architecture: ArchitectureConfig;
  denseLr: number;
  denseOptimizer: DenseOptimizerName;
  /** Coupled L2 on the dense parameters (--dense-l2; 0 = none). */
  denseL2: number;
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
  /** --restore-from's directory, for the job's status (absent for --resume and fresh starts). */
  restoredFromDir?: string;
  /** Continue the checkpoint's training (step, data position, optimizer clock) instead of only taking its parameters. */
  resume?: boolean;
  /** Said at the start, in the job's status warnings (a newer checkpoint --resume could not read and passed over). */
  startWarnings?: readonly string[];
  /** The resumed checkpoint is the final one of a job that completed with this evaluation: the job starts completed. */
  completed?: EvalReport__Output;
  /** The completed job's final evaluation when --steps trains on past it: kept in the evaluation history. */
  completedBefore?: EvalReport__Output;
  mode: TrainingMode;
  /** Global batches per step; 0 = one per expected trainer. */
  batchesPerStep: number;
  maxStaleness: number;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  /** A batch held this long without its gradients, or an evaluation without its report, declares its trainer dead (0 = never). */
  stallTimeoutSeconds?: number;
  /** What a lost trainer means: its batches go to the others, or the job fails. */
  onTrainerLoss: "reassign" | "fail";
  /** Evaluate the held-out split every N steps while training too (0 = only at the end). */
  evalEverySteps?: number;
  /** Checkpoint the step of the best evaluation so far, never pruned, and export it at the end instead of the last step. */
  keepBest?: boolean;
  /** What keep-best compares, of which task (absent: the first task). */
  bestMetric?: BestMetric;
  bestTask?: string;
  checkpointEverySteps: number;
  checkpointEverySeconds: number;
  keepCheckpoints: number;
  /** Serving replicas to push changed rows and dense weights to (ParameterSync). */
  servingSync?: readonly string[];
  /** The serving replicas etcd announces, for --serving-sync discovery (main.ts gives it from --discovery). */
  servingReplicas?: () => Promise<readonly string[]>;
  /** Serving's API token for parameter sync pushes (read from --serving-sync-token-file). */
  servingSyncToken?: string;
  syncIntervalSeconds?: number;
  denseSyncIntervalSeconds?: number;
  seed: number;
  checkpointDir: string;
  /** The job's lock file, which the orchestrator holds: its checkpoints are not written once it is gone (see CheckpointSettings). */
  lockFile?: string;
  /** A model base path the final checkpoint (and the first, while it holds no version) is exported to. */
  exportDir?: string;
  /** The feature list copied into each export. */
  exportFeatureList?: string;
  registerTimeoutMs: number;
}
