import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { BestMetric } from "@pangea/service-flags";
import type { EvalReport__Output } from "@pangea/schema";
import { jobCheckpointDir, writeJsonAtomically } from "./checkpoint.js";
import { evalReportFromJson } from "./completion.js";

/**
 * `<root>/<job>/best.json`: which checkpoint --keep-best keeps, the step of
 * the best held-out evaluation so far by one task's metric, with that
 * evaluation. Every shard's pruning reads it, so the checkpoint it names
 * (step-N and its step-N.shard-i siblings) is never pruned; it is written
 * only once that checkpoint is whole.
 */
export interface BestRecord {
  step: number;
  task: string;
  metric: BestMetric;
  value: number;
  /** Shard 0's directory of the checkpoint (step-N). */
  checkpoint: string;
  eval: EvalReport__Output;
}

const fileOf = (root: string, jobId: string) => join(jobCheckpointDir(root, jobId), "best.json");

export function writeBest(root: string, jobId: string, r: BestRecord): void {
  writeJsonAtomically(fileOf(root, jobId), r);
}

/** The job's best.json, or null when there is none; throws with the reason when it cannot be read. */
export function readBest(root: string, jobId: string): BestRecord | null {
  const path = fileOf(root, jobId);
  if (!existsSync(path)) return null;
  const r = JSON.parse(readFileSync(path, "utf8")) as BestRecord;
  const metricOk = r.metric === "auc" || r.metric === "logloss";
  if (typeof r.step !== "number" || typeof r.task !== "string" || !metricOk || typeof r.checkpoint !== "string") {
    throw new Error(`${path}: expected {step, task, metric: auc|logloss, value, checkpoint, eval}`);
  }
  return { ...r, value: r.value === null ? Number.NaN : r.value, eval: evalReportFromJson(r.eval) };
}

/** The step best.json protects from pruning, or null (none, or unreadable: then nothing is protected by it). */
export function protectedStep(root: string, jobId: string): number | null {
  try {
    return readBest(root, jobId)?.step ?? null;
  } catch {
    return null;
  }
}
