import type { Logger, PangeaError } from "@pangea/kit";
import type { ModelSpec } from "@pangea/model";
import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { exportModel, exportedVersions } from "../export/export-model.js";
import { pruneCheckpoints, saveCheckpoint, type TrainingProgress } from "./checkpoint.js";

export interface CheckpointSettings {
  checkpointDir: string;
  jobId: string;
  psShards: number;
  /** The parameter-server shard whose part this writes (0, the orchestrator, unless given). */
  shardIndex?: number;
  checkpointEverySteps: number;
  checkpointEverySeconds: number;
  keepCheckpoints: number;
  /** A model base path the final checkpoint (and the first, while it holds no version) is exported to. */
  exportDir?: string;
  exportFeatureList?: string;
}

/** What a shard's part of a checkpoint holds, read when one is due: shard 0 adds the dense parameters and the training progress. */
export interface CheckpointContent {
  spec: ModelSpec;
  dense: DenseStore | null;
  store: EmbeddingStore;
  progress?: TrainingProgress;
  slotIds: readonly number[];
}

/**
 * A parameter-server shard's checkpoints: when one is due (every N steps,
 * N seconds after the last, or the final one), writing its part, keeping the
 * newest --keep-checkpoints, and (shard 0) exporting a model version from it
 * where --export-dir asks.
 */
export class Checkpointer {
  /** The newest checkpoint written ("" before the first). */
  path = "";
  private readonly written: string[] = [];
  /** The step of the newest checkpoint written (-1 before the first). */
  private savedStep = -1;
  private lastAt = 0;

  constructor(
    private readonly s: CheckpointSettings,
    private readonly log: Logger,
  ) {}

  /** The checkpoints written and not pruned, oldest first. */
  list(): string[] {
    return [...this.written];
  }

  /** Time-based checkpoints count from here (the job's start). */
  startClock(at: number): void {
    this.lastAt = at;
  }

  /** At a step boundary: saves a checkpoint if one is due (always when `final`), unless `step` has one already. */
  maybeSave(final: boolean, step: number, content: () => CheckpointContent): void {
    const { checkpointEverySteps: everySteps, checkpointEverySeconds: everySeconds } = this.s;
    const index = this.s.shardIndex ?? 0;
    const due = final || (everySteps > 0 && step % everySteps === 0 && step > 0) || (everySeconds > 0 && Date.now() - this.lastAt >= everySeconds * 1000);
    if (!due || this.savedStep === step) return;
    const c = content();
    this.path = saveCheckpoint(this.s.checkpointDir, this.s.jobId, step, c.spec, c.dense, c.store, { index, count: this.s.psShards }, c.progress, c.slotIds);
    this.lastAt = Date.now();
    this.savedStep = step;
    this.written.push(this.path);
    if (this.s.keepCheckpoints > 0) {
      const removed = pruneCheckpoints(this.s.checkpointDir, this.s.jobId, this.s.keepCheckpoints, index);
      for (const r of removed) if (this.written.includes(r)) this.written.splice(this.written.indexOf(r), 1);
    }
    if (index === 0) this.log.info({ path: this.path, step, rows: c.store.size() }, "checkpoint saved");
    else this.log.info({ path: this.path, rows: c.store.size() }, "shard checkpoint saved");
    if (this.s.exportDir && (final || exportedVersions(this.s.exportDir).length === 0)) this.exportTo(this.s.exportDir);
  }

  /** A failed export does not fail the job: the checkpoint it came from is intact and `pangea export` can write it later. */
  private exportTo(base: string): void {
    try {
      const { dir } = exportModel(this.path, base, undefined, this.s.exportFeatureList);
      this.log.info({ path: dir, checkpoint: this.path }, "model version exported");
    } catch (err) {
      this.log.error({ code: (err as PangeaError).code, checkpoint: this.path }, `export to ${base} failed: ${(err as Error).message}; run pangea export --checkpoint ${this.path} --out ${base}`);
    }
  }
}
