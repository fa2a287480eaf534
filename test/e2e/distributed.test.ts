import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { loadCheckpoint, type CheckpointData } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync } from "node:fs";
import { ENTRY, closedPort, runNode, waitFor } from "../support/processes.js";
import { orchestratorClient, unary } from "@pangea/rpc";

/**
 * Distributed training under change and failure, with real processes: the
 * three modes, the N x B equivalence of sync mode, trainers dying, stalling
 * and joining, kill -9 of the orchestrator and of compute with a restart that
 * resumes exactly, and a soak run with random kills.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-dist-"));
/**
 * Steps of the default job (2 trainers, so 2 batches a step): long enough that
 * a trainer started after a kill still gets work before the job ends (with
 * native BLAS a 60-step job finished while the joining trainer started).
 */
const STEPS = 150;
const BATCHES = 2 * STEPS;
const CKPT = join(tmp, "ckpt");
const live: LocalCluster[] = [];

afterAll(async () => {
  await Promise.all(live.map((c) => c.stop(1_000)));
});

interface JobOptions {
  trainers?: number;
  steps?: number;
  batchSize?: number;
  psShards?: number;
  orchestratorPort?: number;
  computePort?: number;
  extra?: string[];
  trainerArgs?: string[];
}

async function startJob(name: string, o: JobOptions): Promise<{ c: LocalCluster; status: StatusClient }> {
  const c = await LocalCluster.start({
    trainers: o.trainers ?? 2,
    psShards: o.psShards ?? 1,
    orchestratorPort: o.orchestratorPort,
    computePort: o.computePort,
    logDir: join(tmp, name),
    orchestratorArgs: [
      "--job-id", name, "--steps", String(o.steps ?? STEPS), "--batch-size", String(o.batchSize ?? 64), "--checkpoint-dir", CKPT,
      "--heartbeat-timeout-ms", "3000", ...(o.extra ?? []),
    ],
    computeArgs: ["--eval-records", "2000", "--rejoin-timeout-ms", "30000"],
    trainerArgs: ["--rejoin-timeout-ms", "30000", ...(o.trainerArgs ?? [])],
  });
  live.push(c);
  const status = new StatusClient(c.orchestratorAddress);
  await status.connect(5_000);
  return { c, status };
}

