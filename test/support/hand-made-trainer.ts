import type { GetWorkRequest, JobSpec__Output, RegisterWorkerRequest, RegisterWorkerResponse__Output, WorkerEvent__Output, Work__Output } from "@pangea/schema";
import { orchestratorClient, unary } from "@pangea/rpc";

/** A trainer of a test's own making, joined to a job: what the orchestrator gave it, and how it asks for work and leaves. */
export interface HandMadeTrainer {
  rank: number;
  token: string;
  job: JobSpec__Output;
  getWork(): Promise<Work__Output>;
  /** Stops its heartbeats and closes its session: the orchestrator sees it gone. */
  leave(): void;
}

/**
 * Registers `workerId` as a trainer with the orchestrator at `address`, opens its session, waits for the job to start
 * and keeps its heartbeats going (every 500 ms) until it leaves: a member that then does what the test makes it do.
 */
export async function joinAsTrainer(address: string, workerId: string): Promise<HandMadeTrainer> {
  const c = orchestratorClient(address);
  const reg = await unary<RegisterWorkerRequest, RegisterWorkerResponse__Output>("orchestrator", c.RegisterWorker.bind(c), { workerId, kind: "WORKER_KIND_TRAINER", address: "" }, 10_000);
  const token = reg.workerToken;
  const session = c.WorkerSession({ workerId, workerToken: token });
  session.on("error", () => {});
  const job = await new Promise<JobSpec__Output>((resolve) => session.on("data", (e: WorkerEvent__Output) => e.jobStarted && resolve(e.jobStarted)));
  const beat = setInterval(() => void unary("orchestrator", c.Heartbeat.bind(c), { workerId, workerToken: token }, 5_000).catch(() => {}), 500);
  return {
    rank: reg.rank,
    token,
    job,
    getWork: () => unary<GetWorkRequest, Work__Output>("orchestrator", c.GetWork.bind(c), { workerId, workerToken: token }, 60_000),
    leave: () => {
      clearInterval(beat);
      session.cancel();
      c.close();
    },
  };
}
