import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { PangeaError, type Logger } from "@pangea/kit";
import { describeArchitecture, modelIdentity, taskCount, tasksOf } from "@pangea/model";
import { discoveredSyncModel } from "@pangea/service-flags";
import type { EvalReport__Output, JobSpec, JobState, JobStatus, SourceInfo__Output, Work } from "@pangea/schema";
import type { WorkerGradients } from "../aggregation/gradient-aggregator.js";
import { evalReportFromJson, writeCompletion } from "../checkpoint/completion.js";
import { readBest, writeBest } from "../checkpoint/best-checkpoint.js";
import { CheckpointRounds } from "../checkpoint/checkpoint-rounds.js";
import { checkpointRowsOfEveryShard, stepCheckpointDir, type TrainingProgress } from "../checkpoint/checkpoint.js";
import { OrchestratorErrors } from "../errors.js";
import type { WorkerKind } from "../server/peer-check.js";
import type { SealedBatch, TrainingPull } from "../server/parameter-host.js";
import { runOf, sealProblem } from "../server/batch-row-budget.js";
import { ParameterShard } from "../shard/parameter-shard.js";
import { checkEvalReport } from "./eval-report-check.js";
import { Evaluations } from "./evaluations.js";
import type { JobConfig } from "./job-config.js";
import { readCounters, saveCounters, type JobCounters } from "./job-counters.js";
import { batchesPerStepOf, buildModel, completedDataChange, resumedTraining, startExpirySweep, type JobModel } from "./job-model.js";
import { buildJobSpec } from "./job-spec.js";
import { buildJobStatus } from "./job-status.js";
import { TaskLosses } from "./task-status.js";
import { watchTimer } from "./watch-timer.js";
import { Membership, type SessionSink, type TrainerMember } from "./membership.js";
import { StepCoordinator, type PushAck } from "./step-coordinator.js";
import { WorkDispatcher, type JobView } from "./work-dispatcher.js";
import { HeldPulls } from "./held-pulls.js";
import type { ServingSync } from "../sync/serving-sync.js";
import { shardFailure } from "../shard/shard-failure.js";

export { defaultSlotConfig } from "./job-model.js";

/**
 * One training job's state machine: WAITING (for compute and the expected
 * trainers) -> RUNNING -> EVALUATING (one trainer scores the held-out split)
 * -> COMPLETED, or FAILED from any state with one reason. With
 * --eval-every-steps, RUNNING pauses at every N-th step boundary while one
 * trainer scores the held-out split (Evaluations keeps the history and,
 * with --keep-best, the best so far, whose checkpoint is written before
 * training goes on).
 *
 * Work is handed out by global batch index (WorkPlan), so trainers may join
 * and leave while it runs: a trainer whose session breaks, or whose
 * heartbeats stop, is declared dead and its unfinished batches go to the
 * others (--on-trainer-loss reassign), or the job fails (fail).
 *
 * The Job holds the state and moves it; its parts do the work: Membership
 * (who takes part), WorkDispatcher (GetWork), StepCoordinator (the work plan
 * and the step barrier), ParameterShard (shard 0's parameters: gradients,
 * its checkpoint parts, serving sync; the other shards run the same class),
 * CheckpointRounds (a checkpoint is whole when every shard wrote its part),
 * and buildJobStatus.
 */
export class Job extends EventEmitter<{ finished: [JobStatus] }> {
  state: JobState = "JOB_STATE_WAITING";
  /** The address trainers use to reach this process's parameter server (shard 0). */
  address = "";
  model: JobModel | null = null;
  private readonly members: Membership;
  private readonly work: WorkDispatcher;
  private readonly heldPulls: HeldPulls;
  private steps: StepCoordinator | null = null;
  /** Shard 0's parameter shard, from the start of training. */
  private shard: ParameterShard | null = null;
  private readonly rounds = new CheckpointRounds();
  /** sync/hybrid: the next step waits for the other shards' parts of a checkpoint, so each writes exactly the step asked for. */
  private stepHeld = false;
  private startedAt = 0;
  /** The trainers the job started with: each one's loss counts, whatever it held (async gives work at its first GetWork). */
  private startedWith = new Set<string>();
  private endedAt = 0;
  /** Running totals, carried on from the checkpoint a resumed job started from. */
  private readonly counts: JobCounters;
  private evalReport: EvalReport__Output | null = null;
  private readonly evals: Evaluations;
  /** What a resume found wrong with the best checkpoint's record (best.json), for the job's status warnings once its model is built. */
  private readonly bestWarnings: string[] = [];
  /**
   * An evaluation during training: from a step boundary no work is handed
   * out until its report is in and (checkpointing) the checkpoint written
   * after it is whole, so the evaluator reads, and the checkpoint holds, one
   * set of parameters. It is of the step training stands at once the
   * batches handed out before the pause are in (async: possibly past the
   * boundary, when more trainers than a step's batches held one each).
   */
  private evalHold: { checkpointing: boolean } | null = null;
  /** --keep-best: the step whose checkpoint best.json names once the checkpoint is whole. */
  private bestPending: number | null = null;
  /** The compute that disconnected last, while the job ran: named if the trainers then leave for want of data. */
  private computeLost: { workerId: string; step: number; at: number } | null = null;
  /** Several tasks: each one's training loss (a single task's is the job's loss). */
  private readonly taskLosses: TaskLosses;
  private error = "";
  private errorExitCode = 0;
  /** A job completed on several shards: every shard's embedding rows, from its final checkpoint. */
  private everyShardsRows: number | null = null;
  /** Each other shard's batches whose part it never got (ReportCheckpoint.parts_skipped), by shard index. */
  private readonly partsSkipped = new Map<number, number>();
  private readonly registerTimer: NodeJS.Timeout;
  private sweeper: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly createdAt = Date.now();
  private readonly resumed: TrainingProgress | null;

