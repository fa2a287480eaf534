import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobSpec__Output } from "@pangea/schema";
import type { WorkerGradients } from "../src/aggregation/gradient-aggregator.js";
import { defaultSlotConfig } from "../src/job/job-model.js";
import { ShardHost, type CheckpointReport, type ShardSettings } from "../src/shard/shard-host.js";
import { runOf } from "../src/server/batch-row-budget.js";
import { TrainerTokens, nonceOf, sealBatchIds } from "@pangea/rpc";
import { stampSlotV2 } from "@pangea/features";
import { codeOf, recordingLog, tempDir } from "./fakes/job-fixture.js";

afterEach(() => {
  vi.useRealTimers();
});

function shard(over: Partial<JobSpec__Output> = {}, settings: Partial<ShardSettings> = {}) {
  const { log, lines } = recordingLog();
  const dir = tempDir("pangea-shard-unit-");
  const defaults = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2);
  const host = new ShardHost({ index: 1, defaults, perSlot: new Map(), seed: 1, maxEmbeddingBytes: 0, maxGradientAbs: 1e6, checkpointDir: dir, ...settings }, log);
  const reports: CheckpointReport[] = [];
  host.onCheckpoint = (r) => reports.push(r);
  const job = {
    jobId: "j",
    batchSize: 4,
    model: { numDense: 2, slotIds: [0, 1], embeddingDim: 2, bottomMlp: [2], topMlp: [2], architectureJson: "", slotDims: [] },
    steps: 3,
    worldSize: 2,
    batchesPerStep: 2,
    mode: "sync",
    psShards: ["h:0", "h:1"],
    resumedFromStep: 0,
    checkpointEverySteps: 0,
    keepCheckpoints: 0,
    heartbeatTimeoutMs: 5000,
    servingSync: [],
    syncIntervalMs: 0,
    denseSyncIntervalMs: 0,
    ...over,
  } as unknown as JobSpec__Output;
  host.start(job);
  return { host, dir, lines, reports, parts: () => readdirSync(join(dir, "j")).sort() };
}

/** An orchestrator's keys, as the shard's registration gives them: returned to issue tokens, tickets and seals with. */
function keyed(host: ShardHost): TrainerTokens {
  const tokens = new TrainerTokens();
  host.pushKey = tokens.key;
  host.ticketKey = tokens.ticketKey;
  return tokens;
}

const push = (rank: number, step: number, batchIndex: number): WorkerGradients => ({ rank, step, batchSize: 4, loss: 0.5, dense: [], sparseIds: new Uint32Array(0), sparseGrads: new Float32Array(0), batchIndex });

