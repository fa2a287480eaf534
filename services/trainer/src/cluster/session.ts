import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "@pangea/kit";
import { status as grpcStatus } from "@grpc/grpc-js";
import { describeCallError, isStatus, orchestratorClient, unary, waitReady, whilePlaceHeld, RpcErrors } from "@pangea/rpc";
import type { EvalReport, GetWorkRequest, HeartbeatRequest, HeartbeatResponse__Output, JobSpec__Output, JobStatus__Output, OrchestratorClient, RegisterWorkerRequest, RegisterWorkerResponse__Output, Work__Output, WorkerEvent__Output } from "@pangea/schema";
import { TrainerErrors } from "../errors.js";

async function jobState(client: OrchestratorClient, timeoutMs: number): Promise<string | null> {
  return unary<object, JobStatus__Output>("orchestrator", client.GetJobStatus.bind(client), {}, timeoutMs).then(
    (s) => s.state,
    () => null,
  );
}

/**
 * A trainer's membership in a job: registration (which gives it a rank) and
 * the session stream on which the orchestrator announces the job's start and
 * end. Keeping the stream open is how the orchestrator knows we are alive.
 */
export class ClusterSession {
  private stream: grpc.ClientReadableStream<WorkerEvent__Output> | null = null;
  private closing = false;
  private startWaiters: { resolve(s: JobSpec__Output | null): void; reject(e: unknown): void } | null = null;
  /** The job had already completed when this trainer joined: there is nothing to do. */
  private finishedBeforeStart = false;
  private spec: JobSpec__Output | null = null;
  private ended: Error | null = null;
  private endWaiters: ((err: Error) => void)[] = [];
  private heartbeat: NodeJS.Timeout | null = null;

  private constructor(
    private readonly client: OrchestratorClient,
    readonly address: string,
    readonly workerId: string,
    readonly rank: number,
    readonly worldSize: number,
    /** This registration's token: every later call for this trainer carries it (its pushes too). */
    readonly workerToken: string,
    private readonly log: Logger,
    private readonly phaseSeconds: () => Record<string, number>,
  ) {}

  /**
   * Registers with the orchestrator; null when its job has already ended (a new trainer is refused then, and has
   * nothing to do). A failed job is no failure of a trainer that joins it: one restarted after the job failed
   * (Docker's restart policy) exits 0 instead of failing again and again.
   */
  static async join(address: string, workerId: string, timeoutMs: number, log: Logger, phaseSeconds: () => Record<string, number> = () => ({})): Promise<ClusterSession | null> {
    const client = orchestratorClient(address);
    await waitReady(client, "orchestrator", address, timeoutMs);
    let res: RegisterWorkerResponse__Output;
    try {
      res = await whilePlaceHeld(
        (ms) => unary<RegisterWorkerRequest, RegisterWorkerResponse__Output>("orchestrator", client.RegisterWorker.bind(client), { workerId, kind: "WORKER_KIND_TRAINER" }, ms),
        Date.now() + timeoutMs,
        log,
        address,
        `another process holds trainer ${workerId}'s place`,
      );
    } catch (err) {
      const state = isStatus(err, grpcStatus.FAILED_PRECONDITION) ? await jobState(client, timeoutMs) : null;
      client.close();
      if (state === "JOB_STATE_COMPLETED" || state === "JOB_STATE_FAILED") return null;
      throw RpcErrors.create("RPC_ERR_PEER_FAILED", `registering: ${describeCallError(err, `orchestrator at ${address}`)}`);
    }
    const session = new ClusterSession(client, address, workerId, res.rank, res.worldSize, res.workerToken, log, phaseSeconds);
    session.openStream();
    return session;
  }

  private openStream(): void {
    const stream = this.client.WorkerSession({ workerId: this.workerId, workerToken: this.workerToken });
    this.stream = stream;
    stream.on("data", (event: WorkerEvent__Output) => this.onEvent(event));
    stream.on("error", (err) => {
      if (isStatus(err, grpcStatus.FAILED_PRECONDITION)) this.end(TrainerErrors.create("TRAINER_ERR_EVICTED", `session ${describeCallError(err, `orchestrator at ${this.address}`)}`));
      else if (!this.closing) this.end(TrainerErrors.create("TRAINER_ERR_LOST_ORCHESTRATOR", `session ${describeCallError(err, `orchestrator at ${this.address}`)}`));
    });
    stream.on("end", () => {
      if (!this.closing && !this.ended) this.end(TrainerErrors.create("TRAINER_ERR_LOST_ORCHESTRATOR", `orchestrator at ${this.address} closed the session`));
    });
  }