  constructor(readonly config: JobConfig, private readonly log: Logger) {
    super();
    this.resumed = resumedTraining(config);
    this.counts = readCounters(this.resumed?.counters ?? undefined);
    this.taskLosses = TaskLosses.from(this.resumed?.taskLosses);
    this.evals = new Evaluations({ everySteps: config.evalEverySteps ?? 0, best: config.keepBest ? { metric: config.bestMetric ?? "auc", ...(config.bestTask ? { task: config.bestTask } : {}) } : null });
    if (this.resumed) this.restoreEvaluations(this.resumed);
    this.members = new Membership(config, log);
    const view: JobView = {
      state: () => this.state,
      error: () => this.error,
      finished: () => this.isFinished(),
      version: () => this.step,
      plan: () => this.steps?.plan ?? null,
      heldForEval: () => (this.evalHold ? { step: this.progressStep, evaluate: !this.evalHold.checkpointing } : null),
      computeAddress: () => this.members.compute?.address ?? "",
    };
    this.work = new WorkDispatcher(view, this.members, log);
    this.heldPulls = new HeldPulls(view, this.members);
    this.registerTimer = setTimeout(() => {
      if (this.state === "JOB_STATE_WAITING") {
        const m = this.members;
        this.fail(
          OrchestratorErrors.create(
            "ORCH_ERR_REGISTER_TIMEOUT",
            `timed out after ${waited(config.registerTimeoutMs)} waiting for workers: ${m.connectedTrainers()}/${config.trainers} trainers connected, compute ${m.compute ? "registered" : "not registered"}${config.psShards > 1 ? `, ${m.connectedShards()}/${config.psShards - 1} parameter-server shards connected` : ""}`,
          ),
        );
      }
    }, config.registerTimeoutMs);
    this.registerTimer.unref();
    if (config.completed) {
      clearTimeout(this.registerTimer);
      this.evalReport = config.completed;
      this.evals.addFinal(config.completed);
      this.state = "JOB_STATE_COMPLETED";
    }
  }

  /** A resumed job's evaluations: those its checkpoint recorded, and the best best.json names if its checkpoint is still there. */
  private restoreEvaluations(r: TrainingProgress): void {
    const history = (r.evaluations ?? []).flatMap((e) => {
      try {
        return [evalReportFromJson(e)];
      } catch {
        return [];
      }
    });
    // Training on past a completed job: its final evaluation (completed.json's, not in the checkpoint's list) stays in the history.
    const before = this.config.completedBefore;
    if (before && !history.some((e) => Number(e.step) === Number(before.step))) history.push(before);
    let saved = null;
    try {
      saved = readBest(this.config.checkpointDir, this.config.jobId);
    } catch (err) {
      const message = (err as Error).message;
      this.bestWarnings.push(`--keep-best: ignoring best.json (${message}); the best starts over`);
      this.log.warn({ err: message }, "ignoring best.json; the best starts over");
    }
    if (saved && !existsSync(saved.checkpoint)) {
      this.bestWarnings.push(`--keep-best: best.json names ${saved.checkpoint}, which is gone; the best starts over`);
      this.log.warn({ checkpoint: saved.checkpoint }, "best.json names a checkpoint that is gone; the best starts over");
      saved = null;
    }
    // In the job's warnings too (the summary's, status's): the orchestrator's log is not on the operator's terminal.
    const why = this.evals.restore(history, saved, r.step);
    if (why) {
      this.bestWarnings.push(`--keep-best: ${why}`);
      this.log.warn(why);
    }
  }

  /** The checkpoint resumed from is the best (best.json did not yet name it: see Evaluations.bind): named now, so pruning keeps it. */
  private nameResumedBest(): void {
    const best = this.evals.best;
    if (!this.resumed || !best || best.step !== this.resumed.step || best.checkpoint) return;
    const path = stepCheckpointDir(this.config.checkpointDir, this.config.jobId, best.step);
    try {
      writeBest(this.config.checkpointDir, this.config.jobId, this.evals.bestCheckpointed(path));
      this.log.info({ step: best.step, checkpoint: path }, "the checkpoint resumed from is the best so far (best.json had not named it yet)");
    } catch (err) {
      this.bestWarnings.push(`--keep-best: cannot write best.json beside ${path}: ${(err as Error).message}; pruning may remove the best checkpoint`);
    }
  }

  get batchesPerStep(): number {
    return batchesPerStepOf(this.config);
  }

  /** The parameter version pulls see: steps applied (sync/hybrid) or dense updates (async). */
  get step(): number {
    return this.steps?.version ?? 0;
  }

  /** Steps of training done (async: whole steps' worth of batches). */
  get progressStep(): number {
    return this.steps?.plan.step ?? this.resumed?.step ?? 0;
  }

  /** The registration's worker token (every later call for the worker carries it), and the key it checks trainers' batch-stream tokens with. */
  registerCompute(workerId: string, address: string, source: SourceInfo__Output | null): { workerToken: string; pushKey: Buffer } {
    const other = this.config.completed && source ? completedDataChange(this.resumed, source) : null;
    if (other) throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_MISMATCH", `compute ${workerId} refused: ${other}`);
    const token = this.members.addCompute(workerId, address, source, this.state, this.isFinished(), this.error);
    this.wake();
    this.maybeStart();
    return { workerToken: token, pushKey: this.members.trainerTokens.key };
  }

