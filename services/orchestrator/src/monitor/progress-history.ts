import type { JobStatus } from "@pangea/schema";

/** One sample of the job's progress, taken when its step advanced. */
export interface ProgressPoint {
  /** Milliseconds since the epoch, when the sample was taken. */
  t: number;
  step: number;
  loss: number;
  /** Samples trained since the job started: the page derives recent throughput from its differences. */
  samples: number;
  /** The job's average samples/s since it started. */
  samplesPerSecond: number;
  /** Streaming AUC (NaN, so null in JSON, until trainers report it). */
  auc: number;
  /** Several tasks: each one's smoothed loss and streaming AUC, in task order (absent for one task, whose figures are the above). */
  tasks?: { loss: number; auc: number }[];
}

/** Above this many points the oldest half is thinned, so a long job's curves keep a bounded size. */
const MAX_POINTS = 2000;

/**
 * The curves' history: a point each time the job's step advances with a
 * finite loss, thinned from the oldest end so the recent past keeps full
 * resolution.
 */
export class ProgressHistory {
  private readonly kept: ProgressPoint[] = [];
  private lastStep = -1;

  /** Records `s` if its step is new; returns whether it did. */
  record(s: JobStatus, now = Date.now()): boolean {
    const step = Number(s.step);
    const loss = Number(s.smoothedLoss);
    if (step === this.lastStep || !Number.isFinite(loss)) return false;
    this.lastStep = step;
    const point: ProgressPoint = { t: now, step, loss, samples: Number(s.samples), samplesPerSecond: Number(s.samplesPerSecond), auc: Number(s.streamingAuc) };
    if (s.tasks && s.tasks.length > 1) point.tasks = s.tasks.map((t) => ({ loss: Number(t.smoothedLoss), auc: Number(t.streamingAuc) }));
    this.kept.push(point);
    if (this.kept.length > MAX_POINTS) {
      // Drop every other point of the older half: its resolution halves, the newer half's stays.
      const half = MAX_POINTS / 2;
      const older = this.kept.slice(0, half).filter((_, i) => i % 2 === 0);
      this.kept.splice(0, half, ...older);
    }
    return true;
  }

  points(): readonly ProgressPoint[] {
    return this.kept;
  }
}
