import { existsSync } from "node:fs";
import { join as joinPath } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobStatus } from "@pangea/schema";
import { Job } from "../src/job/job.js";
import { OrchestratorErrors } from "../src/errors.js";
import { defaultSlotConfig } from "../src/job/job-model.js";
import { ticketIsFor, tokenIsForRank } from "@pangea/rpc";
import { FakeSession, SOURCE, codeOf, evalReport, gradients, joinTrainer, jobConfig, recordingLog, startedJob } from "./fakes/job-fixture.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("Job: registration to RUNNING", () => {
  it("waits for compute and the expected trainers, then starts and sends every session the job", () => {
    const { log, lines } = recordingLog();
    const job = new Job(jobConfig(), log);
    job.address = "127.0.0.1:7000";
    const sessions = new Map<string, FakeSession>();
    expect(joinTrainer(job, "trainer-0", sessions)).toBe(0);
    expect(joinTrainer(job, "trainer-1", sessions)).toBe(1);
    expect(job.state).toBe("JOB_STATE_WAITING");
    job.registerCompute("compute-0", "127.0.0.1:7001", SOURCE);
    expect(job.state).toBe("JOB_STATE_RUNNING");
    for (const s of sessions.values()) {
      const spec = s.events[0]!.jobStarted!;
      expect(spec).toMatchObject({ jobId: "unit-job", worldSize: 2, batchesPerStep: 2, steps: 2, computeAddress: "127.0.0.1:7001", psShards: ["127.0.0.1:7000"], mode: "sync", resumedFromStep: 0, hasGroupSlot: false });
      expect(spec.model).toEqual({ numDense: 2, slotIds: [0, 1], embeddingDim: 2, bottomMlp: [2], topMlp: [2], architectureJson: JSON.stringify({ name: "dlrm", bottomMlp: [2], topMlp: [2] }), slotDims: [], slotPooling: [], tasks: [] });
    }
    expect(lines.map((l) => l.msg)).toEqual(["trainer registered", "trainer registered", "compute registered", "job started"]);
  });

  it("deals a sync step's batches round-robin over the live trainers in rank order", async () => {
    const { job } = startedJob();
    const [w0, w1] = [await job.getWork("trainer-0"), await job.getWork("trainer-1")];
    expect(w0.batchIndices).toEqual([0]);
    expect(w1.batchIndices).toEqual([1]);
    expect(job.status()).toMatchObject({ state: "JOB_STATE_RUNNING", step: 0, liveTrainers: 2, missingBatches: 0, batchesApplied: 0 });
  });

  it("gives compute's registration the key trainers' tokens are bound to their ranks with (compute checks batch streams with it)", () => {
    const job = new Job(jobConfig(), recordingLog().log);
    const sessions = new Map<string, FakeSession>();
    expect(joinTrainer(job, "trainer-0", sessions)).toBe(0);
    const { pushKey } = job.registerCompute("compute-0", "127.0.0.1:7001", SOURCE);
    const token = sessions.get("trainer-0")!.workerToken;
    expect([0, 1].map((rank) => tokenIsForRank(pushKey, rank, token))).toEqual([true, false]);
  });

  it("gives each batch a ticket for the registration it went to, made with the key a shard's registration gets", async () => {
    const { job, sessions } = startedJob({ psShards: 2 });
    const { ticketKey } = job.registerShard("shard-1", 1, "127.0.0.1:7002");
    job.openSession("shard-1", new FakeSession());
    const [w0, w1] = [await job.getWork("trainer-0"), await job.getWork("trainer-1")];
    const token = (id: string) => sessions.get(id)!.workerToken;
    expect(ticketIsFor(ticketKey, 0, token("trainer-0"), 0, w0.batchTickets[0]!)).toBe(true);
    expect(ticketIsFor(ticketKey, 1, token("trainer-1"), 1, w1.batchTickets[0]!)).toBe(true);
    expect(ticketIsFor(ticketKey, 1, token("trainer-1"), 0, w0.batchTickets[0]!)).toBe(false);
  });

  it("a trainer registering late joins the running job and is sent the job at once", () => {
    const { job, sessions, lines } = startedJob();
    expect(joinTrainer(job, "trainer-2", sessions)).toBe(2);
    expect(sessions.get("trainer-2")!.started()).toBe(true);
    expect(lines.at(-1)).toMatchObject({ msg: "trainer joined the running job", fields: { workerId: "trainer-2", live: 3 } });
  });
});