  /** A shard's registration: its token, and the keys it checks trainers' push tokens and batch tickets with. */
  registerShard(workerId: string, index: number, address: string): { workerToken: string; pushKey: Buffer; ticketKey: Buffer } {
    const tokens = this.members.trainerTokens;
    return { workerToken: this.members.addShard(workerId, index, address, this.state), pushKey: tokens.key, ticketKey: tokens.ticketKey };
  }

  /** A trainer joins: before the start, one of the expected ones; later, an extra pair of hands for the steps to come. */
  registerTrainer(workerId: string): { rank: number; worldSize: number; workerToken: string } {
    return this.members.addTrainer(workerId, this.state, this.isFinished(), this.batchesPerStep, this.error);
  }

  /** A trainer's, shard's or compute's session: the job's start and end go down it, and its breaking means the worker is gone. */
  openSession(workerId: string, sink: SessionSink): void {
    const member = this.members.attach(workerId, sink, this.isFinished());
    if (!member) {
      sink.send(this.finishedEvent());
      sink.end();
      return;
    }
    if (member.kind === "compute") return;
    if (this.state !== "JOB_STATE_WAITING") {
      sink.send({ jobStarted: this.jobSpec() });
      if (member.kind === "trainer") this.joined(member.trainer);
    }
    this.maybeStart();
  }

  private finishedEvent() {
    return { jobFinished: { state: this.state, error: this.error } };
  }

