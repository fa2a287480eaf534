import { printable } from "@pangea/kit";
import type { BestMetric } from "@pangea/service-flags";
import type { BestCheckpoint, EvalReport__Output } from "@pangea/schema";
import type { TaskSpec } from "@pangea/model";
import type { BestRecord } from "../checkpoint/best-checkpoint.js";
import { OrchestratorErrors } from "../errors.js";

export interface EvaluationSettings {
  /** Evaluate every N steps while training too (0 = only the final evaluation). */
  everySteps: number;
  /** --keep-best: what is compared, of which task (absent: the first task); null without --keep-best. */
  best: { metric: BestMetric; task?: string } | null;
}

/** The best evaluation so far and where its checkpoint is (empty while being written). */
export interface Best {
  step: number;
  task: string;
  metric: BestMetric;
  value: number;
  checkpoint: string;
  exported: string;
  eval: EvalReport__Output;
}

/**
 * The most evaluations the history keeps: it travels in every status reply
 * and every checkpoint, so a long job evaluated often must not grow them
 * without end. Beyond it the oldest go, except the first (the curve's start).
 */
export const EVALUATIONS_KEPT = 1000;

/**
 * The job's held-out evaluations: when one is due (every N steps, never at
 * the last step, whose evaluation is the final one), their history (the
 * first and the newest, EVALUATIONS_KEPT in all), and with --keep-best which
 * one is best so far by one task's AUC or log loss.
 */
export class Evaluations {
  readonly history: EvalReport__Output[] = [];
  best: Best | null = null;
  /** The compared task's index in the reports' tasks (0 until the job's tasks are known). */
  private task = 0;
  private taskName = "";
  /** A resumed job's evaluation of the checkpoint it resumed from, until bind compares it with the best. */
  private resumedEval: EvalReport__Output | null = null;

  constructor(private readonly s: EvaluationSettings) {}

  get keepBest(): boolean {
    return this.s.best !== null;
  }

  /**
   * At job start, with the data's tasks and held-out records known: refuses
   * evaluations the data cannot give (no held-out split) and a compared task
   * that is not one of the data's binary tasks. Returns a warning when a
   * restored best was of another task than the one compared now (the best
   * then starts over), else null.
   */
  bind(tasks: readonly TaskSpec[], heldOut: number, source: string): string | null {
    const bad = (msg: string) => OrchestratorErrors.create("ORCH_ERR_BAD_JOB_CONFIG", msg);
    if (this.s.everySteps > 0 && heldOut === 0) {
      throw bad(`--eval-every-steps ${this.s.everySteps}${this.keepBest ? " and --keep-best need" : " needs"} a held-out split; the source (${source}) has none`);
    }
    const b = this.s.best;
    if (!b) return null;
    const names = tasks.map((t) => t.name).join(", ");
    const t = b.task === undefined ? 0 : tasks.findIndex((x) => x.name === b.task);
    if (t < 0) throw bad(`--best-task ${printable(b.task!, 64)}: the job's tasks are ${names}`);
    if (tasks[t]!.loss !== "bce") throw bad(`--best-metric ${b.metric} needs a binary task; ${tasks[t]!.name} is a regression (${tasks[t]!.loss})${b.task === undefined ? "; name one with --best-task" : ""}`);
    this.task = t;
    this.taskName = tasks[t]!.name;
    // best.json of a run that compared --best-task X, resumed without it: the first task's figures are not X's.
    let why: string | null = null;
    if (this.best && this.best.task !== this.taskName) {
      const was = this.best.task;
      this.best = null;
      why = `best.json compares ${was} ${b.metric}, this job ${this.taskName} ${b.metric}: the best starts over`;
    }
    // The checkpoint resumed from was evaluated, better than what best.json names (or best.json had not been written):
    // the process ended after that checkpoint was whole and before best.json named it. It is the best, as it was in the
    // run that ended; its checkpoint is "" until the job names it (the one resumed from).
    const at = this.resumedEval;
    this.resumedEval = null;
    const v = at ? this.valueOf(at) : Number.NaN;
    if (at && !Number.isNaN(v) && this.beats(v)) {
      this.best = { step: Number(at.step), task: this.taskName, metric: b.metric, value: v, checkpoint: "", exported: "", eval: at };
    }
    return why;
  }

