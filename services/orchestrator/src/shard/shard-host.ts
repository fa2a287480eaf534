import type { Logger } from "@pangea/kit";
import type { JobSpec__Output } from "@pangea/schema";
import { EmbeddingStore, type SlotConfig } from "../embeddings/embedding-store.js";
import { SyncAggregator, type StepResult, type WorkerGradients } from "../aggregation/sync-aggregator.js";
import { reshard, restoreTables, saveCheckpoint, type CheckpointData } from "../checkpoint/checkpoint.js";
import { OrchestratorErrors } from "../errors.js";
import type { HostedModel, ParameterHost } from "../server/parameter-host.js";
import type { PangeaError } from "@pangea/kit";

export interface ShardSettings {
  index: number;
  defaults: SlotConfig;
  perSlot: ReadonlyMap<number, SlotConfig>;
  seed: number;
  maxEmbeddingBytes: number;
  checkpointDir: string;
  restoreFrom?: readonly CheckpointData[];
}

/**
 * A parameter-server shard other than 0: the embedding rows of the ids with
 * id % shards == index, no dense parameters. It learns the job (world size,
 * steps, slots) from the orchestrator's session and steps in lock-step with
 * it, since every trainer pushes to every shard at every step.
 */
export class ShardHost implements ParameterHost {
  private model: HostedModel | null = null;
  private aggregator: SyncAggregator | null = null;
  private job: JobSpec__Output | null = null;
  private failure: PangeaError | null = null;
  checkpointPath = "";

  constructor(private readonly s: ShardSettings, private readonly log: Logger) {}

  get step(): number {
    return this.aggregator?.currentStep ?? 0;
  }

  start(job: JobSpec__Output): void {
    if (this.job) return;
    this.job = job;
    const m = job.model!;
    const spec = { numDense: m.numDense, numSlots: m.slotIds.length, embeddingDim: m.embeddingDim, bottomMlp: m.bottomMlp, topMlp: m.topMlp };
    const store = new EmbeddingStore(this.s.defaults, this.s.perSlot, this.s.seed, this.s.maxEmbeddingBytes || undefined);
    store.declareSlots(m.slotIds);
    if (this.s.restoreFrom) {
      restoreTables(reshard(this.s.restoreFrom, job.psShards.length)[this.s.index]!, store);
      this.log.info({ rows: store.size() }, "shard rows restored from checkpoint");
    }
    this.model = { spec, store, dense: null };
    this.aggregator = new SyncAggregator(job.worldSize, null, store);
    this.log.info({ job: job.jobId, shard: this.s.index, of: job.psShards.length }, "shard serving the job");
  }

  fail(err: PangeaError): void {
    this.failure = err;
    this.aggregator?.abort(err);
  }

  requireModel(readOnly: boolean): HostedModel {
    if (this.failure) throw this.failure;
    if (!this.model) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `parameter-server shard ${this.s.index} has no job yet`);
    if (!readOnly && this.job && this.step >= Number(this.job.steps)) {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `training on shard ${this.s.index} is over (step ${this.step})`);
    }
    return this.model;
  }

  async push(g: WorkerGradients): Promise<StepResult> {
    this.requireModel(false);
    const result = await this.aggregator!.accept(g);
    if (result.step >= Number(this.job!.steps) && !this.checkpointPath) {
      const m = this.model!;
      this.checkpointPath = saveCheckpoint(this.s.checkpointDir, this.job!.jobId, result.step, m.spec, null, m.store, {
        index: this.s.index,
        count: this.job!.psShards.length,
      });
      this.log.info({ path: this.checkpointPath, rows: m.store.size() }, "shard checkpoint saved");
    }
    return result;
  }
}