  private onEvent(event: WorkerEvent__Output): void {
    if (event.jobStarted) {
      this.spec = event.jobStarted;
      this.startHeartbeats(event.jobStarted.heartbeatMs || 1000);
      this.startWaiters?.resolve(event.jobStarted);
      this.startWaiters = null;
    } else if (event.jobFinished) {
      const { state, error } = event.jobFinished;
      if (state === "JOB_STATE_FAILED") this.end(TrainerErrors.create("TRAINER_ERR_JOB_FAILED", `the orchestrator ended the job: ${error}`));
      else {
        // The orchestrator closes the stream next; that is the normal end, not a lost peer.
        this.closing = true;
        this.log.info({ state }, "job finished");
        if (!this.spec) {
          this.finishedBeforeStart = true;
          this.startWaiters?.resolve(null);
          this.startWaiters = null;
        }
      }
    }
  }

  private end(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    this.startWaiters?.reject(err);
    this.startWaiters = null;
    for (const w of this.endWaiters.splice(0)) w(err);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.log.warn({ reason: err.message }, "session ended");
  }

  /** Why the job cannot go on, if it cannot. */
  get failure(): Error | null {
    return this.ended;
  }

  /** The job's spec once it starts; null when the job had already completed before this trainer joined. */
  waitForStart(): Promise<JobSpec__Output | null> {
    if (this.spec) return Promise.resolve(this.spec);
    if (this.finishedBeforeStart) return Promise.resolve(null);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => (this.startWaiters = { resolve, reject }));
  }

  /**
   * Heartbeats tell the orchestrator this trainer is alive even while a step
   * computes; an answer that we are no longer a member ends the session, so
   * the trainer registers again instead of pushing into the void.
   */
  private startHeartbeats(everyMs: number): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      unary<HeartbeatRequest, HeartbeatResponse__Output>("orchestrator", this.client.Heartbeat.bind(this.client), { workerId: this.workerId, workerToken: this.workerToken, phaseSeconds: this.phaseSeconds() }, Math.max(everyMs * 3, 2000)).then(
        (r) => {
          if (!r.member && !this.closing && r.state !== "JOB_STATE_COMPLETED" && r.state !== "JOB_STATE_FAILED") {
            this.end(TrainerErrors.create("TRAINER_ERR_EVICTED", `the orchestrator at ${this.address} declared trainer ${this.workerId} dead (missed heartbeats)`));
          }
        },
        () => {
          // a lost orchestrator shows on the session stream; one late heartbeat is not a verdict
        },
      );
    }, everyMs);
    this.heartbeat.unref();
  }

  /** Races `p` against the session ending, so nothing waits on a job this trainer is no longer part of. */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.ended) {
      // Its failure (a closed channel, usually) is not news, and must not be an unhandled rejection.
      p.catch(() => {});
      return Promise.reject(this.ended);
    }
    return new Promise<T>((resolve, reject) => {
      const onEnd = (err: Error) => reject(err);
      this.endWaiters.push(onEnd);
      p.then(
        (v) => {
          this.endWaiters = this.endWaiters.filter((w) => w !== onEnd);
          resolve(v);
        },
        (e) => {
          this.endWaiters = this.endWaiters.filter((w) => w !== onEnd);
          reject(this.ended ?? e);
        },
      );
    });
  }

  /** What to do next (held by the orchestrator until there is something). */
  async getWork(): Promise<Work__Output> {
    try {
      return await this.guard(unary<GetWorkRequest, Work__Output>("orchestrator", this.client.GetWork.bind(this.client), { workerId: this.workerId, workerToken: this.workerToken }));
    } catch (err) {
      if (this.ended) throw this.ended;
      if (isStatus(err, grpcStatus.FAILED_PRECONDITION)) throw TrainerErrors.create("TRAINER_ERR_EVICTED", `asking for work: ${describeCallError(err, `orchestrator at ${this.address}`)}`);
      throw TrainerErrors.create("TRAINER_ERR_LOST_ORCHESTRATOR", `asking for work: ${describeCallError(err, `orchestrator at ${this.address}`)}`);
    }
  }

  async reportBackend(backend: string): Promise<void> {
    await unary("orchestrator", this.client.ReportBackend.bind(this.client), { workerId: this.workerId, workerToken: this.workerToken, backend }, 10_000);
  }

  /**
   * Reports an evaluation. The orchestrator's refusal of it because none is awaited any more (another report took its
   * place, or the job moved on) is returned for the log, not thrown: training goes on, and the job's state reaches
   * this trainer by GetWork.
   */
  async reportEval(report: EvalReport): Promise<string | null> {
    try {
      await unary("orchestrator", this.client.ReportEval.bind(this.client), { ...report, workerToken: this.workerToken }, 30_000);
      return null;
    } catch (err) {
      // Only a refusal that leaves nothing awaited from this trainer: a report of impossible figures still ends it (the evaluation would wait for ever).
      if (isStatus(err, grpcStatus.FAILED_PRECONDITION)) return describeCallError(err, `orchestrator at ${this.address}`);
      throw TrainerErrors.create("TRAINER_ERR_LOST_PEER", `reporting evaluation: ${describeCallError(err, `orchestrator at ${this.address}`)}`);
    }
  }

  close(): void {
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.stream?.cancel();
    this.client.close();
  }
}