async function finalStatus(status: StatusClient, timeoutMs = 120_000): Promise<JobStatus__Output> {
  return waitFor(
    "the job to end",
    async () => {
      const s = await status.get().catch(() => null);
      return s && (s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED") ? s : null;
    },
    timeoutMs,
  );
}

async function runJob(name: string, o: JobOptions, during?: (c: LocalCluster, status: StatusClient) => Promise<void>): Promise<JobStatus__Output> {
  const { c, status } = await startJob(name, o);
  try {
    await during?.(c, status);
    const s = await finalStatus(status);
    expect(s.error).toBe("");
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    return s;
  } finally {
    status.close();
    await c.stop(1_000);
  }
}

async function stepReached(status: StatusClient, step: number): Promise<void> {
  await waitFor(`step ${step}`, async () => Number((await status.get().catch(() => ({ step: 0 }))).step) >= step, 60_000, 50);
}

/** The largest difference between two checkpoints' dense parameters. */
function denseDiff(a: CheckpointData, b: CheckpointData): number {
  let worst = 0;
  a.dense.forEach((v, i) => {
    const w = b.dense[i]!;
    expect(w.length).toBe(v.length);
    for (let k = 0; k < v.length; k++) worst = Math.max(worst, Math.abs(v[k]! - w[k]!));
  });
  return worst;
}

/** The largest difference between two checkpoints' embedding rows (which must be the same ids). */
function rowDiff(a: CheckpointData, b: CheckpointData): number {
  const rows = (ck: CheckpointData) => {
    const m = new Map<string, Float32Array>();
    for (const t of ck.tables) for (let r = 0; r < t.rows; r++) m.set(`${t.ids[2 * r]}:${t.ids[2 * r + 1]}`, t.weights.subarray(r * t.dim, (r + 1) * t.dim));
    return m;
  };
  const ra = rows(a);
  const rb = rows(b);
  expect(rb.size).toBe(ra.size);
  let worst = 0;
  for (const [id, v] of ra) {
    const w = rb.get(id);
    expect(w, `row ${id}`).toBeDefined();
    for (let k = 0; k < v.length; k++) worst = Math.max(worst, Math.abs(v[k]! - w![k]!));
  }
  return worst;
}

/** Every global batch applied exactly once: the job's own accounting. */
function expectEveryBatchOnce(s: JobStatus__Output, total: number): void {
  expect(Number(s.batchesApplied)).toBe(total);
  expect(Number(s.missingBatches)).toBe(0);
  expect(Number(s.samples)).toBe(total * 64);
}

// Differences from float summation order (a step's batches arrive in any order) stay far below this.
const TOLERANCE = 2e-3;

/** An orchestrator process of its own (not a cluster's), for the jobs that end before any worker comes. */
function startOrchestrator(args: string[]): ChildProcess {
  return spawn(process.execPath, [ENTRY.orchestrator, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

/** The address an orchestrator process announces once it serves. */
function readyAddress(orch: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    createInterface({ input: orch.stdout! }).on("line", (l) => {
      if (l.startsWith('{"ready"')) resolve((JSON.parse(l) as { address: string }).address);
    });
    orch.on("exit", (code) => reject(new Error(`orchestrator exited ${code}`)));
  });
}

describe("distributed training", () => {
  let clean: CheckpointData;
  let cleanStatus: JobStatus__Output;

  beforeAll(async () => {
    cleanStatus = await runJob("clean", {});
    clean = loadCheckpoint(cleanStatus.checkpointPath);
  }, 150_000);

  it("sync: N trainers on batch B equal one trainer on N*B, step by step", async () => {
    const two = await runJob("nxb-2x32", { trainers: 2, batchSize: 32, steps: 8, extra: ["--checkpoint-every-steps", "1", "--keep-checkpoints", "0"] });
    const one = await runJob("nxb-1x64", { trainers: 1, batchSize: 64, steps: 8, extra: ["--checkpoint-every-steps", "1", "--keep-checkpoints", "0"] });
    expect(two.checkpoints).toHaveLength(8);
    expect(one.checkpoints).toHaveLength(8);
    for (let s = 0; s < 8; s++) {
      const a = loadCheckpoint(two.checkpoints[s]!);
      const b = loadCheckpoint(one.checkpoints[s]!);
      expect(a.manifest.step).toBe(s + 1);
      expect(denseDiff(a, b), `dense parameters after step ${s + 1}`).toBeLessThan(1e-4);
      expect(rowDiff(a, b), `embedding rows after step ${s + 1}`).toBeLessThan(1e-4);
    }
    expect(Math.abs(two.lastLoss - one.lastLoss)).toBeLessThan(1e-4);
  }, 150_000);

  it("the clean reference run accounts for every batch once and keeps the last 3 periodic checkpoints", () => {
    expectEveryBatchOnce(cleanStatus, BATCHES);
    expect(Number(cleanStatus.deadTrainers)).toBe(0);
    // Each trainer computed one batch per step, every step.
    const trainers = cleanStatus.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER");
    expect(trainers.map((w) => [Number(w.stepsDone), Number(w.batchesDone)])).toEqual(trainers.map(() => [Number(cleanStatus.step), Number(cleanStatus.step)]));
    expect(cleanStatus.mode).toBe("sync");
  }, 150_000);

  it("a trainer killed with SIGKILL: its batches go to the other, a new trainer joins, and the model equals the clean run's", async () => {
    let joinedName = "";
    const s = await runJob("elastic", {}, async (c, status) => {
      await stepReached(status, 15);
      c.process("trainer-1")!.child.kill("SIGKILL");
      await waitFor("trainer-1 declared dead", async () => (await status.get()).workers.some((w) => w.workerId === "trainer-1" && !w.alive), 5_000, 50);
      const before = Number((await status.get()).step);
      await stepReached(status, before + 5); // the survivor carries on alone
      joinedName = "trainer-extra";
      await c.addTrainer(joinedName);
    });
    expectEveryBatchOnce(s, BATCHES);
    expect(Number(s.deadTrainers)).toBe(1);
    const joined = s.workers.find((w) => w.workerId === joinedName)!;
    expect(Number(joined.batchesDone)).toBeGreaterThan(0);
    // Its steps are those it computed a batch of (one per step in sync mode), not the job's: it joined mid-job.
    expect(Number(joined.stepsDone)).toBe(Number(joined.batchesDone));
    expect(Number(joined.stepsDone)).toBeLessThan(Number(s.step));
    const ck = loadCheckpoint(s.checkpointPath);
    expect(denseDiff(ck, clean)).toBeLessThan(TOLERANCE);
    expect(rowDiff(ck, clean)).toBeLessThan(TOLERANCE);
  }, 150_000);

  // On 2 shards: the woken trainer may push to shard 1 first, which the orchestrator told its token was revoked (refused
  // as shard 0 refuses a dead trainer, FAILED_PRECONDITION), and if it stopped between its pushes to shard 1 and to shard
  // 0, the trainer given its batch pulls from shard 1 a step behind it: either way the job goes on and it registers again.
  it("a stalled trainer (SIGSTOP) is declared dead within the heartbeat timeout; when it wakes it registers again (2 shards)", async () => {
    const s = await runJob("stall", { steps: 150, psShards: 2 }, async (c, status) => {
      await stepReached(status, 10);
      const t1 = c.process("trainer-1")!;
      t1.child.kill("SIGSTOP");
      const stoppedAt = Date.now();
      await waitFor("trainer-1 declared dead", async () => (await status.get()).workers.some((w) => w.workerId === "trainer-1" && !w.alive), 8_000, 50);
      const detectedMs = Date.now() - stoppedAt;
      expect(detectedMs).toBeLessThan(3_000 + 2_000);
      const step = Number((await status.get()).step);
      await stepReached(status, step + 3);
      t1.child.kill("SIGCONT");
      await waitFor("trainer-1 to rejoin", async () => (await status.get()).workers.some((w) => w.workerId === "trainer-1" && w.alive), 15_000, 100);
    });
    expectEveryBatchOnce(s, 300);
    expect(Number(s.deadTrainers)).toBe(1);
    // Shard 1 was told the dead trainer's token (down its session, from the orchestrator process to the shard's).
    expect(readFileSync(join(tmp, "stall", "shard-1.log"), "utf8")).toContain('"tokens":1,"msg":"trainer tokens revoked by the orchestrator"');
  }, 150_000);

  it("a trainer whose id another process took while it was stopped waits for the place, and takes it back once the other is gone", async () => {
    const s = await runJob("squat", { steps: 150 }, async (c, status) => {
      await stepReached(status, 10);
      const t1 = c.process("trainer-1")!;
      t1.child.kill("SIGSTOP");
      await waitFor("trainer-1 declared dead", async () => (await status.get()).workers.some((w) => w.workerId === "trainer-1" && !w.alive), 8_000, 50);
      // Another process registers as trainer-1 and holds its session open.
      const squatter = orchestratorClient(c.orchestratorAddress);
      const { workerToken } = await unary<object, { workerToken: string }>("orchestrator", squatter.RegisterWorker.bind(squatter), { workerId: "trainer-1", kind: "WORKER_KIND_TRAINER" }, 5_000);
      const session = squatter.WorkerSession({ workerId: "trainer-1", workerToken });
      session.on("error", () => {});
      session.on("data", () => {});
      await waitFor("the squatter's session", async () => (await status.get()).workers.some((w) => w.workerId === "trainer-1" && w.alive && w.connected), 5_000, 50);
      t1.child.kill("SIGCONT");
      await waitFor("trainer-1 to be told its place is held", async () => readFileSync(t1.logPath, "utf8").includes("another process holds trainer trainer-1's place"), 20_000, 200);
      expect(t1.exitCode).toBeNull();
      session.cancel();
      squatter.close();
      await waitFor("trainer-1 to register again", async () => readFileSync(t1.logPath, "utf8").includes('"msg":"registered; waiting for the job to start"') && (await status.get()).workers.some((w) => w.workerId === "trainer-1" && w.alive && w.connected), 20_000, 200);
    });
    expectEveryBatchOnce(s, 300);
  }, 150_000);

  it("orchestrator killed with SIGKILL and restarted with --resume: same step, parameters and data position; the model equals the clean run's", async () => {
    const port = await closedPort();
    const s = await runJob("orch-restart", { orchestratorPort: port, extra: ["--checkpoint-every-steps", "10"] }, async (c, status) => {
      await stepReached(status, 25);
      c.process("orchestrator")!.child.kill("SIGKILL");
      await c.process("orchestrator")!.exited;
      await c.restart("orchestrator", ["--resume"]);
    });
    expect([20, 30]).toContain(Number(s.resumedFromStep));
    expectEveryBatchOnce(s, BATCHES);
    const ck = loadCheckpoint(s.checkpointPath);
    expect(ck.manifest.training!.finishedBatches).toBe(BATCHES);
    expect(denseDiff(ck, clean)).toBeLessThan(TOLERANCE);
    expect(rowDiff(ck, clean)).toBeLessThan(TOLERANCE);
  }, 150_000);

  it("an orchestrator restarted with --resume after its job completed reports the completed job from completed.json, without waiting for workers; a trainer joining it exits 0", async () => {
    const first = await runJob("completed-restart", { steps: 20 });
    expect(existsSync(join(CKPT, "completed-restart", "completed.json"))).toBe(true);
    const orch = startOrchestrator(["--job-id", "completed-restart", "--steps", "20", "--batch-size", "64", "--checkpoint-dir", CKPT, "--resume", "--port", "0", "--register-timeout-ms", "1000"]);
    try {
      const address = await readyAddress(orch);
      const status = new StatusClient(address);
      await status.connect(5_000);
      // Past the register timeout, still completed: nothing waited for trainers.
      await new Promise((r) => setTimeout(r, 1_500));
      const s = await status.get();
      status.close();
      expect(s.state).toBe("JOB_STATE_COMPLETED");
      expect(s.error).toBe("");
      expect(Number(s.resumedFromStep)).toBe(20);
      expect(s.eval!.auc).toBe(first.eval!.auc);
      expect(s.eval!.records).toBe(first.eval!.records);
      const trainer = await runNode(ENTRY.trainer, ["--orchestrator", address, "--port", "0", "--metrics-port", "0"], { timeoutMs: 30_000 });
      expect(trainer.code, trainer.stderr).toBe(0);
      expect(trainer.stderr).toContain("the job had already ended (completed or failed) when this trainer joined; nothing to do");
    } finally {
      orch.kill("SIGKILL");
    }
  }, 90_000);

  it("a trainer joining an orchestrator whose job failed exits 0 saying the job had ended (Docker's restart policy does not start it again and again)", async () => {
    const orch = startOrchestrator(["--job-id", "failed-join", "--steps", "5", "--checkpoint-dir", CKPT, "--port", "0", "--register-timeout-ms", "300"]);
    try {
      const address = await readyAddress(orch);
      const status = new StatusClient(address);
      await status.connect(5_000);
      const failed = await waitFor("the job to fail", async () => ((await status.get()).state === "JOB_STATE_FAILED" ? true : null), 10_000, 100);
      status.close();
      expect(failed).toBe(true);
      const trainer = await runNode(ENTRY.trainer, ["--orchestrator", address, "--port", "0", "--metrics-port", "0"], { timeoutMs: 30_000 });
      expect(trainer.code, trainer.stderr).toBe(0);
      expect(trainer.stderr).toContain("the job had already ended (completed or failed) when this trainer joined; nothing to do");
    } finally {
      orch.kill("SIGKILL");
    }
  }, 60_000);

  it("compute killed with SIGKILL and restarted, three times, while each trainer holds two batches a step (--batches-per-step 4) and reads two steps ahead: trainers fetch the same batches from it; the model equals the clean run's", async () => {
    const o: JobOptions = { steps: 45, extra: ["--batches-per-step", "4"] };
    const reference = loadCheckpoint((await runJob("compute-restarts-ref", o)).checkpointPath);
    const s = await runJob("compute-restarts", o, async (c, status) => {
      for (const step of [8, 20, 32]) {
        await stepReached(status, step);
        c.process("compute")!.child.kill("SIGKILL");
        await c.process("compute")!.exited;
        await c.restart("compute");
      }
    });
    expectEveryBatchOnce(s, 4 * 45);
    const ck = loadCheckpoint(s.checkpointPath);
    expect(denseDiff(ck, reference)).toBeLessThan(TOLERANCE);
    expect(rowDiff(ck, reference)).toBeLessThan(TOLERANCE);
  }, 180_000);

  it("async: gradients staler than --max-staleness are dropped and counted; within the bound they are applied", async () => {
    // The two jobs side by side: each waits on round trips more than on the cores.
    const [strict, loose] = await Promise.all([
      runJob("async-strict", { extra: ["--mode", "async", "--max-staleness", "0"] }),
      runJob("async-loose", { extra: ["--mode", "async", "--max-staleness", "50"] }),
    ]);
    expect(strict.mode).toBe("async");
    expectEveryBatchOnce(strict, BATCHES);
    expect(Number(strict.staleGradients)).toBeGreaterThan(0);
    expect(Number(strict.maxStalenessSeen)).toBe(0);
    expect(Number(loose.staleGradients)).toBe(0);
    expect(Number(loose.maxStalenessSeen)).toBeGreaterThan(0);
    expect(loose.lastLoss).toBeLessThan(loose.firstLoss);
  }, 150_000);

  it("hybrid on 2 parameter-server shards: embeddings move on arrival, dense parameters per step; the job trains", async () => {
    const s = await runJob("hybrid", { psShards: 2, extra: ["--mode", "hybrid", "--checkpoint-every-steps", "20"] });
    expect(s.mode).toBe("hybrid");
    expectEveryBatchOnce(s, BATCHES);
    expect(s.lastLoss).toBeLessThan(s.firstLoss);
    expect(s.eval!.auc).toBeGreaterThan(0.6);
    const sync2 = loadCheckpoint(s.checkpointPath);
    expect(sync2.manifest.training!.mode).toBe("hybrid");
    expect(loadCheckpoint(`${s.checkpointPath}.shard-1`).manifest.step).toBe(STEPS);
  }, 150_000);

  it("soak: random SIGKILLs of trainers and of compute (each restarted) for ~20s end with every batch applied once and the clean model", async () => {
    // Reference: the same job on one trainer, 3 batches per step, run beside the soak (its
    // steps wait on round trips more than on the cores). Long enough that the kills below
    // (one every 0.5-1.5 s plus a restart, ~4 s a kill here) land while the soak job runs:
    // on the fastest run seen, 500 steps were over after 4 kills.
    const SOAK_STEPS = 900;
    const reference = runJob("soak-ref", { trainers: 1, steps: SOAK_STEPS, extra: ["--batches-per-step", "3"] });
    reference.catch(() => undefined);
    let kills = 0;
    const s = await runJob("soak", { trainers: 3, steps: SOAK_STEPS, extra: ["--batches-per-step", "3"] }, async (c, status) => {
      let seed = 7;
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      await stepReached(status, 5);
      // ~20 s of kills, and at least 6 of them however slowly a loaded machine restarts a process.
      const until = Date.now() + 20_000;
      while ((Date.now() < until || kills < 6) && (await status.get()).state === "JOB_STATE_RUNNING") {
        await new Promise((r) => setTimeout(r, 500 + rand() * 1_000));
        const victim = rand() < 0.2 ? "compute" : `trainer-${Math.floor(rand() * 3)}`;
        const p = c.process(victim)!;
        if (p.exitCode !== null) continue;
        p.child.kill("SIGKILL");
        kills++;
        await p.exited;
        if ((await status.get()).state !== "JOB_STATE_RUNNING") break;
        await c.restart(victim);
      }
    });
    const ref = await reference;
    expect(kills).toBeGreaterThan(5);
    expectEveryBatchOnce(s, 3 * SOAK_STEPS);
    const a = loadCheckpoint(s.checkpointPath);
    const b = loadCheckpoint(ref.checkpointPath);
    expect(denseDiff(a, b)).toBeLessThan(TOLERANCE);
    expect(rowDiff(a, b)).toBeLessThan(TOLERANCE);
  }, 300_000);
});