describe("ShardHost", () => {
  it("a job whose --serving-sync is discovery:<model> reads that model's replicas from the shard's registry; a shard without one refuses the job, ending the process", async () => {
    const asked: string[] = [];
    const { host } = shard({ servingSync: ["discovery:ctr"], syncIntervalMs: 50 }, { servingReplicas: (model) => async () => (asked.push(model), []) });
    await vi.waitFor(() => expect(asked.length).toBeGreaterThan(0));
    expect(asked[0]).toBe("ctr");
    host.reset();
    let fatal: unknown = null;
    const refused = new ShardHost({ index: 1, defaults: defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), perSlot: new Map(), seed: 1, maxEmbeddingBytes: 0, maxGradientAbs: 1e6, checkpointDir: tempDir("pangea-shard-unit-") }, recordingLog().log);
    refused.onFatal = (err) => (fatal = err);
    const job = { jobId: "j", batchSize: 4, model: { numDense: 2, slotIds: [0, 1], embeddingDim: 2, bottomMlp: [2], topMlp: [2], architectureJson: "", slotDims: [] }, steps: 3, worldSize: 2, batchesPerStep: 2, mode: "sync", psShards: ["h:0", "h:1"], resumedFromStep: 0, servingSync: ["discovery:ctr"] } as unknown as JobSpec__Output;
    let thrown: unknown = null;
    try {
      refused.start(job);
    } catch (err) {
      thrown = err;
      refused.fail(err as never);
    }
    expect((thrown as { code: string }).code).toBe("ORCH_ERR_BAD_JOB_CONFIG");
    expect((thrown as Error).message).toBe("the job's --serving-sync discovery:ctr finds serving replicas in etcd, and this shard was started without a registry: start it with the orchestrator's --discovery etcd://...");
    expect(fatal).toBe(thrown);
  });

  it("applies a sync step when its last batch arrives, ignores a batch taken before, refuses another step's, and is over after the last", async () => {
    const { host } = shard();
    expect(await host.push(push(0, 0, 0))).toMatchObject({ step: 0, workers: 0 });
    expect(await host.push(push(0, 0, 0))).toMatchObject({ duplicate: true });
    expect(await codeOf(() => host.push(push(1, 1, 1)))).toBe("ORCH_ERR_WRONG_STEP");
    // A later step's batch pushed as this step's: refused (this shard does not know who holds a batch; it must not fill
    // the steps to come), and taken in its own step later.
    await expect(host.push(push(1, 0, 4))).rejects.toThrow("trainer rank 1 pushed batch 4 for step 0 to shard 1; step 0's batches are 0..1");
    expect(await host.push(push(1, 0, 1))).toMatchObject({ step: 1, workers: 2 });
    for (const j of [2, 3, 4, 5]) await host.push(push(j % 2, host.step, j));
    expect(host.step).toBe(3);
    await expect(host.push(push(0, 3, 6))).rejects.toThrow("training on shard 1 is over (step 3)");
  });

  it("takes a training pull for its step or the one before (a dead trainer's part completed it here first), not others", async () => {
    const { host } = shard();
    host.checkPullStep(0, 0);
    // One step ahead: shard 0's word that it applied step 0 may be on its way (UNAVAILABLE: the trainer asks again).
    expect(await codeOf(() => host.checkPullStep(1, 0))).toBe("ORCH_ERR_SHARD_BEHIND");
    expect(() => host.checkPullStep(1, 0)).toThrow("trainer rank 0 pulled for step 1 from shard 1, which is still at step 0: it has not yet heard that shard 0 applied step 0; ask again");
    expect(await codeOf(() => host.checkPullStep(2, 0))).toBe("ORCH_ERR_WRONG_STEP");
    // Both batches of step 0 arrive here; shard 0 may still wait for one of them (its trainer died between the two
    // pushes), and the trainer given it pulls for step 0: served, and its push here is the repeat, ignored.
    await host.push(push(0, 0, 0));
    await host.push(push(1, 0, 1));
    expect(host.step).toBe(1);
    host.checkPullStep(0, 1);
    expect(await host.push(push(1, 0, 1))).toMatchObject({ duplicate: true });
    host.checkPullStep(1, 0);
    await host.push(push(0, 1, 2));
    await host.push(push(1, 1, 3));
    expect(await codeOf(() => host.checkPullStep(0, 0))).toBe("ORCH_ERR_WRONG_STEP");
    expect(await codeOf(() => host.checkPullStep(4, 0))).toBe("ORCH_ERR_WRONG_STEP");
  });

  it("refuses a revoked token's push in sync mode (as shard 0 refuses a dead trainer), and takes it in async mode", async () => {
    for (const mode of ["sync", "async"] as const) {
      const { host } = shard({ mode });
      const tokens = keyed(host);
      const token = tokens.issue(0);
      const check = () => host.checkPush({ rank: 0, token, batch: 0, ticket: tokens.ticket(0, token, 0) }, "Push for rank 0");
      check();
      host.revoke([nonceOf(token)]);
      // async: trainers push to shard 0 first; a batch it took before the trainer was declared dead must be taken here too.
      if (mode === "async") check();
      else expect(await codeOf(check)).toBe("ORCH_ERR_NOT_A_MEMBER");
    }
  });

  it("takes a training pull only with a token issued for its rank and not revoked (in async mode too, unlike a push)", async () => {
    for (const mode of ["sync", "async"] as const) {
      const { host } = shard({ mode });
      const tokens = new TrainerTokens();
      host.pushKey = tokens.key;
      const token = tokens.issue(0);
      const sealed = { batch: 0, batchIds: 8, batchIdsSeal: sealBatchIds(tokens.key, 0, 4, 8) };
      const pull = (rank: number, t: string) => () => host.checkTrainingPull({ rank, token: t, ...sealed }, `training pull for rank ${rank}`);
      pull(0, token)();
      expect(pull(0, "")).toThrow(/training pull for rank 0 refused by parameter-server shard 1: it carries no worker_token/);
      expect(pull(1, token)).toThrow(/its worker_token was not issued for rank 1/);
      expect(await codeOf(pull(1, token))).toBe("ORCH_ERR_PERMISSION_DENIED");
      host.revoke([nonceOf(token)]);
      expect(await codeOf(pull(0, token))).toBe("ORCH_ERR_NOT_A_MEMBER");
    }
  });

  it("sync: shard 0 applied a step whose batch was never pushed here: the step is applied without it (over the step's batch count), the batch settled", async () => {
    // One id of slot 0; its row made by a training pull, as a trainer's pull makes it.
    const id = new Uint32Array([7, 0]);
    stampSlotV2(id, 0, 0);
    const withRow = () => {
      const s = shard();
      s.host.requireModel(false).store.readMany(id, 1, false, new Float32Array(2), new Int32Array([0, 2]));
      return s;
    };
    const rowPush = (batchIndex: number): WorkerGradients => ({ ...push(0, 0, batchIndex), sparseIds: id.slice(), sparseGrads: new Float32Array([0.5, -1]) });
    const whole = withRow();
    const missing = withRow();
    // Batch 1 holds no row of this shard's: the whole step's row is batch 0's gradient over 2 batches.
    await whole.host.push(rowPush(0));
    await whole.host.push(push(1, 0, 1));
    await missing.host.push(rowPush(0));
    missing.host.stepApplied(0);
    expect([whole.host.step, missing.host.step]).toEqual([1, 1]);
    const rowOf = (h: ShardHost) => Array.from(h.requireModel(true).store.rowsOf(id).rows);
    expect(rowOf(missing.host)).toEqual(rowOf(whole.host));
    expect(missing.lines.some((l) => l.level === "warn" && l.msg === "step 0 applied on shard 1 without the part of batch 1: shard 0 has applied it and no trainer pushed it here")).toBe(true);
    // The batch is settled: a late push of it is a repeat; the next step's pushes are taken; a checkpoint of shard 0's count is written at once.
    expect(await missing.host.push(push(1, 0, 1))).toMatchObject({ duplicate: true });
    // Told again (or told of a step this shard applied itself), nothing changes.
    missing.host.stepApplied(0);
    whole.host.stepApplied(0);
    expect([whole.host.step, missing.host.step]).toEqual([1, 1]);
    missing.host.checkpoint(1, false, 2);
    // Its report counts the batch whose part it went without (the orchestrator's status sums them).
    expect(missing.reports.map((r) => [r.step, r.error, r.partsSkipped])).toEqual([[1, "", 1]]);
    // A step of which no batch came here at all; then the last one: training is over here.
    missing.host.stepApplied(1);
    missing.host.stepApplied(2);
    expect(missing.host.step).toBe(3);
    expect(await codeOf(() => missing.host.requireModel(false))).toBe("ORCH_ERR_JOB_NOT_RUNNING");
  });

  it("async: a step shard 0 applied changes nothing here (a batch's part comes after shard 0's)", async () => {
    const { host } = shard({ mode: "async" } as Partial<JobSpec__Output>);
    host.stepApplied(0);
    expect(host.step).toBe(0);
    expect(await host.push(push(0, 0, 0))).toMatchObject({ step: 1 });
  });

  it("takes a training pull only with the ticket of a batch given to its token: of the step pulled for (sync), not pushed here yet (async)", async () => {
    for (const mode of ["sync", "async"] as const) {
      const { host } = shard({ mode });
      const tokens = keyed(host);
      const [mine, rank1] = [tokens.issue(0), tokens.issue(1)];
      const pull = (step: number, batch: number, ticket: string) => () => host.checkTrainingPull({ rank: 0, token: mine, step, batch, ticket, batchIds: 8, batchIdsSeal: sealBatchIds(tokens.key, batch, 4, 8) }, "training pull for rank 0");
      pull(0, 0, tokens.ticket(0, mine, 0))();
      const refused = "training pull for rank 0 refused by parameter-server shard 1: ";
      // A registered trainer given no batch has no ticket to show: it makes no rows here.
      expect(pull(0, 0, "")).toThrow(`${refused}it carries no batch_ticket (a training pull names the batch GetWork gave it, with its ticket)`);
      expect(pull(0, 0, tokens.ticket(1, rank1, 0))).toThrow(`${refused}its batch_ticket is not for batch 0 given to rank 0 with this worker_token`);
      expect(pull(0, 1, tokens.ticket(0, mine, 0))).toThrow(`${refused}its batch_ticket is not for batch 1 given to rank 0 with this worker_token`);
      expect(await codeOf(pull(0, 0, ""))).toBe("ORCH_ERR_PERMISSION_DENIED");
      if (mode === "sync") {
        // Its own batch 2 (of step 1), pulled for step 0: an old ticket is good for its own step only.
        expect(pull(0, 2, tokens.ticket(0, mine, 2))).toThrow(`${refused}batch 2 is not of step 0 (step 0's batches are 0..1)`);
      } else {
        await host.push(push(0, 0, 0));
        expect(pull(1, 0, tokens.ticket(0, mine, 0))).toThrow(`${refused}batch 0 was pushed here already`);
        pull(1, 1, tokens.ticket(0, mine, 1))();
      }
    }
  });

  it("takes a training pull only with compute's seal on its batch's count of ids, good for the job's batch size, and answers the batch it bounds", async () => {
    const { host } = shard();
    const tokens = keyed(host);
    const mine = tokens.issue(0);
    const ticket = tokens.ticket(0, mine, 1);
    const pull = (batchIds: number, batchIdsSeal: string) => () => host.checkTrainingPull({ rank: 0, token: mine, step: 0, batch: 1, ticket, batchIds, batchIdsSeal }, "training pull for rank 0");
    const seal = sealBatchIds(tokens.key, 1, 4, 30);
    expect(pull(30, seal)()).toEqual({ run: runOf("j", tokens.key), batch: 1, ids: 30, seal });
    const refused = "training pull for rank 0 refused by parameter-server shard 1: ";
    expect(pull(30, "")).toThrow(`${refused}it carries no batch_ids_seal (compute seals each train batch's count of ids once it has registered with the orchestrator; a trainer pulls with the seal its batch came with)`);
    const notCompute = `${refused}its batch_ids_seal is not compute's seal on batch 1 of the job's batch size 4 holding`;
    // A count made up; another batch's seal; one for a larger batch than the job's (compute serves any size asked); another orchestrator's key.
    expect(pull(3000, sealBatchIds(tokens.key, 1, 4, 30))).toThrow(`${notCompute} 3000 ids`);
    expect(pull(30, sealBatchIds(tokens.key, 0, 4, 30))).toThrow(`${notCompute} 30 ids`);
    expect(pull(3000, sealBatchIds(tokens.key, 1, 400, 3000))).toThrow(`${notCompute} 3000 ids`);
    expect(pull(30, sealBatchIds(new TrainerTokens().key, 1, 4, 30))).toThrow(`${notCompute} 30 ids`);
    // A seal is not a token, nor a ticket.
    expect(pull(30, ticket)).toThrow(notCompute);
    expect(await codeOf(pull(30, ""))).toBe("ORCH_ERR_PERMISSION_DENIED");
  });

  it("says which batches no training pull can be for any more (their rows' counts are then forgotten): sync, those of a step before the one before; async, those pushed here", async () => {
    const sync = shard().host;
    expect([0, 1, 2, 3].map((j) => sync.batchDone(j))).toEqual([false, false, false, false]);
    await sync.push(push(0, 0, 0));
    await sync.push(push(1, 0, 1));
    // At step 1 a pull for step 0's batches is still taken (a dead trainer's part may have completed it here first).
    expect([0, 1, 2].map((j) => sync.batchDone(j))).toEqual([false, false, false]);
    await sync.push(push(0, 1, 2));
    await sync.push(push(1, 1, 3));
    expect([0, 1, 2, 3, 4].map((j) => sync.batchDone(j))).toEqual([true, true, false, false, false]);
    const async = shard({ mode: "async" } as Partial<JobSpec__Output>).host;
    await async.push(push(0, 0, 1));
    expect([0, 1, 2].map((j) => async.batchDone(j))).toEqual([false, true, false]);
  });

  it("writes its part of a checkpoint only when shard 0 asks, and reports it", async () => {
    const { host, dir, lines, reports, parts } = shard();
    for (const j of [0, 1, 2, 3]) await host.push(push(j % 2, host.step, j));
    expect(() => readdirSync(join(dir, "j"))).toThrow(/ENOENT/); // every 2 steps is shard 0's business, not this shard's
    host.checkpoint(2, false, 4);
    expect(parts()).toEqual(["step-2.shard-1"]);
    expect(reports).toEqual([{ step: 2, path: join(dir, "j", "step-2.shard-1"), error: "", partsSkipped: 0 }]);
    expect(host.checkpointPath).toBe(join(dir, "j", "step-2.shard-1"));
    expect(lines.filter((l) => l.msg === "shard checkpoint saved")).toHaveLength(1);
  });

  it("sync: a request for a step this shard is not at is answered with the error, nothing written", async () => {
    const { host, dir, reports } = shard();
    await host.push(push(0, 0, 0));
    await host.push(push(1, 0, 1));
    host.checkpoint(2, false, 2);
    expect(reports).toEqual([{ step: 2, path: "", error: "shard 1 is at step 1", partsSkipped: 0 }]);
    expect(() => readdirSync(join(dir, "j"))).toThrow(/ENOENT/);
  });

  it("async: writes once it holds as many batches as shard 0 had applied; a newer request writes a waiting one at once", async () => {
    const { host, reports, parts } = shard({ mode: "async", keepCheckpoints: 1 } as Partial<JobSpec__Output>);
    await host.push(push(0, 0, 1));
    host.checkpoint(1, false, 2);
    expect(reports).toEqual([]);
    await host.push(push(0, 0, 0));
    expect(reports.map((r) => r.step)).toEqual([1]);
    expect(parts()).toEqual(["step-1.shard-1"]);
    host.checkpoint(2, false, 4); // shard 0 had applied 4; this shard holds 2
    await host.push(push(0, 0, 2));
    host.checkpoint(3, true, 6); // the waiting request of step 2 is written as it stands
    expect(reports.map((r) => [r.step, r.error])).toEqual([[1, ""], [2, ""]]);
    expect(parts()).toEqual(["step-2.shard-1"]);
    for (const j of [3, 4, 5]) await host.push(push(0, 0, j));
    expect(reports.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(parts()).toEqual(["step-3.shard-1"]);
  });

  it("async: the final checkpoint ends this shard's training even when batches shard 0 dropped as stale never came", async () => {
    const { host, reports } = shard({ mode: "async" } as Partial<JobSpec__Output>);
    for (const j of [0, 1, 2, 3]) await host.push(push(0, 0, j));
    host.checkpoint(3, true, 4); // batches 4 and 5 were stale on shard 0
    expect(reports.map((r) => [r.step, r.error])).toEqual([[3, ""]]);
    expect(await codeOf(() => host.requireModel(false))).toBe("ORCH_ERR_JOB_NOT_RUNNING");
    expect(host.requireModel(true).dense).toBeNull();
  });

  it("async: a batch that never comes (its trainer died between shard 0 and here) delays the part by the heartbeat timeout, no longer", async () => {
    vi.useFakeTimers();
    const { host, reports, lines } = shard({ mode: "async" } as Partial<JobSpec__Output>);
    await host.push(push(0, 0, 0));
    host.checkpoint(1, false, 2);
    vi.advanceTimersByTime(4999);
    expect(reports).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(reports.map((r) => [r.step, r.error])).toEqual([[1, ""]]);
    expect(lines.some((l) => l.level === "warn" && l.msg === "writing the checkpoint part without every batch shard 0 had applied")).toBe(true);
  });
});
