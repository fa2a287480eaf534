import { Counter, Gauge, Histogram, type Registry } from "@pangea/observe";
import type { TaskSpec } from "@pangea/model";

import type { TrainerPhase } from "@pangea/rpc";

export type Phase = TrainerPhase;

/** A trainer's Prometheus metrics: batches, samples, loss, and where a batch's time goes. */
export class TrainerMetrics {
  private readonly batches: Counter<string>;
  private readonly samples: Counter<string>;
  private readonly stale: Counter<string>;
  private readonly loss: Gauge<string>;
  private readonly phases: Histogram<string>;
  private readonly auc: Gauge<string>;
  private readonly taskLoss: Gauge<string>;
  private readonly taskAuc: Gauge<string>;
  /** The tasks the per-task series are of (a trainer that joins another job drops the last one's). */
  private taskNames = "";

  constructor(registry: Registry) {
    this.batches = new Counter({ name: "pangea_trainer_batches_total", help: "Batches whose gradients this trainer pushed.", registers: [registry] });
    this.samples = new Counter({ name: "pangea_trainer_samples_total", help: "Samples this trainer trained on.", registers: [registry] });
    this.stale = new Counter({ name: "pangea_trainer_stale_gradients_total", help: "Async mode: this trainer's gradients dropped as too stale.", registers: [registry] });
    this.loss = new Gauge({ name: "pangea_trainer_loss", help: "Loss of the last batch this trainer computed (several tasks: their weighted sum).", registers: [registry] });
    this.auc = new Gauge({ name: "pangea_trainer_streaming_auc", help: "AUC over this trainer's recent batches, each scored before its update (several tasks: the first task's).", registers: [registry] });
    this.taskLoss = new Gauge({ name: "pangea_trainer_task_loss", help: "Each task's mean loss on the last batch this trainer computed (unweighted).", labelNames: ["task"], registers: [registry] });
    this.taskAuc = new Gauge({ name: "pangea_trainer_task_streaming_auc", help: "Each binary task's AUC over this trainer's recent batches, each scored before its update.", labelNames: ["task"], registers: [registry] });
    this.phases = new Histogram({
      name: "pangea_trainer_phase_seconds",
      help: "Time per batch in each phase: fetch (batch from compute), pull (parameters), compute (forward and backward), push (gradients), wait (for the step barrier).",
      labelNames: ["phase"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
  }

  /** Each task's streaming AUC, in task order (NaN: none yet, or a regression task). */
  streamingAuc(tasks: readonly TaskSpec[], aucs: ArrayLike<number>): void {
    this.forTasks(tasks);
    if (Number.isFinite(aucs[0]!)) this.auc.set(aucs[0]!);
    tasks.forEach((t, i) => {
      if (Number.isFinite(aucs[i]!)) this.taskAuc.set({ task: t.name }, aucs[i]!);
    });
  }

  private forTasks(tasks: readonly TaskSpec[]): void {
    const names = tasks.map((t) => t.name).join(",");
    if (names === this.taskNames) return;
    this.taskNames = names;
    this.taskLoss.reset();
    this.taskAuc.reset();
  }

  /** Cumulative seconds per phase since start (sent with heartbeats, so the job status shows where time goes). */
  readonly phaseTotals: Record<Phase, number> = { fetch: 0, pull: 0, compute: 0, push: 0, wait: 0 };

  phase(phase: Phase, seconds: number): void {
    this.phases.observe({ phase }, seconds);
    this.phaseTotals[phase] += seconds;
  }

  batch(samples: number, loss: number, stale: boolean, tasks: readonly TaskSpec[], taskLosses: ArrayLike<number>): void {
    this.batches.inc();
    this.samples.inc(samples);
    this.loss.set(loss);
    this.forTasks(tasks);
    tasks.forEach((t, i) => this.taskLoss.set({ task: t.name }, taskLosses[i]!));
    if (stale) this.stale.inc();
  }
}