describe("Job: registration checks", () => {
  it("refuses a trainer beyond the expected ones, a second connected process of one id, and a second connected compute", async () => {
    const { log } = recordingLog();
    const job = new Job(jobConfig(), log);
    const sessions = new Map<string, FakeSession>();
    joinTrainer(job, "trainer-0", sessions);
    expect(await codeOf(() => job.registerTrainer("trainer-0"))).toBe("ORCH_ERR_WORKER_CONFLICT");
    joinTrainer(job, "trainer-1", sessions);
    expect(await codeOf(() => job.registerTrainer("trainer-2"))).toBe("ORCH_ERR_CLUSTER_FULL");
    job.registerCompute("compute-0", "127.0.0.1:7001", SOURCE);
    job.openSession("compute-0", new FakeSession());
    expect(await codeOf(() => job.registerCompute("compute-1", "127.0.0.1:7002", SOURCE))).toBe("ORCH_ERR_WORKER_CONFLICT");
  });

  it("a compute coming back to a running job must serve the same data", async () => {
    const { job } = startedJob();
    expect(await codeOf(() => job.registerCompute("compute-0", "127.0.0.1:7009", { ...SOURCE, trainRecords: 999 }))).toBe("ORCH_ERR_DATA_MISMATCH");
    job.registerCompute("compute-0", "127.0.0.1:7009", SOURCE);
    expect(job.jobSpec().computeAddress).toBe("127.0.0.1:7009");
  });

  it("a session for an unregistered worker is refused", async () => {
    const { log } = recordingLog();
    const job = new Job(jobConfig(), log);
    expect(await codeOf(() => job.openSession("nobody", new FakeSession()))).toBe("ORCH_ERR_UNKNOWN_WORKER");
  });

  it("GetWork without a worker id (an empty or truncated message) is malformed, not an unknown trainer's", async () => {
    const { job } = startedJob();
    expect(await codeOf(() => job.getWork(""))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => job.getWork("trainer-9"))).toBe("ORCH_ERR_UNKNOWN_WORKER");
  });
});

