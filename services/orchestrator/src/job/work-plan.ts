import type { TrainingMode } from "@pangea/service-flags";

export type { TrainingMode };

/** Where a plan starts: a fresh job, or what a checkpoint recorded. */
export interface PlanStart {
  /** sync/hybrid: the first step to run; async: batches already finished. */
  step: number;
  finishedBatches: number;
  /** async: batches handed out but not finished when the checkpoint was taken. */
  outstanding: readonly number[];
}

export type AcceptOutcome = "accepted" | "duplicate";

/**
 * Who trains which global batch. The job is a fixed sequence of global
 * batches, `batchesPerStep` per step; the plan hands them to whichever
 * trainers are alive, so a step computes the same thing however many
 * trainers share it. A batch is finished once its gradients are accepted;
 * a dead trainer's unfinished batches go back to the others, so no batch is
 * skipped and none is applied twice.
 *
 * sync/hybrid: step s owns batches s*W .. s*W+W-1, spread round-robin over
 * the live trainers; the next step is planned once all W are finished.
 * async: batches are handed out one at a time from a queue, next index first
 * unless a dead trainer's batch is waiting.
 */
export class WorkPlan {
  private stepNo: number;
  private finished: number;
  /** Unfinished batches of the current step (sync/hybrid) or handed out (async), and their trainer (null = nobody yet). */
  private readonly owner = new Map<number, string | null>();
  /** When each held batch was given to its trainer (ms): a batch held too long without its gradients is overdue. */
  private readonly heldSince = new Map<number, number>();
  private nextBatch: number;
  private readonly requeued: number[] = [];
  reassigned = 0;

  constructor(
    readonly mode: TrainingMode,
    readonly batchesPerStep: number,
    readonly steps: number,
    start: PlanStart = { step: 0, finishedBatches: 0, outstanding: [] },
  ) {
    this.stepNo = start.step;
    if (mode === "async") {
      this.finished = start.finishedBatches;
      this.requeued.push(...start.outstanding);
      this.nextBatch = start.finishedBatches + start.outstanding.length;
    } else {
      this.finished = start.step * batchesPerStep;
      this.nextBatch = this.finished;
    }
  }

  get totalBatches(): number {
    return this.steps * this.batchesPerStep;
  }

  /** sync/hybrid: the step under way; async: whole steps' worth of batches finished. */
  get step(): number {
    return this.mode === "async" ? Math.floor(this.finished / this.batchesPerStep) : this.stepNo;
  }

  get finishedBatches(): number {
    return this.finished;
  }

  get done(): boolean {
    return this.finished >= this.totalBatches;
  }

  /** Batches held by a trainer now (handed out, not finished). */
  get handedOut(): number {
    let n = 0;
    for (const w of this.owner.values()) if (w !== null) n++;
    return n;
  }

  /** sync/hybrid: whether the current step's batches are dealt out (between a step's last batch and the next beginStep they are not). */
  get planned(): boolean {
    return this.owner.size > 0;
  }

  /** async: batches handed out and not finished (a checkpoint records them so a restart hands them out again). */
  outstanding(): number[] {
    return [...this.owner.keys(), ...this.requeued].sort((a, b) => a - b);
  }

  /** sync/hybrid: plans the current step over `live` trainers (in rank order). */
  beginStep(live: readonly string[]): void {
    if (this.mode === "async" || this.done) return;
    this.owner.clear();
    this.heldSince.clear();
    const first = this.stepNo * this.batchesPerStep;
    for (let k = 0; k < this.batchesPerStep; k++) this.give(first + k, live.length ? live[k % live.length]! : null);
  }

  /** The batches `worker` should train now; async hands out the next one if it holds none. */
  workFor(worker: string): number[] {
    const mine = [...this.owner].filter(([, w]) => w === worker).map(([j]) => j);
    if (mine.length || this.mode !== "async" || this.done) return mine.sort((a, b) => a - b);
    const j = this.requeued.length ? this.requeued.shift()! : this.nextBatch < this.totalBatches ? this.nextBatch++ : -1;
    if (j < 0) return [];
    this.give(j, worker);
    return [j];
  }

  /** Whether `worker` holds a batch it has not delivered. */
  holdsAny(worker: string): boolean {
    for (const w of this.owner.values()) if (w === worker) return true;
    return false;
  }

  /** Who must deliver batch j now, or undefined if it is not unfinished. */
  ownerOf(j: number): string | null | undefined {
    return this.owner.get(j);
  }

  /** Whether batch j was finished already (its gradients accepted once). */
  isFinished(j: number): boolean {
    if (this.owner.has(j) || this.requeued.includes(j)) return false;
    return this.mode === "async" ? j < this.nextBatch : j < this.stepNo * this.batchesPerStep + this.batchesPerStep;
  }

  /** Marks batch j finished; returns true when that completes the step (sync/hybrid) or the job (async). */
  finish(j: number): boolean {
    this.owner.delete(j);
    this.heldSince.delete(j);
    this.finished++;
    if (this.mode === "async") return this.done;
    if (this.owner.size > 0) return false;
    this.stepNo++;
    return true;
  }

  /** Takes a trainer's unfinished batches back and gives them to `live` (or leaves them for whoever comes next). */
  release(worker: string, live: readonly string[]): number[] {
    const freed = [...this.owner].filter(([, w]) => w === worker).map(([j]) => j);
    for (const j of freed) {
      if (this.mode === "async") {
        this.owner.delete(j);
        this.heldSince.delete(j);
        this.requeued.push(j);
      } else this.give(j, null);
    }
    this.requeued.sort((a, b) => a - b);
    this.reassigned += freed.length;
    this.adopt(live);
    return freed;
  }

  /** Gives batches nobody holds to the live trainers holding the fewest. */
  adopt(live: readonly string[]): void {
    if (this.mode === "async" || live.length === 0) return;
    const load = new Map(live.map((w) => [w, 0]));
    for (const w of this.owner.values()) if (w !== null && load.has(w)) load.set(w, load.get(w)! + 1);
    for (const [j, w] of this.owner) {
      if (w !== null) continue;
      const [least] = [...load].sort((a, b) => a[1] - b[1])[0]!;
      this.give(j, least);
      load.set(least, load.get(least)! + 1);
    }
  }

  /** The batches each trainer has held for more than `ms` without their gradients arriving. */
  overdue(now: number, ms: number): Map<string, number[]> {
    const late = new Map<string, number[]>();
    for (const [j, w] of this.owner) {
      const since = this.heldSince.get(j);
      if (w === null || since === undefined || now - since <= ms) continue;
      late.set(w, [...(late.get(w) ?? []), j]);
    }
    return late;
  }

  /** Time the orchestrator itself could not run (a long synchronous checkpoint, a stopped process) is nobody's delay. */
  pauseClocks(ms: number): void {
    for (const [j, since] of this.heldSince) this.heldSince.set(j, since + ms);
  }

  private give(j: number, worker: string | null): void {
    this.owner.set(j, worker);
    if (worker === null) this.heldSince.delete(j);
    else this.heldSince.set(j, Date.now());
  }
}
