import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { EvalReport__Output } from "@pangea/schema";
import { jobCheckpointDir, writeJsonAtomically } from "./checkpoint.js";

/**
 * What a completed job leaves beside its checkpoints (`<root>/<job>/completed.json`):
 * the step of its final checkpoint and the held-out evaluation. An orchestrator
 * restarted with --resume after the job completed reports it as completed from
 * this record instead of waiting for trainers that have long gone.
 */
interface CompletionRecord {
  step: number;
  eval: EvalReport__Output;
}

const fileOf = (root: string, jobId: string) => join(jobCheckpointDir(root, jobId), "completed.json");

export function writeCompletion(root: string, jobId: string, step: number, report: EvalReport__Output): void {
  const record: CompletionRecord = { step, eval: { ...report } };
  writeJsonAtomically(fileOf(root, jobId), record);
}

const NUMBERS = ["step", "records", "auc", "logloss", "meanPrediction", "labelRate"] as const;
/** Figures that may be NaN (one class only; a regression task's AUC), which JSON writes as null. */
const MAYBE_NAN = ["auc", "logloss", "meanPrediction", "labelRate", "rmse", "calibration", "gauc"] as const;

function nanFromNull<T extends object>(o: T): T {
  const out = { ...o } as Record<string, unknown>;
  for (const k of MAYBE_NAN) if (out[k] === null) out[k] = Number.NaN;
  return out as T;
}

/** An evaluation report as JSON wrote it (NaN as null; records before per-task metrics without tasks); throws if it is not one. */
export function evalReportFromJson(v: unknown): EvalReport__Output {
  const e = typeof v === "object" && v !== null ? (v as EvalReport__Output) : null;
  const out = e ? { ...nanFromNull(e), tasks: Array.isArray(e.tasks) ? e.tasks.map(nanFromNull) : [] } : null;
  if (!out || typeof out.workerId !== "string" || NUMBERS.some((k) => typeof out[k] !== "number")) {
    throw new Error("expected an evaluation {workerId, step, records, auc, logloss, meanPrediction, labelRate}");
  }
  return out;
}

/** The evaluation of a job that completed at `step`, or null (none, another step, or unreadable: the job then evaluates again). */
export function readCompletion(root: string, jobId: string, step: number, warn: (msg: string) => void): EvalReport__Output | null {
  const path = fileOf(root, jobId);
  if (!existsSync(path)) return null;
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as CompletionRecord;
    if (typeof r.step !== "number") throw new Error("expected {step, eval}");
    const e = evalReportFromJson(r.eval);
    return r.step === step ? e : null;
  } catch (err) {
    warn(`ignoring ${path}: ${(err as Error).message}; the job evaluates again`);
    return null;
  }
}
