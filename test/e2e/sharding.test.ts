import { cpSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { shardOfId } from "@pangea/kit";
import { RowLayout, denseParams, modelSpecFromWire, paramSize } from "@pangea/model";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { joinAsTrainer, type HandMadeTrainer } from "../support/hand-made-trainer.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { BatchTickets } from "../../services/trainer/src/cluster/batch-tickets.js";
import { ParameterClient } from "../../services/trainer/src/cluster/parameters.js";
import { loadCheckpoint, loadShardedCheckpoint, reshard } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { ENTRY, runNode, waitFor } from "../support/processes.js";

/**
 * Parameter-server sharding with real processes: the orchestrator is shard 0
 * and a second process shard 1; ids live on shard id % 2, and trainers pull
 * from and push to both in parallel. The same job on 1 shard must give the
 * same model.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-shards-"));
// Each test runs whole clusters one after another (each run may take up to runNode's 120 s on a loaded machine).
const RUNS_TIMEOUT_MS = 300_000;

async function run(shards: number, extra: string[] = [], name = String(shards)): Promise<JobStatus__Output> {
  const r = await runNode(
    ENTRY.cli,
    ["run", "--json", "--trainers", "2", "--ps-shards", String(shards), "--steps", "20", "--batch-size", "256", "--eval-records", "2000",
      "--log-dir", join(tmp, `logs-${name}`), "--checkpoint-dir", join(tmp, `ckpt-${name}`), ...extra],
    { timeoutMs: 120_000 },
  );
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
}

describe("parameter-server shards", () => {
  it("2 shards hold disjoint halves by id % 2 and train the same model as 1 shard; checkpoints reshard onto 1 or 3 shards", async () => {
    const one = await run(1);
    const two = await run(2);
    expect(two.state).toBe("JOB_STATE_COMPLETED");
    // The shard's log names the orchestrator's job (no --job-id given: the orchestrator made one up), not one of its own.
    const jobsNamed = new Set([...readFileSync(join(tmp, "logs-2", "shard-1.log"), "utf8").matchAll(/"job":"([^"]+)"/g)].map((m) => m[1]));
    expect([...jobsNamed]).toEqual([two.jobId]);
    expect(Number(two.shardPartsSkipped)).toBe(0);
    expect(two.workers.filter((w) => w.kind === "WORKER_KIND_PS_SHARD")).toHaveLength(1);
    const ck1 = loadCheckpoint(one.checkpointPath);
    const ck2a = loadCheckpoint(two.checkpointPath);
    const ck2b = loadCheckpoint(`${two.checkpointPath}.shard-1`);
    expect(ck2a.manifest.shard).toEqual({ index: 0, count: 2 });
    expect(ck2b.manifest.shard).toEqual({ index: 1, count: 2 });
    for (const [ck, index] of [[ck2a, 0], [ck2b, 1]] as const) {
      for (const t of ck.tables) for (let r = 0; r < t.rows; r++) expect(shardOfId(t.ids[2 * r]!, t.ids[2 * r + 1]!, 2)).toBe(index);
    }
    // Same data, same seeds, same synchronous averaging: the same model.
    ck1.dense.forEach((v, i) => {
      const w = ck2a.dense[i]!;
      for (let k = 0; k < v.length; k++) expect(w[k]).toBeCloseTo(v[k]!, 5);
    });
    const rowsOf = (tables: { slot: number; rows: number; dim: number; ids: Uint32Array; weights: Float32Array }[]) => {
      const m = new Map<string, number[]>();
      for (const t of tables) for (let r = 0; r < t.rows; r++) m.set(`${t.ids[2 * r]}:${t.ids[2 * r + 1]}`, Array.from(t.weights.subarray(r * t.dim, (r + 1) * t.dim)));
      return m;
    };
    const single = rowsOf(ck1.tables);
    const sharded = rowsOf([...ck2a.tables, ...ck2b.tables]);
    expect(sharded.size).toBe(single.size);
    // The status of the job completed on 2 shards counts every shard's rows (from its final checkpoint), as one shard's does.
    expect([Number(two.embeddingRows), two.embeddingRowsEveryShard]).toEqual([single.size, true]);
    expect([Number(one.embeddingRows), one.embeddingRowsEveryShard]).toEqual([single.size, false]);
    for (const [id, row] of single) row.forEach((x, k) => expect(sharded.get(id)![k]).toBeCloseTo(x, 5));
    // Resharding: onto 1 shard gives every row once; onto 3, each row lands on id % 3.
    const onto1 = reshard([ck2a, ck2b], 1);
    expect(rowsOf(onto1[0]!).size).toBe(single.size);
    const onto3 = reshard([ck2a, ck2b], 3);
    expect(onto3.reduce((n, ts) => n + ts.reduce((m, t) => m + t.rows, 0), 0)).toBe(single.size);
    onto3.forEach((ts, index) => ts.forEach((t) => {
      for (let r = 0; r < t.rows; r++) expect(shardOfId(t.ids[2 * r]!, t.ids[2 * r + 1]!, 3)).toBe(index);
    }));

    // A job on 3 shards starts from the 2-shard checkpoint: it begins where that one ended.
    const resumed = await run(3, ["--restore-from", two.checkpointPath]);
    expect(resumed.state).toBe("JOB_STATE_COMPLETED");
    expect(resumed.firstLoss).toBeLessThan(one.firstLoss - 0.05);
    const after = [0, 1, 2].map((i) => loadCheckpoint(i === 0 ? resumed.checkpointPath : `${resumed.checkpointPath}.shard-${i}`));
    const restoredRows = rowsOf(after.flatMap((c) => c.tables));
    for (const id of single.keys()) expect(restoredRows.has(id)).toBe(true);

    // A damaged checkpoint is refused before the orchestrator serves, naming the file.
    const damaged = join(tmp, "damaged");
    cpSync(join(two.checkpointPath, ".."), damaged, { recursive: true });
    const stepDir = join(damaged, two.checkpointPath.split("/").at(-1)!);
    const weights = readdirSync(`${stepDir}.shard-1`).find((f) => f.endsWith(".weights.f32"))!;
    const bytes = readFileSync(join(`${stepDir}.shard-1`, weights));
    bytes[0] ^= 0xff;
    writeFileSync(join(`${stepDir}.shard-1`, weights), bytes);
    const refused = await runNode(ENTRY.orchestrator, ["--port", "0", "--restore-from", stepDir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split("\n").at(-1)).toBe(
      `pangea-orchestrator: error ORCH_ERR_CHECKPOINT_CORRUPT: checkpoint ${stepDir}.shard-1: ${weights} fails its SHA-256 check`,
    );
  }, RUNS_TIMEOUT_MS);

  it("time-based checkpoints on 2 shards: shard 1 writes its part at the step shard 0 chose, and each listed checkpoint is whole", async () => {
    const timed = await run(2, ["--steps", "60", "--checkpoint-every-seconds", "1", "--keep-checkpoints", "0"], "timed");
    expect(timed.state).toBe("JOB_STATE_COMPLETED");
    const steps = timed.checkpoints.map((dir) => Number(/step-(\d+)$/.exec(dir)![1]));
    expect(steps.at(-1)).toBe(60);
    expect(steps.length).toBeGreaterThan(1); // at least one taken by the clock, besides the final one
    for (const dir of timed.checkpoints) {
      const [zero, one] = loadShardedCheckpoint(dir);
      expect(one!.manifest.step).toBe(zero!.manifest.step);
      for (const t of one!.tables) for (let r = 0; r < t.rows; r++) expect(shardOfId(t.ids[2 * r]!, t.ids[2 * r + 1]!, 2)).toBe(1);
    }
    // The same job stopped at that step on 1 shard has the same rows: shard 1 wrote exactly step s, not a later one.
    const s = steps[0]!;
    const short = await run(1, ["--steps", String(s)], "short");
    const reference = new Map<string, number[]>();
    for (const t of loadCheckpoint(short.checkpointPath).tables) for (let r = 0; r < t.rows; r++) reference.set(`${t.ids[2 * r]}:${t.ids[2 * r + 1]}`, Array.from(t.weights.subarray(r * t.dim, (r + 1) * t.dim)));
    const part = loadCheckpoint(`${timed.checkpoints[0]}.shard-1`);
    let compared = 0;
    for (const t of part.tables) {
      for (let r = 0; r < t.rows; r++) {
        const want = reference.get(`${t.ids[2 * r]}:${t.ids[2 * r + 1]}`)!;
        t.weights.subarray(r * t.dim, (r + 1) * t.dim).forEach((x, k) => expect(x).toBeCloseTo(want[k]!, 5));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(100);
  }, RUNS_TIMEOUT_MS);
});

/**
 * A trainer that pushes its batches to shard 0 only (the other shards never
 * get their parts): shard 0 applies each such step, and tells the other
 * shards (StepApplied), which apply it without the missing part instead of
 * waiting for it while every other trainer's pull for the next step is
 * refused (the job had stopped for good: a hostile retrial).
 */
describe("a trainer that pushes to shard 0 only", () => {
  it("does not stop a sync job on 2 shards: shard 1 applies those steps without its part, the job completes with every batch applied and a whole final checkpoint", async () => {
    const steps = 30;
    const logDir = join(tmp, "logs-shard-0-only");
    // The job waits for 2 trainers; the cluster starts 1, the second is this test's client.
    const cluster = await LocalCluster.start({
      trainers: 1,
      psShards: 2,
      logDir,
      orchestratorArgs: ["--trainers", "2", "--job-id", "shard-0-only", "--steps", String(steps), "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt-shard-0-only"), "--heartbeat-timeout-ms", "5000"],
      computeArgs: ["--eval-records", "500"],
      trainerArgs: [],
    });
    const status = new StatusClient(cluster.orchestratorAddress);
    const workerId = "pushes-to-shard-0-only";
    let trainer: HandMadeTrainer | null = null;
    try {
      await status.connect(10_000);
      trainer = await joinAsTrainer(cluster.orchestratorAddress, workerId);
      const { job, token } = trainer;
      const spec = modelSpecFromWire(job.model!);
      const tickets = new BatchTickets();
      const shard0 = new ParameterClient(cluster.orchestratorAddress, workerId, trainer.rank, denseParams(spec), RowLayout.of(spec, job.model!.slotIds), false, true, null, () => token, tickets);
      const zeros = denseParams(spec).map((p) => new Float32Array(paramSize(p)));
      let pushed = 0;
      for (;;) {
        const work = await trainer.getWork();
        // Done (with an evaluation or not): it leaves; the evaluation goes to the other trainer once its session is gone.
        if (work.done) break;
        tickets.note(work.batchIndices.map(Number), work.batchTickets);
        for (const j of work.batchIndices.map(Number)) {
          // Its batch to shard 0 alone: its loss and zero gradients, no rows for shard 1.
          await shard0.push(Number(work.step), j, 64, 0.69, zeros, new Uint32Array(0), 0, new Float32Array(0));
          pushed++;
        }
      }
      shard0.close();
      trainer.leave();
      const s = await waitFor("the job to complete", async () => {
        const st = await status.get().catch(() => null);
        return st && (st.state === "JOB_STATE_COMPLETED" || st.state === "JOB_STATE_FAILED") ? st : null;
      }, 60_000);
      expect(s.state).toBe("JOB_STATE_COMPLETED");
      expect([Number(s.step), Number(s.batchesApplied), Number(s.missingBatches)]).toEqual([steps, 2 * steps, 0]);
      expect(pushed).toBeGreaterThanOrEqual(steps / 2);
      // The status counts the batches shard 1 went without (from its final checkpoint report): each of this client's.
      expect(Number(s.shardPartsSkipped)).toBe(pushed);
      // Shard 1 said which steps it applied without a part, and wrote its part of the final checkpoint at the final step.
      const shardLog = readFileSync(join(logDir, "shard-1.log"), "utf8");
      expect(shardLog).toMatch(/"step \d+ applied on shard 1 without the part of batch \d+: shard 0 has applied it and no trainer pushed it here"/);
      const [zero, one] = loadShardedCheckpoint(s.checkpointPath);
      expect([zero!.manifest.step, one!.manifest.step]).toEqual([steps, steps]);
    } finally {
      trainer?.leave();
      status.close();
      await cluster.stop(1_000);
    }
  }, RUNS_TIMEOUT_MS);
});
