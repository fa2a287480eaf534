import type { Membership } from "./membership.js";
import type { JobView } from "./work-dispatcher.js";

interface HeldPull {
  workerId: string;
  step: number;
  batches: readonly number[];
  /** The batches the trainer holds at the step before. */
  workingOn: ReadonlySet<number>;
  decide(serve: boolean): void;
}

/**
 * Pulls sent ahead (sync/hybrid). A trainer that has read its next batch
 * ahead pulls that batch's rows for the next step before the step exists;
 * the pull waits here until the step is planned. It is then served if the
 * batches it names are exactly the trainer's at that step (the trainer
 * needs no GetWork for the step), and withdrawn otherwise: the work went
 * another way (a trainer joined or left), the trainer was given a dead
 * trainer's batch at the step under way, the job pauses for an
 * evaluation, training is over, or the trainer is no longer a member. A
 * withdrawn pull has read and created nothing, so admission counts only
 * ever see the pulls of a batch's owner.
 *
 * One held pull per trainer: a newer one withdraws the older, and one for
 * more than a step ahead is withdrawn at once.
 */
export class HeldPulls {
  private readonly held = new Map<string, HeldPull>();
  /**
   * Pulls sent ahead so far: served after waiting here for their step (the
   * overlap they are for), served on arrival (their step was planned before
   * they came: the trainer waited for them instead), and withdrawn.
   */
  readonly counts = { servedAfterHold: 0, servedOnArrival: 0, withdrawn: 0 };

  constructor(
    private readonly job: JobView,
    private readonly members: Membership,
  ) {}

  /**
   * Resolves true when the pull is to be served now, false when it is
   * withdrawn. `cancelled`: the call went away (its trainer, usually); the
   * pull is dropped at once and resolves false.
   */
  hold(workerId: string, step: number, batches: readonly number[], workingOn: readonly number[], cancelled?: AbortSignal): Promise<boolean> {
    this.held.get(workerId)?.decide(false);
    return new Promise((resolve) => {
      let waiting = false;
      let decided = false;
      const decide = (serve: boolean) => {
        if (decided) return;
        decided = true;
        if (!serve) this.counts.withdrawn++;
        else if (waiting) this.counts.servedAfterHold++;
        else this.counts.servedOnArrival++;
        resolve(serve);
      };
      const p: HeldPull = { workerId, step, batches: [...batches].sort((a, b) => a - b), workingOn: new Set(workingOn), decide };
      this.held.set(workerId, p);
      cancelled?.addEventListener("abort", () => {
        if (this.held.get(workerId) === p) this.held.delete(workerId);
        decide(false);
      }, { once: true });
      this.wake();
      waiting = true;
    });
  }

  /** Decides every held pull that can be decided now. */
  wake(): void {
    if (!this.held.size) return;
    // In rank order: pulls released together create their rows in the same order in every run.
    const rank = (id: string) => this.members.trainer(id)?.rank ?? Number.MAX_SAFE_INTEGER;
    for (const p of [...this.held.values()].sort((a, b) => rank(a.workerId) - rank(b.workerId))) {
      const serve = this.verdict(p);
      if (serve === null) continue;
      this.held.delete(p.workerId);
      p.decide(serve);
    }
  }

  /** true: serve; false: withdraw; null: not yet (the step is not planned). */
  private verdict(p: HeldPull): boolean | null {
    const job = this.job;
    if (job.finished() || job.state() !== "JOB_STATE_RUNNING") return false;
    if (!this.members.trainer(p.workerId)?.alive) return false;
    const version = job.version();
    // A trainer pulls ahead by one step only; anything else is not a pull to keep.
    if (version > p.step || p.step > version + 1) return false;
    // Paused for an evaluation: the trainers must come to GetWork, where one of them is asked to evaluate.
    if (job.heldForEval()) return false;
    const plan = job.plan();
    if (!plan || plan.done) return false;
    if (version < p.step) {
      // Given a batch it did not hold (a dead trainer's), the trainer must come and ask for work:
      // the step cannot end without it.
      return plan.workFor(p.workerId).some((j) => !p.workingOn.has(j)) ? false : null;
    }
    if (!plan.planned) return null;
    const mine = plan.workFor(p.workerId);
    return mine.length === p.batches.length && mine.every((j, i) => j === p.batches[i]);
  }
}