describe("Job: training to COMPLETED", () => {
  it("applies each sync step when its last batch arrives, checkpoints at the end, asks one trainer to evaluate, completes on its report", async () => {
    const { job, sessions, lines } = startedJob();
    const finished: JobStatus[] = [];
    job.on("finished", (s) => finished.push(s));
    const first = await job.push(gradients(job, 0, 0, 0.6));
    expect(first).toMatchObject({ step: 0, workers: 0 }); // the step waits for batch 1
    const step = await job.push(gradients(job, 1, 1, 0.4));
    expect(step).toMatchObject({ step: 1, workers: 2, meanLoss: 0.5 });
    expect(job.status()).toMatchObject({ step: 1, firstLoss: 0.5, firstLossStep: 1, samples: 8, batchesApplied: 2 });
    expect(await codeOf(() => job.push(gradients(job, 0, 3)))).toBe("ORCH_ERR_NOT_ASSIGNED"); // step 1 deals batch 3 to trainer-1
    await job.push(gradients(job, 0, 2));
    await job.push(gradients(job, 1, 3));
    expect(job.state).toBe("JOB_STATE_EVALUATING");
    const status = job.status();
    expect(status.checkpointPath).toBe(joinPath(job.config.checkpointDir, "unit-job", "step-2"));
    expect(status.checkpoints).toEqual([status.checkpointPath]);
    expect(lines.some((l) => l.msg === "checkpoint saved" && l.fields.step === 2)).toBe(true);

    const asked = await job.getWork("trainer-1");
    expect(asked).toMatchObject({ done: true, evaluate: true, computeAddress: "127.0.0.1:7001" });
    const other = job.getWork("trainer-0"); // held: nobody else evaluates
    expect(await codeOf(() => job.reportEval(evalReport("trainer-0")))).toBe("ORCH_ERR_BAD_EVAL_REPORT");
    expect(job.state).toBe("JOB_STATE_EVALUATING");
    job.reportEval(evalReport("trainer-1"));
    expect(job.state).toBe("JOB_STATE_COMPLETED");
    expect(await other).toMatchObject({ done: true, state: "JOB_STATE_COMPLETED", error: "" });
    for (const s of sessions.values()) {
      expect(s.finished()).toEqual({ state: "JOB_STATE_COMPLETED", error: "" });
      expect(s.ended).toBe(true);
    }
    expect(finished).toHaveLength(1);
    expect(finished[0]).toMatchObject({ state: "JOB_STATE_COMPLETED", eval: { auc: 0.7 }, missingBatches: 0, batchesApplied: 4, duplicateBatches: 0 });
    expect(existsSync(joinPath(job.config.checkpointDir, "unit-job"))).toBe(true);
  });

  it("refuses per-task figures from a push to a one-task job (they would be averaged into a task the job lacks)", async () => {
    const { job } = startedJob();
    expect(await codeOf(() => job.push({ ...gradients(job, 0, 0), taskLosses: [0.1, 0.2] }))).toBe("ORCH_ERR_BAD_GRADIENT");
    await expect(job.push({ ...gradients(job, 0, 0), taskStreamingAuc: [0.5] })).rejects.toThrow(/task_streaming_auc has 1 values; the job's model has 1 task \(then it has none\)/);
    expect(await job.push(gradients(job, 0, 0))).toMatchObject({ step: 0, meanLoss: 0.5 });
  });

  it("refuses a training pull for a batch the trainer does not hold (it holds none, or another's), or without compute's seal on it; one sent ahead is let through for a batch it names", async () => {
    const { job, sessions, batchOf } = startedJob();
    expect(joinTrainer(job, "trainer-2", sessions)).toBe(2);
    const token = (w: string) => sessions.get(w)!.workerToken;
    const sealed = (batch: number, nnz = 40) => {
      const b = batchOf(batch, nnz);
      return { batch, batchIds: b.nnz, batchIdsSeal: b.idsSeal };
    };
    const pull = (rank: number, w: string, batch: number, ahead: number[] = []) => () =>
      job.checkTrainingPull({ rank, token: token(w), ahead: ahead.length > 0, aheadBatches: ahead, ...sealed(batch) }, `training pull for rank ${rank}`);
    await expect(async () => pull(2, "trainer-2", 0)()).rejects.toThrow(/^training pull for rank 2: trainer trainer-2 \(rank 2\) pulls for the batches GetWork gave it, and it holds none$/);
    expect(await codeOf(pull(2, "trainer-2", 0))).toBe("ORCH_ERR_NOT_ASSIGNED");
    expect(pull(2, "trainer-2", 2, [2])()).toMatchObject({ batch: 2, ids: 40, seal: sealed(2).batchIdsSeal });
    // A pull sent ahead bounds the rows of a batch it names, not another.
    await expect(async () => pull(2, "trainer-2", 5, [2])()).rejects.toThrow(/a pull sent ahead is for one of the batches it names \(2\), not batch 5/);
    expect(pull(0, "trainer-0", 0)()).toMatchObject({ batch: 0, ids: 40 });
    // The run is the job's and its orchestrator's key: a resume under the same id is another run.
    expect(pull(0, "trainer-0", 0)()!.run).toMatch(new RegExp(`^${job.config.jobId}\\.[A-Za-z0-9_-]{12}$`));
    // Trainer 1's batch, named by trainer 0 (compute serves any batch asked for, with its seal).
    await expect(async () => pull(0, "trainer-0", 1)()).rejects.toThrow(/trainer trainer-0 \(rank 0\) pulls for the batches GetWork gave it, and batch 1 is not one of them/);
    // Its own batch without the seal, or with a count compute did not seal.
    const own = (over: object) => () => job.checkTrainingPull({ rank: 0, token: token("trainer-0"), batch: 0, ...over }, "training pull for rank 0");
    await expect(async () => own({})()).rejects.toThrow(/^training pull for rank 0 refused: it carries no batch_ids_seal/);
    await expect(async () => own({ ...sealed(0), batchIds: 4000 })()).rejects.toThrow(`training pull for rank 0 refused: its batch_ids_seal is not compute's seal on batch 0 of the job's batch size ${job.config.batchSize} holding 4000 ids`);
    expect(await codeOf(own({}))).toBe("ORCH_ERR_PERMISSION_DENIED");
    expect([0, 1, 2].map((j) => job.batchDone(j))).toEqual([false, false, true]);
    await job.push(gradients(job, 0, 0));
    expect(await codeOf(pull(0, "trainer-0", 0))).toBe("ORCH_ERR_NOT_ASSIGNED");
    expect(job.batchDone(0)).toBe(true);
    pull(1, "trainer-1", 1)();
  });

  it("refuses a push for another step, and a training pull once training is over", async () => {
    const { job } = startedJob();
    expect(await codeOf(() => job.push({ ...gradients(job, 0, 0), step: 5 }))).toBe("ORCH_ERR_WRONG_STEP");
    await job.push(gradients(job, 0, 0));
    await job.push(gradients(job, 1, 1));
    await job.push(gradients(job, 0, 2));
    await job.push(gradients(job, 1, 3));
    expect(await codeOf(() => job.requireModel(false))).toBe("ORCH_ERR_JOB_NOT_RUNNING");
    expect(job.requireModel(true).spec.embeddingDim).toBe(2);
    expect(await codeOf(() => job.push(gradients(job, 0, 3)))).toBe("ORCH_ERR_JOB_NOT_RUNNING");
  });

  it("async: applies each batch on arrival, hands batches out one at a time, and drops a too-stale gradient", async () => {
    const { job } = startedJob({ mode: "async", trainers: 1, batchesPerStep: 2, steps: 2, maxStaleness: 0 });
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([0]);
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([0]); // still its batch until pushed
    const fresh = gradients(job, 0, 0);
    expect(await job.push(fresh)).toMatchObject({ step: 1, stale: false });
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([1]);
    const stale = { ...gradients(job, 0, 1), step: 0 }; // computed on version 0, the job is at 1
    expect(await job.push(stale)).toMatchObject({ step: 1, stale: true, workers: 0 });
    expect(job.status()).toMatchObject({ staleGradients: 1, step: 1 });
    await job.push(gradients(job, 0, (await job.getWork("trainer-0")).batchIndices[0] as number));
    await job.push(gradients(job, 0, (await job.getWork("trainer-0")).batchIndices[0] as number));
    expect(job.state).toBe("JOB_STATE_EVALUATING");
    expect(job.status()).toMatchObject({ batchesApplied: 4, missingBatches: 0 });
  });
});

describe("Job: trainers lost", () => {
  it("reassign: a trainer whose session breaks is declared dead and its batches go to the others", async () => {
    const { job, sessions, lines, batchOf } = startedJob({ trainers: 3, batchesPerStep: 3, steps: 3 });
    const held = job.getWork("trainer-0"); // answered at once: it has batch 0
    expect((await held).batchIndices).toEqual([0]);
    await job.push(gradients(job, 0, 0));
    const waiting = job.getWork("trainer-0"); // nothing left for it in step 0: held
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    expect((await waiting).batchIndices).toEqual([1]); // woken with the dead trainer's batch
    expect(lines.find((l) => l.msg === "trainer disconnected; declared dead")?.fields).toMatchObject({ workerId: "trainer-1", reassigned: [1], live: 2 });
    expect(await codeOf(() => job.push(gradients(job, 1, 1)))).toBe("ORCH_ERR_NOT_A_MEMBER");
    expect(await codeOf(() => job.getWork("trainer-1"))).toBe("ORCH_ERR_NOT_A_MEMBER");
    // Its training pulls too (they counted ids and made rows as a live trainer's), with its token; without it, refused as any.
    const pull = (token: string) => () => job.checkTrainingPull({ rank: 1, token }, "training pull for rank 1");
    expect(await codeOf(pull(sessions.get("trainer-1")!.workerToken))).toBe("ORCH_ERR_NOT_A_MEMBER");
    expect(await codeOf(pull(""))).toBe("ORCH_ERR_PERMISSION_DENIED");
    // Trainer 0 now holds its batch 1.
    job.checkTrainingPull({ rank: 0, token: sessions.get("trainer-0")!.workerToken, batch: 1, batchIds: 40, batchIdsSeal: batchOf(1, 40).idsSeal }, "training pull for rank 0");
    expect(job.heartbeat("trainer-1")).toBe(false);
    await job.push(gradients(job, 0, 1));
    await job.push(gradients(job, 2, 2));
    expect(job.step).toBe(1);
    // Its late push of a batch finished since is recognised and not applied again.
    expect(await job.push(gradients(job, 1, 1, 0.1))).toMatchObject({ duplicate: true });
    expect(job.status()).toMatchObject({ deadTrainers: 1, reassignedBatches: 1, duplicateBatches: 1, liveTrainers: 2, batchesApplied: 3, missingBatches: 0 });
    // It may come back with a fresh rank; the step under way stays dealt as it is, the next is dealt over three again.
    expect(joinTrainer(job, "trainer-1", sessions)).toBe(3);
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([3, 5]);
    await job.push(gradients(job, 0, 3));
    await job.push(gradients(job, 2, 4));
    await job.push(gradients(job, 0, 5));
    expect((await job.getWork("trainer-1")).batchIndices).toEqual([8]);
  });

  it("reassign: a trainer whose heartbeats stop is declared dead", async () => {
    vi.useFakeTimers();
    const { job, lines } = startedJob({ heartbeatTimeoutMs: 1000 });
    for (let i = 0; i < 6; i++) {
      vi.advanceTimersByTime(250);
      expect(job.heartbeat("trainer-0")).toBe(true);
    }
    expect(job.status()).toMatchObject({ state: "JOB_STATE_RUNNING", liveTrainers: 1, deadTrainers: 1 });
    expect(lines.find((l) => l.level === "warn")?.msg).toMatch(/^trainer sent no heartbeat for 1\.\ds; declared dead$/);
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([0, 1]);
  });

  it("time the orchestrator could not run (a machine stalled 26 s) is not its trainers': none is declared dead for it; silence after it still is", () => {
    vi.useFakeTimers();
    const { job } = startedJob({ heartbeatTimeoutMs: 1000 });
    vi.advanceTimersByTime(250);
    // The clock jumps as the process resumes; the timer's next tick comes late, before any heartbeat is read.
    vi.setSystemTime(Date.now() + 26_000);
    vi.advanceTimersByTime(250);
    expect(job.status()).toMatchObject({ liveTrainers: 2, deadTrainers: 0 });
    // The heartbeats of the pause arrive: trainer-0's; trainer-1 stays silent and is declared dead in its own time.
    for (let i = 0; i < 6; i++) {
      expect(job.heartbeat("trainer-0")).toBe(true);
      vi.advanceTimersByTime(250);
    }
    expect(job.status()).toMatchObject({ liveTrainers: 1, deadTrainers: 1 });
  });

  it("a registration whose session never opens is dropped after the heartbeat timeout: no trainer lost, not even under --on-trainer-loss fail", async () => {
    vi.useFakeTimers();
    const beat = (job: Job, ids: string[]) => {
      for (let i = 0; i < 6; i++) {
        vi.advanceTimersByTime(250);
        for (const id of ids) expect(job.heartbeat(id)).toBe(true);
      }
    };
    const { job, lines, sessions, computeSession } = startedJob({ heartbeatTimeoutMs: 1000 });
    const bogus = job.registerTrainer("bogus").workerToken;
    expect(job.heartbeat("bogus")).toBe(false); // beats without a session keep nothing alive
    // trainer-1 trained, left, and registered again without opening a session.
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    job.registerTrainer("trainer-1");
    beat(job, ["trainer-0"]);
    const s = job.status();
    expect(s).toMatchObject({ state: "JOB_STATE_RUNNING", liveTrainers: 1, deadTrainers: 1 }); // trainer-1's disconnect only
    expect(s.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER").map((w) => [w.workerId, w.alive])).toEqual([["trainer-0", true], ["trainer-1", false]]);
    expect(lines.filter((l) => l.msg.includes("opened no session")).map((l) => l.msg).sort()).toEqual([
      expect.stringMatching(/^trainer bogus registered but opened no session within 1\.\ds; registration dropped$/),
      expect.stringMatching(/^trainer trainer-1 registered but opened no session within 1\.\ds; registration dropped$/),
    ]);
    // Compute is told to close the bare registration's batch streams.
    expect(computeSession.events).toContainEqual({ tokensRevoked: { nonces: [bogus.split(".")[0]] } });
    // Under --on-trainer-loss fail, a bare registration does not end the job.
    const { job: strict } = startedJob({ heartbeatTimeoutMs: 1000, onTrainerLoss: "fail" });
    strict.registerTrainer("bogus");
    beat(strict, ["trainer-0", "trainer-1"]);
    expect(strict.status()).toMatchObject({ state: "JOB_STATE_RUNNING", liveTrainers: 2, deadTrainers: 0 });
    expect(strict.status().workers.some((w) => w.workerId === "bogus")).toBe(false);
  });

  it("reassign: a trainer that heartbeats but holds a batch past --stall-timeout-seconds is declared dead", async () => {
    vi.useFakeTimers();
    const { job, lines } = startedJob({ stallTimeoutSeconds: 2, heartbeatTimeoutMs: 600_000 });
    await job.push(gradients(job, 1, 1));
    vi.advanceTimersByTime(1_500);
    expect(job.status()).toMatchObject({ liveTrainers: 2, deadTrainers: 0 });
    // Time this process could not run (a long checkpoint write) is not the trainer's.
    vi.setSystemTime(Date.now() + 60_000);
    vi.advanceTimersByTime(500);
    expect(job.status()).toMatchObject({ liveTrainers: 2, deadTrainers: 0 });
    vi.advanceTimersByTime(1_000);
    expect(job.status()).toMatchObject({ state: "JOB_STATE_RUNNING", liveTrainers: 1, deadTrainers: 1, reassignedBatches: 1 });
    expect(lines.find((l) => l.level === "warn")?.msg).toBe("trainer held batch 0 for more than 2s without delivering it (--stall-timeout-seconds); declared dead");
    expect((await job.getWork("trainer-1")).batchIndices).toEqual([0]);
    await job.push(gradients(job, 1, 0));
    expect(job.step).toBe(1);
  });

  it("reassign: an evaluator that does not report within --stall-timeout-seconds is declared dead; another evaluates", async () => {
    vi.useFakeTimers();
    const { job, lines } = startedJob({ steps: 1, stallTimeoutSeconds: 2, heartbeatTimeoutMs: 600_000 });
    await job.push(gradients(job, 0, 0));
    await job.push(gradients(job, 1, 1));
    expect(await job.getWork("trainer-0")).toMatchObject({ done: true, evaluate: true });
    const other = job.getWork("trainer-1");
    vi.advanceTimersByTime(1_500);
    // Asking again (its answer lost) names it again, but does not restart the timeout: asking is not reporting.
    expect(await job.getWork("trainer-0")).toMatchObject({ done: true, evaluate: true });
    vi.advanceTimersByTime(1_000);
    expect(lines.find((l) => l.level === "warn")?.msg).toMatch(/^trainer did not report the evaluation it was given [23]s ago \(--stall-timeout-seconds\); declared dead$/);
    expect(await other).toMatchObject({ done: true, evaluate: true });
    job.reportEval(evalReport("trainer-1", { step: 1 }));
    expect(job.state).toBe("JOB_STATE_COMPLETED");
  });

  it("the final evaluation goes to a trainer that trained, not one that joined idle at the end; its lost answer is given again; a part of the split is refused", async () => {
    const { job, sessions } = startedJob({ steps: 1 });
    await job.push(gradients(job, 0, 0));
    await job.push(gradients(job, 1, 1));
    joinTrainer(job, "late", sessions);
    let lateAnswered = false;
    const late = job.getWork("late").then((w) => ((lateAnswered = true), w)); // first to ask, no batch done: held
    await new Promise((r) => setImmediate(r));
    expect(lateAnswered).toBe(false);
    expect(await job.getWork("trainer-1")).toMatchObject({ done: true, evaluate: true });
    // trainer-1's answer was lost (a cancelled call): asking again names it again, where it was held for ever.
    expect(await job.getWork("trainer-1")).toMatchObject({ done: true, evaluate: true });
    expect(await codeOf(() => job.reportEval(evalReport("late", { step: 1 })))).toBe("ORCH_ERR_BAD_EVAL_REPORT");
    expect(() => job.reportEval(evalReport("trainer-1", { step: 1, records: 1 }))).toThrow("evaluation report from trainer-1 refused: it covers 1 records, the held-out split has 200");
    job.reportEval(evalReport("trainer-1", { step: 1 }));
    expect(job.state).toBe("JOB_STATE_COMPLETED");
    expect(await late).toMatchObject({ done: true, state: "JOB_STATE_COMPLETED" });
  });

  it("--stall-timeout-seconds 0: a trainer may hold its batch for as long as it heartbeats", async () => {
    vi.useFakeTimers();
    const { job } = startedJob({ stallTimeoutSeconds: 0, heartbeatTimeoutMs: 600_000 });
    vi.advanceTimersByTime(300_000);
    expect(job.status()).toMatchObject({ liveTrainers: 2, deadTrainers: 0 });
  });

  it("a trainer that held no batch and trained none, leaving (again and again), is not a trainer lost, and does not fail a --on-trainer-loss fail job", async () => {
    for (const onTrainerLoss of ["reassign", "fail"] as const) {
      const { job, sessions, lines } = startedJob({ onTrainerLoss });
      // Both batches of step 0 are held by trainer-0 and trainer-1: a third trainer gets none.
      for (let i = 0; i < 5; i++) {
        joinTrainer(job, "trainer-9", sessions);
        job.sessionClosed("trainer-9", sessions.get("trainer-9")!);
      }
      expect(job.status()).toMatchObject({ state: "JOB_STATE_RUNNING", liveTrainers: 2, deadTrainers: 0, reassignedBatches: 0 });
      expect(lines.filter((l) => l.msg.includes("dropped, not counted as lost"))).toHaveLength(5);
      // One that held a batch is lost, as before.
      job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
      expect(job.status()).toMatchObject({ state: onTrainerLoss === "fail" ? "JOB_STATE_FAILED" : "JOB_STATE_RUNNING", deadTrainers: 1 });
    }
    // A trainer the job started with counts whatever it held: in async mode it holds nothing before its first GetWork.
    const { job: async, sessions } = startedJob({ mode: "async", onTrainerLoss: "fail" });
    await async.getWork("trainer-0");
    async.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    expect(async.status()).toMatchObject({ state: "JOB_STATE_FAILED", deadTrainers: 1 });
  });

  it("fail: a lost trainer fails the job; every session hears why and held calls are answered", async () => {
    const { job, sessions } = startedJob({ onTrainerLoss: "fail" });
    await job.push(gradients(job, 0, 0));
    const held = job.getWork("trainer-0");
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    const error = "ORCH_ERR_JOB_ABORTED: trainer trainer-1 (rank 1) disconnected at step 0 of 2";
    expect(job.state).toBe("JOB_STATE_FAILED");
    expect(job.status().error).toBe(error);
    expect(await held).toMatchObject({ done: true, state: "JOB_STATE_FAILED", error });
    expect(sessions.get("trainer-0")!.finished()).toEqual({ state: "JOB_STATE_FAILED", error });
    // A call that comes before its session's news is told the job failed, not that its trainer is no member.
    expect(await codeOf(() => job.push(gradients(job, 1, 1)))).toBe("ORCH_ERR_JOB_ABORTED");
    expect(await codeOf(() => job.requireModel(false))).toBe("ORCH_ERR_JOB_ABORTED");
    // A worker that opens a session after the end is told at once.
    const late = new FakeSession();
    job.openSession("trainer-0", late);
    expect(late.finished()?.state).toBe("JOB_STATE_FAILED");
    expect(late.ended).toBe(true);
  });

  it("with no trainer left the job waits for one, then fails", () => {
    vi.useFakeTimers();
    const { job, sessions } = startedJob({ registerTimeoutMs: 5000 });
    job.sessionClosed("trainer-0", sessions.get("trainer-0")!);
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    vi.advanceTimersByTime(4000);
    joinTrainer(job, "trainer-2", sessions); // a new trainer in time keeps the job
    vi.advanceTimersByTime(2000);
    expect(job.state).toBe("JOB_STATE_RUNNING");
    job.sessionClosed("trainer-2", sessions.get("trainer-2")!);
    vi.advanceTimersByTime(5000);
    expect(job.state).toBe("JOB_STATE_FAILED");
    expect(job.status().error).toBe("ORCH_ERR_JOB_ABORTED: no trainer left for 5s at step 0 of 2");
  });

  it("trainers that left after compute did (no data to train on): the failure names the compute that was gone", () => {
    vi.useFakeTimers();
    const { job, sessions, computeSession } = startedJob({ registerTimeoutMs: 5000 });
    job.sessionClosed("compute-0", computeSession);
    vi.advanceTimersByTime(60_000);
    job.sessionClosed("trainer-0", sessions.get("trainer-0")!);
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    vi.advanceTimersByTime(5000);
    expect(job.status().error).toBe("ORCH_ERR_JOB_ABORTED: no trainer left for 5s at step 0 of 2; compute compute-0 had been disconnected since step 0 (65s before) and had not come back");
  });
});

describe("Job: other failures", () => {
  it("fails when the workers do not all come within the registration timeout", () => {
    vi.useFakeTimers();
    const { log } = recordingLog();
    const job = new Job(jobConfig({ registerTimeoutMs: 3000, psShards: 2 }), log);
    joinTrainer(job, "trainer-0", new Map());
    vi.advanceTimersByTime(3000);
    expect(job.state).toBe("JOB_STATE_FAILED");
    expect(job.status().error).toBe(
      "ORCH_ERR_REGISTER_TIMEOUT: timed out after 3s waiting for workers: 1/2 trainers connected, compute not registered, 0/1 parameter-server shards connected",
    );
  });

  it("a worker registering after the timeout is told why the job ended (a launcher reports that worker's exit first), in ms under a second", () => {
    vi.useFakeTimers();
    const { log } = recordingLog();
    const job = new Job(jobConfig({ registerTimeoutMs: 1 }), log);
    vi.advanceTimersByTime(1);
    const why = "JOB_STATE_FAILED: ORCH_ERR_REGISTER_TIMEOUT: timed out after 1 ms waiting for workers: 0/2 trainers connected, compute not registered";
    expect(() => job.registerCompute("compute-0", "127.0.0.1:1", SOURCE)).toThrow(`compute compute-0 registered after the job ended (${why})`);
    expect(() => job.registerTrainer("trainer-0")).toThrow(`trainer trainer-0 refused: the job has ended (${why})`);
  });

  /** A running job of 2 trainers and 2 parameter-server shards, shard 1's session open. */
  function runningWithShard() {
    const { log } = recordingLog();
    const job = new Job(jobConfig({ psShards: 2 }), log);
    job.address = "127.0.0.1:7000";
    job.registerShard("shard-1", 1, "127.0.0.1:7100");
    const shard = new FakeSession();
    job.openSession("shard-1", shard);
    const sessions = new Map<string, FakeSession>();
    joinTrainer(job, "trainer-0", sessions);
    joinTrainer(job, "trainer-1", sessions);
    job.registerCompute("compute-0", "127.0.0.1:7001", SOURCE);
    expect(job.state).toBe("JOB_STATE_RUNNING");
    return { job, shard };
  }

  it("a parameter-server shard disconnecting from a running job fails it", () => {
    const { job, shard } = runningWithShard();
    expect(shard.events[0]!.jobStarted!.psShards).toEqual(["127.0.0.1:7000", "127.0.0.1:7100"]);
    job.sessionClosed("shard-1", shard);
    expect(job.status().error).toBe("ORCH_ERR_JOB_ABORTED: parameter-server shard shard-1 (index 1) disconnected at step 0 of 2");
  });

  it("a parameter-server shard that says why it ends (ReportFailure) fails the job with its code and reason, on one line; a report of another code, or from a trainer, is refused", async () => {
    const { job, shard } = runningWithShard();
    // Codes a shard does not end itself for may not end the job: refused, the job runs on.
    expect(await codeOf(() => job.shardFailed("shard-1", "ORCH_ERR_JOB_ABORTED", "stop"))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => job.shardFailed("shard-1", "ORCH_ERR_BAD_JOB_CONFIG", " \n "))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => job.shardFailed("trainer-0", "ORCH_ERR_MEMORY_LIMIT", "full"))).toBe("ORCH_ERR_UNKNOWN_WORKER");
    expect(() => job.shardFailed("", "ORCH_ERR_MEMORY_LIMIT", "full")).toThrow("failure report without a worker_id");
    expect(job.state).toBe("JOB_STATE_RUNNING");
    job.shardFailed("shard-1", "ORCH_ERR_BAD_JOB_CONFIG", "the job's --serving-sync discovery:ctr finds serving replicas in etcd,\n  and this shard was started without a registry" + "!".repeat(2_000));
    const error = job.status().error;
    expect(error.startsWith("ORCH_ERR_BAD_JOB_CONFIG: parameter-server shard shard-1 (index 1) at step 0 of 2 failed: the job's --serving-sync discovery:ctr finds serving replicas in etcd,\\n  and this shard was started without a registry!!!")).toBe(true);
    expect(error).toMatch(/!… \(1\d\d\d more chars\)$/);
    expect(error).not.toContain("\n");
    expect(job.status().errorExitCode).toBe(2);
    // Its session breaking as its process ends leaves the reason as it is.
    job.sessionClosed("shard-1", shard);
    expect(job.status().error).toBe(error);
  });

  it("a reason cut at 1,000 characters keeps a character beyond the BMP whole; shard 0's own tables full are named as shard 0's when the job has several shards", () => {
    const cut = runningWithShard();
    cut.job.shardFailed("shard-1", "ORCH_ERR_MEMORY_LIMIT", "a" + "\u{1F600}".repeat(1_200));
    expect(cut.job.status().error).toMatch(/a(\u{1F600})+… \(\d+ more chars\)$/u);
    expect(cut.job.status().error).not.toContain("\uFFFD");
    const long = runningWithShard();
    long.job.shardFailed("shard-1", "ORCH_ERR_MEMORY_LIMIT", "y".repeat(5_000_000));
    expect(long.job.status().error.length).toBeLessThan(1_200);
    expect(long.job.status().error).toMatch(/y… \(4999000 more chars\)$/);
    const { job } = runningWithShard();
    job.fail(OrchestratorErrors.create("ORCH_ERR_MEMORY_LIMIT", "embedding tables would exceed the memory limit of 1000 bytes"));
    expect(job.status().error).toBe("ORCH_ERR_MEMORY_LIMIT: parameter-server shard 0 (the orchestrator) at step 0 of 2 failed: embedding tables would exceed the memory limit of 1000 bytes");
  });

  it("a model the flags and the source cannot make fails the job at its start", () => {
    // --slot-config naming dim 4 for slot 1 itself.
    const wide = { ...defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), slotDim: 4 };
    const { job } = startedJob({ slotConfigs: new Map([[1, wide]]) });
    expect(job.state).toBe("JOB_STATE_FAILED");
    expect(job.status().error).toBe("ORCH_ERR_BAD_SLOT_CONFIG: slot 1: --slot-config gives embedding dim 4, the feature list 2; make them agree");
  });

  it("mixed slot dims fail a model that needs one width, naming the slot, and start one that takes them", () => {
    // --slot-config naming dim 4 for slot 1 itself.
    const wide = { ...defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), slotDim: 4 };
    const undeclared = { ...SOURCE, slotDims: [0, 0] };
    const dlrm = startedJob({ slotConfigs: new Map([[1, wide]]) }, undeclared).job;
    expect(dlrm.state).toBe("JOB_STATE_FAILED");
    expect(dlrm.status().error).toMatch(/^MODEL_ERR_BAD_SPEC: dlrm needs one embedding dim for every slot .*but slot 1 has 4 where the model's is --embedding-dim 2/);
    const wd = startedJob({ slotConfigs: new Map([[1, wide]]), architecture: { name: "wide-deep", deepMlp: [3] } }, undeclared).job;
    expect(wd.state).toBe("JOB_STATE_RUNNING");
    // Row widths: the dim plus wide-deep's first-order weight.
    expect(wd.model!.store.widthOf(0 << 16)).toBe(3);
    expect(wd.model!.store.widthOf(1 << 16)).toBe(5);
  });

  it("a --slot-config slot the data does not have starts the job, with a warning in its status naming it and the data's slots", () => {
    const other = defaultSlotConfig({ sparseOptimizer: "ftrl", sparseLr: 0.1 }, 2);
    const { job } = startedJob({ slotConfigs: new Map([[1, other], [9, other]]) });
    expect(job.state).toBe("JOB_STATE_RUNNING");
    expect(job.status().warnings).toEqual(["--slot-config names slot 9, which the data does not have (its slots: 0, 1); its settings are not used"]);
    expect(startedJob({ slotConfigs: new Map([[1, other]]) }).job.status().warnings).toEqual([]);
  });
});
