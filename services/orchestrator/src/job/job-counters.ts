/**
 * The job's running totals that its status and summary report, saved with
 * each checkpoint's training progress so that a job resumed from it counts on
 * from there: the summary after `--resume` covers the whole job, not only the
 * restarted process. (What happened between the checkpoint and a crash is
 * lost with the work itself, which is trained again.)
 */
export interface JobCounters {
  duplicateBatches: number;
  reassignedBatches: number;
  /** Trainers declared dead. */
  deadTrainers: number;
  /** async: gradients dropped as too stale, and the oldest one applied, in updates. */
  staleGradients: number;
  maxStalenessSeen: number;
  /** Seconds spent training (from the job's start to the checkpoint, over every process that ran it). */
  trainSeconds: number;
  /** The mean loss of the first step trained, and that step (1-based); NaN and 0 until a step is applied. */
  firstLoss: number;
  firstLossStep: number;
  lastLoss: number;
  smoothedLoss: number;
  /** Embedding rows pushed to serving by parameter sync. */
  syncRowsSent: number;
}

/** The loss figures' exponential smoothing (the first value starts it). */
export function smoothLoss(prev: number, x: number): number {
  return Number.isFinite(prev) ? 0.95 * prev + 0.05 * x : x;
}

const COUNTS = ["duplicateBatches", "reassignedBatches", "deadTrainers", "staleGradients", "maxStalenessSeen", "trainSeconds", "firstLossStep", "syncRowsSent"] as const;
const LOSSES = ["firstLoss", "lastLoss", "smoothedLoss"] as const;

export function zeroCounters(): JobCounters {
  return { duplicateBatches: 0, reassignedBatches: 0, deadTrainers: 0, staleGradients: 0, maxStalenessSeen: 0, trainSeconds: 0, firstLoss: Number.NaN, firstLossStep: 0, lastLoss: Number.NaN, smoothedLoss: Number.NaN, syncRowsSent: 0 };
}

/** The form a manifest holds: JSON has no NaN, so a loss not measured yet is null. */
export type SavedCounters = { [K in keyof JobCounters]: number | null };

export function saveCounters(c: JobCounters): SavedCounters {
  const out = { ...c } as SavedCounters;
  for (const k of LOSSES) out[k] = Number.isFinite(c[k]) ? c[k] : null;
  return out;
}

/**
 * The counters a checkpoint recorded. Checkpoints written before a counter
 * existed lack it (or all of them): a missing or unusable count reads as
 * zero, a missing loss as not measured, so the resumed job measures it anew.
 */
export function readCounters(saved: Partial<Record<keyof JobCounters, unknown>> | undefined): JobCounters {
  const c = zeroCounters();
  for (const k of COUNTS) {
    const v = saved?.[k];
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) c[k] = v;
  }
  for (const k of LOSSES) {
    const v = saved?.[k];
    if (typeof v === "number" && Number.isFinite(v)) c[k] = v;
  }
  if (Number.isNaN(c.firstLoss)) c.firstLossStep = 0;
  return c;
}
