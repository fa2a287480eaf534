import type { Logger, PangeaError } from "@pangea/kit";
import type { DlrmSpec } from "@pangea/model";
import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { exportModel, exportedVersions } from "../export/export-model.js";
import { pruneCheckpoints, saveCheckpoint, type TrainingProgress } from "./checkpoint.js";

export interface CheckpointSettings {
  checkpointDir: string;
  jobId: string;
  psShards: number;
  checkpointEverySteps: number;
  checkpointEverySeconds: number;
  keepCheckpoints: number;
  /** A model base path the final checkpoint (and the first, while it holds no version) is exported to. */
  exportDir?: string;
  exportFeatureList?: string;
}

/** What a checkpoint of shard 0 holds, read when one is due. */
export interface CheckpointContent {
  spec: DlrmSpec;
  dense: DenseStore;
  store: EmbeddingStore;
  progress: TrainingProgress;
  slotIds: number[];
}

/**
 * Shard 0's checkpoints: when one is due (every N steps, N seconds after the
 * last, or the final one), writing it, keeping the newest --keep-checkpoints,
 * and exporting a model version from it where --export-dir asks.
 */
export class Checkpointer {
  /** The newest checkpoint written ("" before the first). */
  path = "";
  private readonly written: string[] = [];
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
    const due = final || (everySteps > 0 && step % everySteps === 0 && step > 0) || (everySeconds > 0 && Date.now() - this.lastAt >= everySeconds * 1000);
    if (!due || this.written.at(-1)?.endsWith(`step-${step}`)) return;
    const c = content();
    this.path = saveCheckpoint(this.s.checkpointDir, this.s.jobId, step, c.spec, c.dense, c.store, { index: 0, count: this.s.psShards }, c.progress, c.slotIds);
    this.lastAt = Date.now();
    this.written.push(this.path);
    if (this.s.keepCheckpoints > 0) {
      const removed = pruneCheckpoints(this.s.checkpointDir, this.s.jobId, this.s.keepCheckpoints, 0);
      for (const r of removed) this.written.splice(this.written.indexOf(r), 1);
    }
    this.log.info({ path: this.path, step, rows: c.store.size() }, "checkpoint saved");
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
