import { DEFAULT_TASK, type Loss, type TaskSpec } from "@pangea/model";
import { smoothLoss } from "./job-counters.js";
import type { EvalReport__Output, SourceInfo__Output, TaskEval__Output, TaskStatus } from "@pangea/schema";

/** TaskLosses as a checkpoint's training progress keeps them (JSON has no NaN: a loss not measured is null). */
export interface SavedTaskLosses {
  last: (number | null)[];
  smoothed: (number | null)[];
}

/**
 * Each task's training loss as the job's scalar loss is kept: the mean over
 * a step's batches (async: each batch), and its exponential smoothing.
 * Only multi-task pushes carry per-task losses; a single-task job's task is
 * the scalar loss itself.
 */
export class TaskLosses {
  last: number[] = [];
  smoothed: number[] = [];
  private sum: number[] = [];
  private batches = 0;

  /** The losses a checkpoint saved (none in older ones or single-task jobs), so a resumed job reports them before its first step. */
  static from(saved: SavedTaskLosses | undefined): TaskLosses {
    const l = new TaskLosses();
    const read = (xs: unknown) => (Array.isArray(xs) ? xs.map((x) => (typeof x === "number" && Number.isFinite(x) ? x : Number.NaN)) : []);
    l.last = read(saved?.last);
    l.smoothed = read(saved?.smoothed);
    return l;
  }

  save(): SavedTaskLosses {
    const out = (xs: number[]) => xs.map((x) => (Number.isFinite(x) ? x : null));
    return { last: out(this.last), smoothed: out(this.smoothed) };
  }

  /** An applied batch's losses; `endsStep`: the job's loss figures move on with it. */
  add(losses: ArrayLike<number>, endsStep: boolean): void {
    if (losses.length) {
      if (this.sum.length !== losses.length) this.sum = new Array<number>(losses.length).fill(0);
      for (let t = 0; t < losses.length; t++) this.sum[t]! += losses[t]!;
      this.batches++;
    }
    if (!endsStep || !this.batches) return;
    this.last = this.sum.map((s) => s / this.batches);
    this.smoothed = this.last.map((x, t) => smoothLoss(this.smoothed[t] ?? Number.NaN, x));
    this.sum.fill(0);
    this.batches = 0;
  }
}

export interface TaskStatusParts {
  /** The job's tasks; null before the model is built (then the source's, or the report's). */
  tasks: readonly TaskSpec[] | null;
  lastLoss: number;
  smoothedLoss: number;
  losses: TaskLosses;
  /** Streaming AUC per task (mean over live trainers), and the scalar one (task 0's). */
  streamingAuc: number[];
  scalarStreamingAuc: number;
  evalReport: EvalReport__Output | null;
  source: SourceInfo__Output | null;
}

/** JobStatus.tasks: every task's figures, in task order. */
export function buildTaskStatuses(p: TaskStatusParts): TaskStatus[] {
  const tasks = p.tasks ?? tasksOfSource(p.source);
  const one = tasks.length === 1;
  const source = p.source?.hasGroundTruth ? p.source : null;
  return tasks.map((task, t): TaskStatus => {
    // Ground truth per task when the source lists it, else the scalar one for a single task.
    const gtAuc = source ? (source.groundTruthTaskAuc.length ? (source.groundTruthTaskAuc[t] ?? Number.NaN) : one ? source.groundTruthAuc : Number.NaN) : Number.NaN;
    const gtLogloss = source ? (source.groundTruthTaskLogloss.length ? (source.groundTruthTaskLogloss[t] ?? Number.NaN) : one ? source.groundTruthLogloss : Number.NaN) : Number.NaN;
    return {
      name: task.name,
      loss: task.loss,
      weight: task.weight,
      lastLoss: one ? p.lastLoss : (p.losses.last[t] ?? Number.NaN),
      smoothedLoss: one ? p.smoothedLoss : (p.losses.smoothed[t] ?? Number.NaN),
      streamingAuc: one ? p.scalarStreamingAuc : (p.streamingAuc[t] ?? Number.NaN),
      eval: evalOf(p.evalReport, task, t, one),
      hasGroundTruth: Number.isFinite(gtAuc) || Number.isFinite(gtLogloss),
      groundTruthAuc: gtAuc,
      groundTruthLogloss: gtLogloss,
    };
  });
}

function tasksOfSource(source: SourceInfo__Output | null): TaskSpec[] {
  return source?.tasks.length ? source.tasks.map((t) => ({ name: t.name, loss: t.loss as Loss, weight: t.weight })) : [{ ...DEFAULT_TASK }];
}

/** The task's held-out metrics; a report without tasks (from an older trainer) gives a single task's from its scalars. */
function evalOf(report: EvalReport__Output | null, task: TaskSpec, t: number, one: boolean): TaskEval__Output | null {
  if (!report) return null;
  if (report.tasks.length) return report.tasks[t] ?? null;
  if (!one) return null;
  return {
    name: task.name,
    loss: task.loss,
    records: report.records,
    auc: report.auc,
    logloss: report.logloss,
    rmse: Number.NaN,
    meanPrediction: report.meanPrediction,
    labelRate: report.labelRate,
    calibration: report.meanPrediction / report.labelRate,
    hasGauc: false,
    gauc: Number.NaN,
    gaucGroups: 0,
    gaucRecords: 0,
    ungroupedRecords: 0,
  };
}
