import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger, PangeaError } from "@pangea/kit";
import { OrchestratorErrors } from "../errors.js";
import type { ModelSpec } from "@pangea/model";
import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { exportModel, exportedVersions, versionExportedFrom } from "../export/export-model.js";
import { jobCheckpointDir, pruneCheckpoints, pruneRetiredShardParts, removeUnfinishedWrites, saveCheckpoint, type TrainingProgress } from "./checkpoint.js";
import { protectedStep } from "./best-checkpoint.js";
import { jobDirGone } from "./job-dir-gone.js";

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
  /** --keep-best: the job exports its best checkpoint when it completes, not the final one. */
  exportBest?: boolean;
  /**
   * The job's lock file (the orchestrator's): gone, the job's directory was removed under the job, and a checkpoint
   * written now would make it again with no lock guarding it. Checked before each write.
   */
  lockFile?: string;
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
 * N seconds after the last, or the final one; shard 0 decides for all),
 * writing its part, and once the checkpoint is whole, keeping the newest
 * --keep-checkpoints and (shard 0) exporting a model version from it where
 * --export-dir asks.
 */
export class Checkpointer {
  /** The newest checkpoint written ("" before the first). */
  path = "";
  private readonly written: string[] = [];
  /** The step of the newest checkpoint written (-1 before the first). */
  private savedStep = -1;
  /** The step of the newest whole (committed) checkpoint (-1 before the first). */
  committedStep = -1;
  private lastAt = 0;
  /** Parts written and not yet committed, by step. */
  private readonly parts = new Map<number, { path: string; rows: number }>();
  /** Checkpoints this process exported, and the version directory each became. */
  private readonly exported = new Map<string, string>();
  /** The last export's version directory and, if it failed, why (the job's status reports both). */
  lastExport: { dir: string; error: string } = { dir: "", error: "" };

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

  /** At a step boundary: whether a checkpoint is due (always when `final`), unless `step` has one already. */
  due(final: boolean, step: number): boolean {
    const { checkpointEverySteps: everySteps, checkpointEverySeconds: everySeconds } = this.s;
    const due = final || (everySteps > 0 && step % everySteps === 0 && step > 0) || (everySeconds > 0 && Date.now() - this.lastAt >= everySeconds * 1000);
    return due && this.savedStep !== step;
  }

  /** Single-shard use: saves and commits a checkpoint if one is due. */
  maybeSave(final: boolean, step: number, content: () => CheckpointContent): void {
    if (!this.due(final, step)) return;
    this.write(step, content());
    this.commit(step, final);
  }

  /**
   * Writes this shard's part of the checkpoint of `step`. It counts as a
   * checkpoint (listed, pruning older ones, exported) only once committed:
   * with several shards, shard 0 commits when every shard has written its part.
   */
  write(step: number, c: CheckpointContent): string {
    const index = this.s.shardIndex ?? 0;
    const guarded = this.s.lockFile !== undefined;
    if (guarded && !existsSync(this.s.lockFile!)) throw jobDirGone(jobCheckpointDir(this.s.checkpointDir, this.s.jobId), `${this.s.lockFile} is gone`);
    // Guarded, the write does not make the job's directory: removed since the look above, it fails the same way.
    const path = saveCheckpoint(this.s.checkpointDir, this.s.jobId, step, c.spec, c.dense, c.store, { index, count: this.s.psShards }, c.progress, c.slotIds, guarded);
    this.lastAt = Date.now();
    this.savedStep = step;
    this.parts.set(step, { path, rows: c.store.size() });
    return path;
  }

  /** The written part of `step` is a whole checkpoint now: it becomes the newest, older ones are pruned, and (shard 0) exported where asked. */
  commit(step: number, final: boolean): void {
    const part = this.parts.get(step);
    if (!part) throw new Error(`checkpoint of step ${step} committed before it was written`);
    // Its part removed (or the job's directory replaced) while the other shards wrote theirs: not a checkpoint to name as the newest.
    if (!existsSync(join(part.path, "manifest.json"))) {
      throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `the checkpoint of step ${step} is gone from ${part.path} before it was whole`);
    }
    for (const s of this.parts.keys()) if (s <= step) this.parts.delete(s);
    const index = this.s.shardIndex ?? 0;
    this.path = part.path;
    this.committedStep = step;
    this.written.push(this.path);
    // The checkpoint is whole: what cannot be cleaned up around it (an immutable or read-only old one) only costs disk, so it is warned of.
    try {
      const unfinished = removeUnfinishedWrites(this.s.checkpointDir, this.s.jobId, index, step);
      if (unfinished.length) this.log.warn({ removed: unfinished }, "removed checkpoint directories a killed process left half-written");
      if (this.s.keepCheckpoints > 0) {
        const removed = pruneCheckpoints(this.s.checkpointDir, this.s.jobId, this.s.keepCheckpoints, index, protectedStep(this.s.checkpointDir, this.s.jobId));
        for (const r of removed) if (this.written.includes(r)) this.written.splice(this.written.indexOf(r), 1);
      }
      if (index === 0) {
        const retired = pruneRetiredShardParts(this.s.checkpointDir, this.s.jobId, this.s.psShards, step);
        if (retired.length) this.log.info({ removed: retired }, `removed the parts of shards this job no longer has (it runs on ${this.s.psShards}) whose checkpoints are pruned`);
      }
    } catch (err) {
      this.log.warn({ step, err: (err as Error).message }, `cannot remove older checkpoints beside ${part.path} (--keep-checkpoints ${this.s.keepCheckpoints}); they are kept`);
    }
    if (index === 0) this.log.info({ path: this.path, step, rows: part.rows }, "checkpoint saved");
    else this.log.info({ path: this.path, rows: part.rows }, "shard checkpoint saved");
    const exportFinal = final && !this.s.exportBest;
    if (this.s.exportDir && (exportFinal || exportedVersions(this.s.exportDir).length === 0)) this.exportCheckpoint(this.path);
  }

  /**
   * Exports a whole checkpoint to --export-dir as a new version; its
   * directory, or "" (no --export-dir, or the export failed). A failed export
   * does not fail the job: the checkpoint it came from is intact and
   * `pangea export` can write it later.
   */
  exportCheckpoint(checkpoint: string): string {
    const base = this.s.exportDir;
    if (!base) return "";
    // The same checkpoint is one version (the best may be the first checkpoint, already exported while the base was empty).
    const before = this.exported.get(checkpoint);
    if (before) return before;
    try {
      // Exported by this job's run before a restart: the same version.
      const earlier = versionExportedFrom(base, checkpoint, this.s.exportFeatureList);
      if (earlier) {
        this.log.info({ path: earlier, checkpoint }, "model version already exported from this checkpoint");
        this.exported.set(checkpoint, earlier);
        this.lastExport = { dir: earlier, error: "" };
        return earlier;
      }
      const { dir } = exportModel(checkpoint, base, undefined, this.s.exportFeatureList);
      this.log.info({ path: dir, checkpoint }, "model version exported");
      this.exported.set(checkpoint, dir);
      this.lastExport = { dir, error: "" };
      return dir;
    } catch (err) {
      const error = `export to ${base} failed: ${(err as Error).message}; run pangea export --checkpoint ${checkpoint} --out ${base}`;
      this.log.error({ code: (err as PangeaError).code, checkpoint }, error);
      this.lastExport = { dir: "", error };
      return "";
    }
  }
}
