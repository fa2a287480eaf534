import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import type { Logger } from "@pangea/kit";
import { sealBatchIds } from "@pangea/rpc";
import type { EvalReport__Output, SourceInfo__Output, WorkerEvent } from "@pangea/schema";
import type { WorkerGradients } from "../../src/aggregation/gradient-aggregator.js";
import type { JobConfig } from "../../src/job/job-config.js";
import { Job } from "../../src/job/job.js";
import type { SessionSink } from "../../src/job/membership.js";

const tempDirs: string[] = [];

/** A fresh directory under the system's temp dir, removed when the test file is done. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A worker's session as the job sees it: the events it was sent, and whether the job ended it. */
export class FakeSession implements SessionSink {
  readonly events: WorkerEvent[] = [];
  ended = false;
  /** The registration's worker token (a trainer's pushes carry it). */
  workerToken = "";

  send(event: WorkerEvent): void {
    if (this.ended) throw new Error("event sent down an ended session");
    this.events.push(event);
  }

  end(): void {
    this.ended = true;
  }

  started(): boolean {
    return this.events.some((e) => e.jobStarted);
  }

  finished(): WorkerEvent["jobFinished"] {
    return this.events.find((e) => e.jobFinished)?.jobFinished;
  }
}

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  fields: Record<string, unknown>;
  msg: string;
}

/** A Logger that keeps its lines, so a test can assert what the job said. */
export function recordingLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine["level"]) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, fields, msg });
  const log = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: () => log };
  return { log: log as unknown as Logger, lines };
}

export const SOURCE: SourceInfo__Output = {
  description: "in-memory test source",
  numDense: 2,
  slotIds: [0, 1],
  slotDims: [2, 2],
  slotPooling: [],
  trainRecords: 1000,
  evalRecords: 200,
  hasGroundTruth: false,
  groundTruthAuc: 0,
  groundTruthLogloss: 0,
  skippedRecords: 0,
  skippedSummary: "",
  tasks: [],
  hasGroupSlot: false,
  groupSlot: 0,
  groundTruthTaskAuc: [],
  groundTruthTaskLogloss: [],
  featureInputs: "",
  dataWarnings: [],
};

export function jobConfig(over: Partial<JobConfig> = {}): JobConfig {
  return {
    jobId: "unit-job",
    trainers: 2,
    steps: 2,
    batchSize: 4,
    evalBatchSize: 4,
    embeddingDim: 2,
    architecture: { name: "dlrm", bottomMlp: [2], topMlp: [2] },
    denseLr: 0.01,
    denseOptimizer: "adam",
    sparseLr: 0.1,
    sparseOptimizer: "adagrad",
    slotConfigs: new Map(),
    maxEmbeddingBytes: 0,
    expireSweepSeconds: 60,
    psShards: 1,
    gradientCompression: "none",
    mode: "sync",
    batchesPerStep: 0,
    maxStaleness: 4,
    heartbeatMs: 1000,
    heartbeatTimeoutMs: 60_000,
    onTrainerLoss: "reassign",
    checkpointEverySteps: 0,
    checkpointEverySeconds: 0,
    keepCheckpoints: 0,
    seed: 7,
    checkpointDir: tempDir("pangea-job-unit-"),
    registerTimeoutMs: 60_000,
    ...over,
  };
}

/** A job with its compute registered and connected, and `trainers` trainers registered with open sessions. */
export function startedJob(over: Partial<JobConfig> = {}, source: SourceInfo__Output = SOURCE, trainers = over.trainers ?? 2) {
  const { log, lines } = recordingLog();
  const job = new Job(jobConfig(over), log);
  job.address = "127.0.0.1:7000";
  const { pushKey } = job.registerCompute("compute-0", "127.0.0.1:7001", source);
  const computeSession = new FakeSession();
  job.openSession("compute-0", computeSession);
  const sessions = new Map<string, FakeSession>();
  for (let i = 0; i < trainers; i++) joinTrainer(job, `trainer-${i}`, sessions);
  /** Train batch `batch` as compute serves it, holding `nnz` ids, with compute's seal (a training pull carries it). */
  const batchOf = (batch: number, nnz = 4096) => ({ batchIndex: batch, nnz, idsSeal: sealBatchIds(pushKey, batch, job.config.batchSize, nnz) });
  return { job, sessions, computeSession, lines, batchOf };
}

/** Registers a trainer and opens its session; returns its rank. */
export function joinTrainer(job: Job, workerId: string, sessions: Map<string, FakeSession>): number {
  const { rank, workerToken } = job.registerTrainer(workerId);
  const s = new FakeSession();
  s.workerToken = workerToken;
  sessions.set(workerId, s);
  job.openSession(workerId, s);
  return rank;
}

/** Gradients of a trainer for one global batch: zero dense gradients, no embedding rows. */
export function gradients(job: Job, rank: number, batchIndex: number, loss = 0.5): WorkerGradients {
  return {
    rank,
    step: job.step,
    batchSize: job.config.batchSize,
    loss,
    dense: job.model!.dense.values.map((v) => new Float32Array(v.length)),
    sparseIds: new Uint32Array(0),
    sparseGrads: new Float32Array(0),
    batchIndex,
    streamingAuc: Number.NaN,
  };
}

export function evalReport(workerId: string, over: Partial<EvalReport__Output> = {}): EvalReport__Output {
  return { workerId, step: 2, records: 200, auc: 0.7, logloss: 0.5, meanPrediction: 0.3, labelRate: 0.25, tasks: [], ...over } as EvalReport__Output;
}

/** The ORCH_ERR_* code a call throws or rejects with ("" if it does not). */
export async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return "";
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}