  /** Whether the step boundary `step` (of `steps`) is due an evaluation during training. */
  dueAt(step: number, steps: number): boolean {
    const n = this.s.everySteps;
    return n > 0 && step > 0 && step < steps && step % n === 0 && !this.history.some((h) => Number(h.step) === step);
  }

  /** The compared figure of a report (NaN when it has none: one class only). */
  valueOf(report: EvalReport__Output): number {
    const metric = this.s.best?.metric ?? "auc";
    const t = report.tasks.length ? report.tasks[this.task] : report;
    return t ? t[metric] : Number.NaN;
  }

  /** Puts a report in the history, in step order (a step evaluated again replaces its report). */
  private add(report: EvalReport__Output): void {
    const step = Number(report.step);
    const at = this.history.findIndex((h) => Number(h.step) >= step);
    if (at >= 0 && Number(this.history[at]!.step) === step) this.history[at] = report;
    else if (at >= 0) this.history.splice(at, 0, report);
    else this.history.push(report);
    if (this.history.length > EVALUATIONS_KEPT) this.history.splice(1, this.history.length - EVALUATIONS_KEPT);
  }

  /** A completed job's final evaluation (from completed.json): in the history, not compared. */
  addFinal(report: EvalReport__Output): void {
    this.add(report);
  }

  /** Adds a report to the history; true when --keep-best is on and it is better than the best so far (a tie keeps the earlier). */
  record(report: EvalReport__Output): boolean {
    this.add(report);
    const step = Number(report.step);
    const b = this.s.best;
    if (!b) return false;
    const v = this.valueOf(report);
    if (Number.isNaN(v)) return false;
    if (!this.beats(v)) return false;
    this.best = { step, task: this.taskName, metric: b.metric, value: v, checkpoint: "", exported: "", eval: report };
    return true;
  }

  /** The best evaluation's checkpoint is whole at `checkpoint`: what best.json records of it. */
  bestCheckpointed(checkpoint: string): BestRecord {
    const b = this.best!;
    b.checkpoint = checkpoint;
    return { step: b.step, task: b.task, metric: b.metric, value: b.value, checkpoint, eval: b.eval };
  }

  /**
   * A resumed job's evaluations: the history its checkpoint recorded and the
   * best best.json names, if that is the same comparison and no later than
   * the checkpoint resumed from (a later one is another run's, lost with it).
   */
  restore(history: readonly EvalReport__Output[], saved: BestRecord | null, resumedStep: number): string | null {
    for (const h of history) this.add(h);
    const b = this.s.best;
    if (!b) return null;
    // Compared with the best once the job's tasks are known (bind).
    this.resumedEval = history.find((h) => Number(h.step) === resumedStep) ?? null;
    return saved ? this.takeSaved(saved, resumedStep) : null;
  }

  /** best.json's best, if it is the same comparison and no later than the checkpoint resumed from; else why not. */
  private takeSaved(saved: BestRecord, resumedStep: number): string | null {
    const b = this.s.best!;
    if (saved.metric !== b.metric || (b.task !== undefined && saved.task !== b.task)) {
      return `best.json compares ${saved.task} ${saved.metric}, this job ${b.task ?? "the first task"} ${b.metric}: the best starts over`;
    }
    if (saved.step > resumedStep) return `best.json names step ${saved.step}, after the checkpoint resumed from (step ${resumedStep}): the best starts over`;
    this.taskName = saved.task;
    this.best = { step: saved.step, task: saved.task, metric: saved.metric, value: saved.value, checkpoint: saved.checkpoint, exported: "", eval: saved.eval };
    return null;
  }

  /** Whether a figure is better than the best so far (any is, when there is none; a tie keeps the earlier). */
  private beats(v: number): boolean {
    const held = this.best?.value ?? Number.NaN;
    return Number.isNaN(held) || (this.s.best!.metric === "auc" ? v > held : v < held);
  }

  bestStatus(): BestCheckpoint | null {
    const b = this.best;
    return b ? { step: b.step, task: b.task, metric: b.metric, value: b.value, checkpoint: b.checkpoint, exported: b.exported } : null;
  }
}
