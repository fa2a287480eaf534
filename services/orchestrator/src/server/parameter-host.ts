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
  step?: number;
  /** The global batch it is for, and that batch's ticket ("" from a trainer that sends none). */
  batch?: number;
  ticket?: string;
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
   * ticket of the batch pulled for (`batch`, of the step pulled for in sync/hybrid), given to that token.
   */
  checkTrainingPull?(pull: TrainingPull, call: string): void;
  /** Ends the job (or this shard's part of it) for a reason no retry can cure, e.g. the memory limit. */
  fail(err: PangeaError): void;
}