  /** A session stream ended: fine once the worker's part is done; otherwise the worker is lost. */
  sessionClosed(workerId: string, sink: SessionSink): void {
    const member = this.members.detach(workerId, sink);
    if (!member) return;
    if (member.kind === "compute") {
      if (!this.isFinished()) this.log.warn({ workerId }, "compute disconnected; trainers wait for it to come back");
      this.computeLost = { workerId, step: this.progressStep, at: Date.now() };
      return;
    }
    if (this.isFinished()) return;
    if (member.kind === "shard") {
      if (this.state === "JOB_STATE_WAITING") return;
      this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `parameter-server shard ${workerId} (index ${member.shard.index}) disconnected at step ${this.progressStep} of ${this.config.steps}`));
      return;
    }
    const t = member.trainer;
    if (!t.alive) return;
    if (this.state === "JOB_STATE_WAITING") {
      this.log.warn({ workerId, rank: t.rank }, "trainer disconnected before the job started");
      t.alive = false;
      return;
    }
    this.trainerLost(t, "disconnected");
  }

  /** Records a trainer's heartbeat; false if it is not (or no longer) a member. */
  heartbeat(workerId: string, phaseSeconds?: Record<string, number>): boolean {
    return this.members.heartbeat(workerId, phaseSeconds);
  }

  private trainerLost(t: TrainerMember, why: string): void {
    if (!t.alive || this.isFinished()) return;
    const trainingDone = this.state === "JOB_STATE_EVALUATING" || (this.steps?.plan.done ?? false);
    // A trainer that joined after the job started and has trained no batch since it registered and holds none (one
    // beyond the batches of a step, waiting for work; one that joined and left at once) takes nothing with it: not
    // counted as lost, and under --on-trainer-loss fail it does not end the job. A client registering and leaving again
    // and again had made the summary say "155 lost during the job" of a job that lost none. The trainers the job
    // started with always count: in async mode one holds nothing until its first GetWork.
    const tookPart = this.startedWith.has(t.workerId) || t.batchesDone > 0 || (this.steps?.plan.holdsAny(t.workerId) ?? false) || this.work.evaluator === t.workerId;
    if (tookPart && this.config.onTrainerLoss === "fail" && !(trainingDone && this.work.evaluator !== t.workerId)) {
      // Counted as lost (the summary's "from N lost trainers"), though the job ends rather than reassigning its batches.
      this.members.declareDead(t);
      this.counts.deadTrainers++;
      this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `trainer ${t.workerId} (rank ${t.rank}) ${why} at step ${this.progressStep} of ${this.config.steps}`));
      return;
    }
    // One that held no batch holds no batch ticket, without which the shards refuse its pushes and training pulls: they
    // need not hear of its token (their lists of revoked tokens are bounded).
    this.members.declareDead(t, tookPart);
    if (tookPart) this.counts.deadTrainers++;
    const live = this.members.liveTrainers();
    const freed = this.steps ? this.steps.plan.release(t.workerId, live) : [];
    this.work.forget(t.workerId);
    if (tookPart) this.log.warn({ workerId: t.workerId, rank: t.rank, reassigned: freed, live: live.length }, `trainer ${why}; declared dead`);
    else this.log.info({ workerId: t.workerId, rank: t.rank, live: live.length }, `trainer ${why}; it had trained no batch and held none: dropped, not counted as lost`);
    // With no trainer left the job waits for one to join, but not forever.
    this.members.watchForOrphans(this.config.registerTimeoutMs, () => {
      // Trainers with no compute to read from leave in the end: a compute gone before them is likely the cause, so it is named.
      const lost = this.members.compute?.session ? null : this.computeLost;
      const cause = lost ? `; compute ${lost.workerId} had been disconnected since step ${lost.step} (${waited(Date.now() - lost.at)} before) and had not come back` : "";
      this.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `no trainer left for ${waited(this.config.registerTimeoutMs)} at step ${this.progressStep} of ${this.config.steps}${cause}`));
    });
    this.wake();
  }

  /**
   * A trainer can heartbeat and still never deliver (hung, or hostile): one
   * holding a batch for --stall-timeout-seconds without its gradients, or
   * the evaluation it was given without a report, is lost as a silent one
   * is, and its work goes to the others. A tick that comes late means this
   * process could not run (a long checkpoint write): that time is taken off
   * every clock, not charged to the trainers.
   */
  private watchStalls(): void {
    const limitMs = (this.config.stallTimeoutSeconds ?? 0) * 1000;
    if (limitMs <= 0) return;
    this.stallTimer = watchTimer(Math.max(100, Math.min(1000, limitMs / 4)), (now, blocked) => {
      if (blocked > 0) {
        this.steps?.plan.pauseClocks(blocked);
        this.work.evaluatorSince += blocked;
      }
      const seconds = (ms: number) => `${(ms / 1000).toFixed(0)}s`;
      for (const [workerId, batches] of this.steps?.plan.overdue(now, limitMs) ?? []) {
        const t = this.members.trainer(workerId);
        if (t) this.trainerLost(t, `held batch${batches.length === 1 ? "" : "es"} ${batches.join(", ")} for more than ${seconds(limitMs)} without delivering ${batches.length === 1 ? "it" : "them"} (--stall-timeout-seconds)`);
      }
      const evaluator = this.work.evaluator ? this.members.trainer(this.work.evaluator) : undefined;
      if (evaluator && now - this.work.evaluatorSince > limitMs) {
        this.trainerLost(evaluator, `did not report the evaluation it was given ${seconds(now - this.work.evaluatorSince)} ago (--stall-timeout-seconds)`);
      }
    });
  }

  private joined(t: TrainerMember): void {
    this.members.cancelOrphanWatch();
    const live = this.members.liveTrainers();
    this.steps?.plan.adopt(live);
    this.wake();
    this.log.info({ workerId: t.workerId, rank: t.rank, live: live.length }, "trainer joined the running job");
  }

  setBackend(workerId: string, backend: string): void {
    this.members.setBackend(workerId, backend);
  }

  private maybeStart(): void {
    const compute = this.members.compute;
    if (this.state !== "JOB_STATE_WAITING" || !compute || !this.members.ready()) return;
    let model: JobModel;
    try {
      model = buildModel(this.config, compute.source, this.resumed, this.log);
      const bestAgain = this.evals.bind(tasksOf(model.spec), Number(compute.source.evalRecords), compute.source.description);
      if (bestAgain) {
        this.bestWarnings.push(`--keep-best: ${bestAgain}`);
        this.log.warn(bestAgain);
      }
      this.nameResumedBest();
    } catch (err) {
      this.fail(err instanceof PangeaError ? err : OrchestratorErrors.create("ORCH_ERR_INTERNAL", `building the model: ${(err as Error).message}`));
      return;
    }
    model.warnings.push(...this.bestWarnings);
    this.model = model;
    const c = this.config;
    // --serving-sync discovery:<model>: no address given, the replicas etcd lists (main.ts reads them) before each push.
    const discovered = discoveredSyncModel(c.servingSync) !== null;
    const sync = c.servingSync?.length
      ? { targets: discovered ? [] : c.servingSync, intervalMs: (c.syncIntervalSeconds ?? 10) * 1000, denseIntervalMs: (c.denseSyncIntervalSeconds ?? 60) * 1000, sender: "orchestrator", model: modelIdentity(model.spec), ...(c.servingSyncToken ? { token: c.servingSyncToken } : {}), ...(discovered && c.servingReplicas ? { listReplicas: c.servingReplicas } : {}) }
      : null;
    const r = this.resumed;
    const shard = new ParameterShard(
      { index: 0, mode: c.mode, batchesPerStep: this.batchesPerStep, steps: c.steps, maxStaleness: c.maxStaleness, maxGradientAbs: c.maxGradientAbs, slotIds: compute.source.slotIds, checkpoint: { ...c, shardIndex: 0, exportBest: c.keepBest ?? false }, sync },
      model,
      r ? { version: r.denseUpdates, finishedBatches: r.finishedBatches, outstanding: r.outstanding } : null,
      this.log,
    );
    this.shard = shard;
    const coordinator = new StepCoordinator({ mode: c.mode, batchesPerStep: this.batchesPerStep, steps: c.steps }, shard, this.counts, r);
    this.steps = coordinator;
    this.sweeper = startExpirySweep(this.config, model.store, this.log);
    this.members.watchHeartbeats(this.config.heartbeatTimeoutMs, (t, why) => this.trainerLost(t, why));
    this.watchStalls();
    this.state = "JOB_STATE_RUNNING";
    this.startedAt = Date.now();
    this.startedWith = new Set(this.members.liveTrainers());
    shard.start(this.counts.syncRowsSent);
    clearTimeout(this.registerTimer);
    // A job resumed from a checkpoint at a step boundary whose evaluation it does not record evaluates first.
    const evalFirst = this.evals.dueAt(this.progressStep, c.steps);
    if (!evalFirst) coordinator.plan.beginStep(this.members.liveTrainers());
    const jobSpec = this.jobSpec();
    this.log.info({ jobSpec, denseParams: model.dense.totalElements(), resumedFromStep: this.resumed?.step }, "job started");
    for (const session of this.members.sessions()) session.send({ jobStarted: jobSpec });
    if (coordinator.plan.done) this.finishTraining();
    else if (evalFirst) this.holdForEval();
  }

  jobSpec(): JobSpec {
    const compute = this.members.compute!;
    const places = { source: compute.source, computeAddress: compute.address, psShards: [this.address, ...this.members.shardAddresses()] };
    return buildJobSpec(this.config, this.model!.spec, places, this.batchesPerStep, this.resumed?.step ?? 0);
  }

  /** Parameter sync's figures (null without --serving-sync). */
  syncState(): ReturnType<ServingSync["state"]> {
    return this.shard?.syncState() ?? null;
  }

  /** The running model, for parameter pulls; throws unless a job has started. */
  requireModel(readOnly: boolean): JobModel {
    if (!this.model) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `no parameters yet: the job is ${this.state}`);
    if (!readOnly && this.state !== "JOB_STATE_RUNNING") {
      throw this.notRunning("training pulls need a running job");
    }
    return this.model;
  }

  /**
   * Why a training call finds no running job. A failed job's calls are ABORTED with its reason: a trainer whose call
   * fails before its session stream brings the news must not read it as its own eviction and register again.
   */
  private notRunning(what: string): PangeaError {
    if (this.state === "JOB_STATE_FAILED") return OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `${what}: the job failed: ${this.error}`);
    return OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `${what}: the job is ${this.state}`);
  }

  /** Training pulls must be for the step under way, except in async mode where any version is fine. */
  checkPullStep(step: number, rank: number): void {
    if (this.config.mode !== "async" && step !== this.step) {
      throw OrchestratorErrors.create("ORCH_ERR_WRONG_STEP", `trainer rank ${rank} pulled for step ${step}, the job is at step ${this.step}`);
    }
  }

  /** What kind of worker an id is registered as, if it is. */
  kindOf(workerId: string): WorkerKind | undefined {
    return this.members.kindOf(workerId);
  }

  /** Refuses a call for a registered worker that does not carry its current registration's token. */
  checkWorkerToken(workerId: string, token: string, call: string): void {
    this.members.checkToken(workerId, token, call);
  }

  workerOfRank(rank: number): string | undefined {
    return this.members.trainerOfRank(rank)?.workerId;
  }

  /** A push for a rank carries the token of the trainer holding it (one no trainer holds is refused further on). */
  checkPush(push: { rank: number; token: string }, call: string): void {
    const owner = this.workerOfRank(push.rank);
    if (owner !== undefined) this.members.checkToken(owner, push.token, call);
  }

  /** A training pull for a rank comes from the trainer holding it, with its token: it counts ids and makes rows. */
  checkTrainingPull(pull: TrainingPull, call: string): SealedBatch {
    const t = this.members.trainerOfRank(pull.rank);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `${call}: no trainer with rank ${pull.rank} is registered`);
    this.members.checkToken(t.workerId, pull.token, call);
    // As its pushes are answered (and as the other shards answer its revoked token): a stalled trainer registers again.
    if (!t.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `${call}: trainer ${t.workerId} (rank ${pull.rank}) was declared dead; register again`);
    // A trainer pulls for the batch GetWork gave it: one holding none (registered and never given work, or done with
    // its step's) or naming another's would count ids and make rows for a batch it does not train. A pull sent ahead
    // names its step's first batch, and is served only if the plan gives the trainer its batches, so it is let
    // through to be held.
    const batch = pull.batch ?? 0;
    if (pull.ahead && !pull.aheadBatches?.includes(batch)) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `${call}: a pull sent ahead is for one of the batches it names (${pull.aheadBatches?.join(", ")}), not batch ${batch}`);
    }
    if (!pull.ahead && this.steps && this.steps.plan.ownerOf(batch) !== t.workerId) {
      const holds = this.steps.plan.holdsAny(t.workerId) ? `batch ${batch} is not one of them` : "it holds none";
      throw OrchestratorErrors.create("ORCH_ERR_NOT_ASSIGNED", `${call}: trainer ${t.workerId} (rank ${pull.rank}) pulls for the batches GetWork gave it, and ${holds}`);
    }
    const why = sealProblem(this.members.trainerTokens.key, this.config.batchSize, pull);
    if (why) throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} refused: ${why}`);
    return { run: this.run, batch, ids: pull.batchIds ?? 0, seal: pull.batchIdsSeal ?? "" };
  }

  /** What tells this run of the job from another (a resume under the same id), for the rows' counts of batches. */
  private get run(): string {
    return (this.runId ??= runOf(this.config.jobId, this.members.trainerTokens.key));
  }
  private runId: string | undefined;

  /** A batch the plan gives no trainer now (finished, or not given out): no training pull for it is taken. */
  batchDone(batch: number): boolean {
    return typeof this.steps?.plan.ownerOf(batch) !== "string";
  }

  /** Work for a trainer: held until it has batches, the job moves on, or ends. */
  getWork(workerId: string): Promise<Work> {
    return this.work.getWork(workerId);
  }

  /** Pulls sent ahead so far, by what became of them (HeldPulls.counts). */
  pullsAhead(): Readonly<HeldPulls["counts"]> {
    return this.heldPulls.counts;
  }

  /** A pull sent ahead by the trainer of `rank` for `batches` at `step`: true once it is to be served, false if withdrawn (HeldPulls). */
  holdPull(step: number, rank: number, batches: readonly number[], workingOn: readonly number[], cancelled?: AbortSignal): Promise<boolean> {
    if (this.config.mode === "async") throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", "a pull sent ahead is for sync and hybrid jobs; this job is async");
    const t = this.members.trainerOfRank(rank);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `no trainer with rank ${rank} is registered`);
    return this.heldPulls.hold(t.workerId, step, batches, workingOn, cancelled);
  }

  /** The job moved on: answer the held GetWork calls and decide the held pulls that can be now. */
  private wake(): void {
    this.work.wake();
    this.heldPulls.wake();
  }

  /** A push's per-task figures: none for a one-task model, one per task otherwise (they are averaged per task into the status). */
  private checkTaskFigures(g: WorkerGradients): void {
    const T = this.model ? taskCount(this.model.spec) : 1;
    for (const [field, list] of [["task_losses", g.taskLosses], ["task_streaming_auc", g.taskStreamingAuc]] as const) {
      if (!list?.length || (T > 1 && list.length === T)) continue;
      throw OrchestratorErrors.create("ORCH_ERR_BAD_GRADIENT", `trainer rank ${g.rank}, batch ${g.batchIndex ?? "?"}: ${field} has ${list.length} values; the job's model has ${T} task${T > 1 ? "s" : " (then it has none)"}`);
    }
  }

  async push(g: WorkerGradients): Promise<PushAck> {
    const steps = this.steps;
    if (this.state !== "JOB_STATE_RUNNING" || !steps) {
      throw this.notRunning("gradients refused");
    }
    const t = this.members.trainerOfRank(g.rank);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `no trainer with rank ${g.rank} is registered`);
    this.checkTaskFigures(g);
    const duplicate = steps.admit(g, t);
    if (duplicate) return duplicate;
    // The step of the batch (global batches s*W .. s*W+W-1 make step s), not the pushed version: async versions move per batch.
    this.members.credit(t, Math.floor(g.batchIndex! / this.batchesPerStep), g.streamingAuc, g.taskStreamingAuc);
    const { ack, next } = steps.apply(g);
    this.taskLosses.add(g.taskLosses ?? [], next !== "wait");
    // Before any checkpoint request of the step: a shard lacking a part of it applies it without (ShardHost.stepApplied).
    if (next !== "wait" && this.config.mode !== "async") this.tellShardsStepApplied(steps.version - 1);
    if (next === "done") this.finishTraining();
    else if (next !== "wait") this.afterUpdate(next === "step");
    return ack;
  }

  private tellShardsStepApplied(step: number): void {
    for (const o of this.members.shardSessions()) o.session.send({ stepApplied: { step } });
  }

  /** After a sync step (`stepDone`) or an async batch: an evaluation, a checkpoint, the next step. */
  private afterUpdate(stepDone: boolean): void {
    // async: batches handed out before the hold still come in; a checkpoint waits for the evaluation.
    if (this.evalHold) return;
    if (this.evals.dueAt(this.progressStep, this.config.steps)) {
      this.holdForEval();
      return;
    }
    let open: boolean;
    try {
      open = this.maybeCheckpoint(false);
    } catch (err) {
      this.failCheckpoint(err);
      return;
    }
    if (!stepDone) return;
    if (open) this.stepHeld = true;
    else this.nextStep();
  }

  /** No more work is handed out; once every batch handed out is in, one trainer evaluates (WorkDispatcher). */
  private holdForEval(): void {
    this.evalHold = { checkpointing: false };
    this.log.info({ step: this.progressStep }, "training pauses for a held-out evaluation");
    this.wake();
  }

  /** The evaluation during training is done (and its checkpoint whole): training goes on. */
  private releaseHold(): void {
    this.evalHold = null;
    if (this.config.mode === "async") this.wake();
    else this.nextStep();
  }

  private nextStep(): void {
    this.steps!.plan.beginStep(this.members.liveTrainers());
    this.wake();
  }

  /** Seconds this process has trained the job (0 before it started). */
  private runSeconds(): number {
    return this.startedAt ? ((this.endedAt || Date.now()) - this.startedAt) / 1000 : 0;
  }

  /** The running totals as they stand now, for a checkpoint. */
  private currentCounters(): JobCounters {
    const c = this.counts;
    return { ...c, reassignedBatches: this.steps?.plan.reassigned ?? c.reassignedBatches, trainSeconds: c.trainSeconds + this.runSeconds(), syncRowsSent: this.shard?.rowsSent(c.syncRowsSent) ?? c.syncRowsSent };
  }

  /**
   * Periodic checkpoints, at a step boundary: every N steps, or when N
   * seconds have passed, and the final one. Shard 0 writes its part first,
   * then asks the other shards for theirs; true while they are missing.
   */
  private maybeCheckpoint(final: boolean, force = false): boolean {
    const m = this.model!;
    const shard = this.shard!;
    const step = this.progressStep;
    if (!force && !shard.checkpointDue(step, final)) return false;
    const progress = { ...this.steps!.progress(m.dense.steps, this.config.batchSize, saveCounters(this.currentCounters()), this.taskLosses.save()), data: m.data };
    shard.writeCheckpoint(step, this.evals.history.length ? { ...progress, evaluations: [...this.evals.history] } : progress);
    const others = this.members.shardSessions();
    if (others.length === 0) {
      shard.commitCheckpoint(step, final);
      this.markBest();
      return false;
    }
    this.rounds.begin(step, final, others.map((o) => o.index));
    // async: a shard gets a batch's gradients after shard 0 took them, so it writes once it holds as many as shard 0 applied.
    for (const o of others) o.session.send({ checkpoint: { step, final, batches: shard.appliedBatches } });
    return true;
  }

  /** A parameter-server shard that cannot go on said why before ending (ReportFailure): the job fails with its reason. */
  shardFailed(workerId: string, code: string, message: string): void {
    if (!workerId) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", "failure report without a worker_id");
    const index = this.members.shardIndexOf(workerId);
    if (index === undefined) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `failure report from ${workerId}, which is not a parameter-server shard of this job`);
    this.failWith(shardFailure(code, message, this.shardAtStep(`parameter-server shard ${workerId} (index ${index})`)));
  }

  private shardAtStep(shard: string): string {
    return `${shard} at step ${this.progressStep} of ${this.config.steps}`;
  }

  /** A shard wrote its part of the checkpoint of `step` (or could not: `error`). */
  checkpointWritten(workerId: string, step: number, error: string, partsSkipped = 0): void {
    const index = this.members.shardIndexOf(workerId);
    if (index === undefined) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `checkpoint report from ${workerId}, which is not a parameter-server shard of this job`);
    if (this.isFinished()) return;
    this.partsSkipped.set(index, partsSkipped);
    if (error) {
      this.fail(OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `parameter-server shard ${workerId} (index ${index}) could not write its part of the checkpoint of step ${step}: ${error}`));
      return;
    }
    const whole = this.rounds.written(index, step);
    if (!whole) return;
    try {
      this.shard!.commitCheckpoint(step, whole.final);
    } catch (err) {
      this.failCheckpoint(err);
      return;
    }
    this.markBest();
    if (this.stepHeld && this.rounds.open === 0) {
      this.stepHeld = false;
      this.nextStep();
    }
    if (this.evalHold?.checkpointing && this.rounds.open === 0) this.releaseHold();
    if (whole.final) this.maybeComplete();
  }

  /** --keep-best: once the best evaluation's checkpoint is whole, best.json names it (and pruning keeps it from then on). */
  private markBest(): void {
    const step = this.bestPending;
    const ck = this.shard!.checkpointer;
    if (step === null || ck.committedStep !== step) return;
    this.bestPending = null;
    try {
      const record = this.evals.bestCheckpointed(ck.path);
      writeBest(this.config.checkpointDir, this.config.jobId, record);
      this.log.info({ step, task: record.task, metric: record.metric, value: record.value, checkpoint: ck.path }, "best checkpoint so far");
    } catch (err) {
      this.fail(OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `cannot write best.json beside ${ck.path}: ${(err as Error).message}`));
    }
  }

  private finishTraining(): void {
    this.endedAt = Date.now();
    try {
      this.maybeCheckpoint(true);
    } catch (err) {
      this.failCheckpoint(err);
      return;
    }
    this.state = "JOB_STATE_EVALUATING";
    this.wake();
    this.shard!.finishTraining();
  }

  reportEval(report: EvalReport__Output): void {
    const hold = this.evalHold;
    if (this.state === "JOB_STATE_RUNNING" && hold && !hold.checkpointing) {
      this.checkReport(report);
      const step = this.progressStep;
      if (Number(report.step) !== step) {
        throw OrchestratorErrors.create("ORCH_ERR_BAD_EVAL_REPORT", `evaluation report from ${report.workerId} refused: it scores step ${report.step}, the evaluation asked for is of step ${step}`);
      }
      this.work.evaluated();
      this.recordEval(report);
      let open: boolean;
      try {
        // The checkpoint of an evaluated step holds its evaluation: a periodic one due now is written after it, and the best one always.
        open = this.maybeCheckpoint(false, this.bestPending === step);
      } catch (err) {
        this.failCheckpoint(err);
        return;
      }
      // Recording the best checkpoint can fail the job (best.json not written): nothing more is handed out then.
      if (this.isFinished()) return;
      if (open) hold.checkpointing = true;
      else this.releaseHold();
      return;
    }
    if (this.state === "JOB_STATE_RUNNING" && hold) {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `evaluation report from ${report.workerId} refused: the evaluation of step ${this.progressStep} was taken, and its checkpoint is being written`);
    }
    if (this.state === "JOB_STATE_RUNNING") {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `evaluation report from ${report.workerId} for step ${report.step} refused: no evaluation is awaited now (the one asked for was reported already, or none was asked for)`);
    }
    if (this.state !== "JOB_STATE_EVALUATING") {
      throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `evaluation report refused: the job is ${this.state}`);
    }
    this.checkReport(report);
    this.evalReport = report;
    // The final checkpoint may be whole already: then best.json names it now.
    this.recordEval(report);
    this.markBest();
    this.maybeComplete();
  }

  private checkReport(report: EvalReport__Output): void {
    checkEvalReport(report, this.work.evaluator, Number(this.members.compute?.source.evalRecords ?? 0), this.model ? tasksOf(this.model.spec) : null);
  }

  /** Keeps an evaluation in the history; the best so far has its checkpoint named in best.json once whole. */
  private recordEval(report: EvalReport__Output): void {
    const best = this.evals.record(report);
    if (best) this.bestPending = this.progressStep;
    this.log.info({ step: Number(report.step), auc: report.auc, logloss: report.logloss, best: this.evals.keepBest ? best : undefined }, "held-out evaluation");
  }

  /** The job is complete once evaluated and its final checkpoint is whole (every shard wrote its part). */
  private maybeComplete(): void {
    const report = this.evalReport;
    if (!report || this.rounds.finalOpen || this.state !== "JOB_STATE_EVALUATING") return;
    this.state = "JOB_STATE_COMPLETED";
    // Exported before the completion is recorded: a process killed during the export leaves a job that a restart
    // evaluates and exports again, not one reported completed without its best version.
    if (this.evals.keepBest) this.exportBest();
    try {
      writeCompletion(this.config.checkpointDir, this.config.jobId, this.progressStep, report);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not record the job's completion; a restarted orchestrator would evaluate again");
    }
    this.countEveryShardsRows();
    this.log.info({ auc: report.auc, logloss: report.logloss, records: report.records, pullsAhead: this.heldPulls.counts }, "job completed");
    this.finish();
  }

  /** On several shards: the rows of every shard, from the final checkpoint's parts (the status has only shard 0's otherwise). */
  private countEveryShardsRows(): void {
    const path = this.shard?.checkpointer.path;
    if (this.config.psShards < 2 || !path) return;
    try {
      this.everyShardsRows = checkpointRowsOfEveryShard(path, this.config.psShards);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "cannot count every shard's embedding rows from the final checkpoint; the status counts shard 0's");
    }
  }

  /** --keep-best: the best checkpoint is the version exported (the final one if no evaluation had a figure to compare). */
  private exportBest(): void {
    const ck = this.shard?.checkpointer;
    if (!ck || !this.config.exportDir) return;
    const best = this.evals.best;
    const dir = best?.checkpoint || ck.path;
    const exported = ck.exportCheckpoint(dir);
    if (best?.checkpoint) best.exported = exported;
  }

  /**
   * A checkpoint that cannot be written or committed fails the job: training
   * on would lose more than the steps since the last one, and the step it
   * was due at is never handed out otherwise.
   */
  private failCheckpoint(err: unknown): void {
    this.fail(err instanceof PangeaError ? err : OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `the checkpoint of step ${this.progressStep}: ${(err as Error).message}`, { cause: err }));
  }

  fail(err: PangeaError): void {
    // With several shards, the tables full are this process's own (shard 0's): named, as another shard's report is.
    if (OrchestratorErrors.is(err, "ORCH_ERR_MEMORY_LIMIT") && this.config.psShards > 1) {
      err = shardFailure(err.code, err.message, this.shardAtStep("parameter-server shard 0 (the orchestrator)"));
    }
    this.failWith(err);
  }

  private failWith(err: PangeaError): void {
    if (this.isFinished()) return;
    this.error = `${err.code}: ${err.message}`;
    this.errorExitCode = err.exitCode;
    this.state = "JOB_STATE_FAILED";
    if (!this.endedAt) this.endedAt = Date.now();
    this.log.error({ code: err.code }, err.message);
    this.finish();
  }

  private finish(): void {
    clearTimeout(this.registerTimer);
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.members.stopWatching();
    this.shard?.stop();
    this.members.closeAll(this.finishedEvent());
    this.wake();
    this.emit("finished", this.status());
  }

  isFinished(): boolean {
    return this.state === "JOB_STATE_COMPLETED" || this.state === "JOB_STATE_FAILED";
  }

  status(): JobStatus {
    const run = this.runSeconds();
    // Before the start: how long the job has been waiting for its workers.
    const elapsed = this.startedAt || this.config.completed ? this.counts.trainSeconds + run : (Date.now() - this.createdAt) / 1000;
    return buildJobStatus({
      jobId: this.config.jobId,
      state: this.state,
      error: this.error,
      errorExitCode: this.errorExitCode,
      mode: this.config.mode,
      // A completed job reported again with a smaller --steps: its steps are those it trained, not the flag's.
      steps: this.config.completed ? Math.max(this.config.steps, this.progressStep) : this.config.steps,
      progressStep: this.progressStep,
      elapsedSeconds: elapsed,
      runSeconds: run,
      afterWarmup: this.steps?.rateAfterWarmup(this.endedAt || Date.now()) ?? 0,
      samples: this.steps?.samples ?? this.resumed?.samples ?? 0,
      resumedSamples: this.resumed?.samples ?? 0,
      resumedFromStep: this.resumed?.step ?? 0,
      restoredFrom: this.restoredFrom(),
      counters: this.currentCounters(),
      members: this.members,
      coordinator: this.steps,
      model: this.model,
      evalReport: this.evalReport,
      evaluations: this.evals.history,
      best: this.evals.bestStatus(),
      taskLosses: this.taskLosses,
      source: this.members.compute?.source ?? null,
      checkpointPath: this.shard?.checkpointer.path ?? (this.config.completed && this.resumed ? stepCheckpointDir(this.config.checkpointDir, this.config.jobId, this.resumed.step) : ""),
      checkpoints: this.shard?.checkpointer.list() ?? [],
      lastExport: this.shard?.checkpointer.lastExport ?? { dir: "", error: "" },
      ...(this.config.completed && this.resumed ? { final: this.finalFigures(this.resumed) } : {}),
      ...(this.everyShardsRows !== null ? { everyShardsRows: this.everyShardsRows } : {}),
      shardPartsSkipped: [...this.partsSkipped.values()].reduce((a, b) => a + b, 0),
    });
  }

  /** --restore-from's checkpoint as the status names it once the model was built from it, or "" (a checkpoint that does not fit fails the job unrestored). */
  private restoredFrom(): string {
    const from = this.config.resume || !this.model ? undefined : this.config.restoreFrom?.[0]?.manifest;
    return from && this.config.restoredFromDir ? `${this.config.restoredFromDir} (step ${from.step} of job ${from.jobId})` : "";
  }

  /** A job that started completed: what its final checkpoint records (every shard's rows). */
  private finalFigures(r: TrainingProgress): { batchesApplied: number; embeddingRows: number; model: string } {
    const parts = this.config.restoreFrom ?? [];
    const rows = parts.reduce((n, part) => n + part.manifest.embeddingRows, 0);
    return { batchesApplied: r.finishedBatches, embeddingRows: rows, model: parts[0] ? describeArchitecture(parts[0].manifest.model) : "" };
  }
}

/** A --register-timeout-ms wait as a message says it: milliseconds under a second (it said 0s for 1 ms), else seconds. */
function waited(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${ms % 1000 === 0 ? ms / 1000 : (ms / 1000).toFixed(1)}s`;
}
