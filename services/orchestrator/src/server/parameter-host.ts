import type { PangeaError } from "@pangea/kit";
import type { ModelSpec } from "@pangea/model";
import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import type { StepResult, WorkerGradients } from "../aggregation/gradient-aggregator.js";

/** What a parameter server serves from: the job's coordinator (shard 0, with the dense parameters) or another shard. */
export interface HostedModel {
  spec: ModelSpec;
  store: EmbeddingStore;
  /** Only shard 0 holds the dense parameters. */
  dense: DenseStore | null;
}

/** What a training pull says of itself, for the checks of who may make rows. */
export interface TrainingPull {
  rank: number;
  token: string;
  /** Sent ahead (sync/hybrid, shard 0): held until its step is planned. */
  ahead?: boolean;
  /** The batches a pull sent ahead names (its step's batches, as the trainer expects them to be its). */
  aheadBatches?: readonly number[];
  step?: number;
  /** The global batch it is for, and that batch's ticket ("" from a trainer that sends none). */
  batch?: number;
  ticket?: string;
  /** Compute's seal on the batch's count of feature ids, and that count ("" / 0 from a trainer that sends none). */
  batchIds?: number;
  batchIdsSeal?: string;
}

/** The batch a training pull makes rows for, and how many feature ids compute sealed it with: at most that many rows. */
export interface SealedBatch {
  /** The run of the job it is of (runOf): batch indices and tables start again with each. */
  run: string;
  batch: number;
  ids: number;
  /** Compute's seal: a stream source serves other records under an index asked for again, with another seal. */
  seal: string;
}

export interface ParameterHost {
  readonly step: number;
  requireModel(readOnly: boolean): HostedModel;
  /** Throws unless a training pull for `step` may be served now. */
  checkPullStep(step: number, rank: number): void;
  /**
   * A pull sent ahead (sync/hybrid): resolves true when it is to be served,
   * false when withdrawn (`workingOn`: the batches the trainer holds at the
   * step before). Only the coordinator (shard 0) knows the plan.
   */
  holdPull?(step: number, rank: number, batches: readonly number[], workingOn: readonly number[], cancelled?: AbortSignal): Promise<boolean>;
  push(g: WorkerGradients): Promise<StepResult & { stale?: boolean; duplicate?: boolean }>;
  /** The trainer holding a rank, where this host knows it (the coordinator; shards do not). */
  workerOfRank?(rank: number): string | undefined;
  /**
   * Refuses a push for `rank` of batch `batch` the host does not take: the coordinator wants the token of the trainer
   * holding the rank now (and its plan says whose the batch is), the other shards a token issued for the rank and the
   * batch's ticket for that token (with the keys their registration gave).
   */
  checkPush?(push: { rank: number; token: string; batch: number; ticket: string }, call: string): void;
  /**
   * Refuses a training pull for `rank` without its token: the coordinator wants the token of the trainer holding the
   * rank now (and a trainer holding a batch), the other shards a token issued for the rank and not revoked, and the
   * ticket of the batch pulled for (`batch`, of the step pulled for in sync/hybrid), given to that token. A host
   * holding the key trainers' tokens are made with also wants compute's seal on the batch's count of ids (good for the
   * job's batch size), and returns the batch it sealed (the pull's rows are then bounded by BatchRowBudget); null
   * from a host that holds no key (nothing to check the seal with).
   */
  checkTrainingPull?(pull: TrainingPull, call: string): SealedBatch | null;
  /** Whether no training pull for global batch `batch` can be taken any more (its rows' count is then forgotten). */
  batchDone?(batch: number): boolean;
  /** Ends the job (or this shard's part of it) for a reason no retry can cure, e.g. the memory limit. */
  fail(err: PangeaError): void;
}
