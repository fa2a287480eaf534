import type { Logger } from "@pangea/kit";
import type { JobState, Work } from "@pangea/schema";
import { OrchestratorErrors } from "../errors.js";
import type { Membership, TrainerMember } from "./membership.js";
import type { WorkPlan } from "./work-plan.js";

/** What handing out work needs to know of the job, read at each hand-out. */
export interface JobView {
  state(): JobState;
  /** The failure, "CODE: message" ("" unless FAILED). */
  error(): string;
  finished(): boolean;
  /** The parameter version trainers pull. */
  version(): number;
  /** null until the job starts. */
  plan(): WorkPlan | null;
  /** Training paused for an evaluation of `step` (evaluate: not yet reported), or null. */
  heldForEval(): { step: number; evaluate: boolean } | null;
  computeAddress(): string;
}

type WorkWaiter = (w: Work) => void;

/**
 * GetWork: a trainer's call is answered with its batches, held while it has
 * none, and answered when the job moves on (a new step, a freed batch, the
 * end). Once training is done, the first connected trainer to ask is the one
 * that evaluates the held-out split. While training pauses for an
 * evaluation (--eval-every-steps), nothing is handed out, and once every
 * batch handed out is in and every other live trainer waits here, the last
 * trainer to ask evaluates: all gradients are then applied on every shard,
 * so it reads one set of parameters.
 */
export class WorkDispatcher {
  private readonly waiters = new Map<string, WorkWaiter>();
  /** The trainer asked to evaluate, if one is, and since when (ms). */
  evaluator: string | null = null;
  evaluatorSince = 0;

  constructor(
    private readonly job: JobView,
    private readonly members: Membership,
    private readonly log: Logger,
  ) {}

  /** Work for a trainer: held until it has batches, the job moves on, or ends. */
  getWork(workerId: string): Promise<Work> {
    // A request without an id (an empty or truncated message reads as one) is malformed, not from an unknown trainer.
    if (!workerId) return Promise.reject(OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", "GetWork without a worker_id: expected the id the trainer registered with"));
    const t = this.members.trainer(workerId);
    if (!t) return Promise.reject(OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `unknown trainer ${workerId}; call RegisterWorker first`));
    let now: Work | null;
    try {
      now = this.workNow(t);
    } catch (err) {
      return Promise.reject(err);
    }
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.waiters.get(workerId)?.({ done: false, state: this.job.state(), step: this.job.version(), batchIndices: [] });
      this.waiters.set(workerId, resolve);
    });
  }

  /** The evaluation during training was reported: the next one may go to anyone. */
  evaluated(): void {
    this.evaluator = null;
  }

  /** A trainer left: it holds no call and evaluates nothing. */
  forget(workerId: string): void {
    if (this.evaluator === workerId) this.evaluator = null;
    this.waiters.delete(workerId);
  }

  /** Answers every held call that has an answer now. */
  wake(): void {
    for (const [id, resolve] of [...this.waiters]) {
      const t = this.members.trainer(id);
      let w: Work | null;
      try {
        w = t ? this.workNow(t) : null;
      } catch {
        w = { done: true, state: this.job.state(), error: `trainer ${id} was declared dead`, step: this.job.version(), batchIndices: [] };
      }
      if (w) {
        this.waiters.delete(id);
        resolve(w);
      }
    }
  }

  private workNow(t: TrainerMember): Work | null {
    const job = this.job;
    const state = job.state();
    if (job.finished()) return { done: true, state, error: job.error(), step: job.version(), batchIndices: [] };
    if (!t.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${t.workerId} was declared dead; register again`);
    const plan = job.plan();
    if (state === "JOB_STATE_WAITING" || !plan) return null;
    if (state === "JOB_STATE_EVALUATING" || plan.done) {
      // The evaluator asking again lost the answer that named it (a call cancelled, say): it is named again, or the job
      // would wait for a report no one makes. A trainer that trained in this job goes before one that joined idle.
      const again = this.evaluator === t.workerId;
      if (!t.session || !(again || (this.evaluator === null && this.mayEvaluate(t)))) return null;
      if (!again) this.name(t, "trainer evaluates the held-out split", job.version());
      return { done: true, evaluate: true, state, step: job.version(), batchIndices: [], computeAddress: job.computeAddress() };
    }
    const hold = job.heldForEval();
    if (hold) {
      const again = hold.evaluate && this.evaluator === t.workerId;
      if (!t.session || !(again || (hold.evaluate && this.evaluator === null && plan.handedOut === 0 && this.othersWaiting(t.workerId) && this.mayEvaluate(t)))) return null;
      if (!again) this.name(t, "trainer evaluates the held-out split during training", hold.step);
      return { done: false, evaluate: true, state, step: hold.step, batchIndices: [], computeAddress: job.computeAddress() };
    }
    const batches = plan.workFor(t.workerId);
    if (!batches.length) return null;
    const tickets = batches.map((j) => this.members.trainerTokens.ticket(t.rank, t.token, j));
    return { step: job.version(), batchIndices: batches, batchTickets: tickets, done: false, computeAddress: job.computeAddress() };
  }

  /** Names `t` the evaluator; the stall timeout counts from now (not from a lost answer's repeat, which keeps it). */
  private name(t: TrainerMember, msg: string, step: number): void {
    this.evaluator = t.workerId;
    this.evaluatorSince = Date.now();
    this.log.info({ workerId: t.workerId, rank: t.rank, step }, msg);
  }

  /**
   * Whether `t` may be named to evaluate: it trained a batch of this job, or no live trainer with a session did (a
   * job resumed at its end). A trainer that joined at the end, holding no batches, is first to ask for work; it does
   * not get the evaluation ahead of those that trained.
   */
  private mayEvaluate(t: TrainerMember): boolean {
    if (t.batchesDone > 0) return true;
    return !this.members.liveTrainers().some((id) => {
      const o = this.members.trainer(id);
      return o !== undefined && o.batchesDone > 0 && o.session !== null;
    });
  }

  /** Whether every live trainer but `workerId` is waiting here (so none is between a push and its next call). */
  private othersWaiting(workerId: string): boolean {
    return this.members.liveTrainers().every((w) => w === workerId || this.waiters.has(w));
  }
}
