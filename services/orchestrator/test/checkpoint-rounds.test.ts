import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobConfig } from "../src/job/job-config.js";
import { Job } from "../src/job/job.js";
import { loadConfig } from "../src/config.js";
import { FakeSession, SOURCE, evalReport, gradients, joinTrainer, jobConfig, recordingLog } from "./fakes/job-fixture.js";

afterEach(() => {
  vi.useRealTimers();
});

/** A running job on 2 parameter-server shards: shard 1 is an in-memory session. */
function shardedJob(over: Partial<JobConfig> = {}) {
  const { log, lines } = recordingLog();
  const job = new Job(jobConfig({ psShards: 2, ...over }), log);
  job.address = "127.0.0.1:7000";
  job.registerCompute("compute-0", "127.0.0.1:7001", SOURCE);
  job.openSession("compute-0", new FakeSession());
  const shard = new FakeSession();
  job.registerShard("ps-1", 1, "127.0.0.1:7002");
  job.openSession("ps-1", shard);
  const sessions = new Map<string, FakeSession>();
  joinTrainer(job, "trainer-0", sessions);
  joinTrainer(job, "trainer-1", sessions);
  const requests = () => shard.events.filter((e) => e.checkpoint).map((e) => e.checkpoint);
  return { job, shard, requests, lines, dir: join(job.config.checkpointDir, "unit-job") };
}

async function step(job: Job) {
  const first = job.step * 2;
  await job.push(gradients(job, 0, first));
  await job.push(gradients(job, 1, first + 1));
}

describe("Job: checkpoints on several shards", () => {
  it("asks the other shards for their parts, holds the next step until they report, and counts the checkpoint only then", async () => {
    const { job, requests, dir, lines } = shardedJob({ checkpointEverySteps: 1, steps: 3 });
    await step(job);
    expect(requests()).toEqual([{ step: 1, final: false, batches: 2 }]);
    expect(existsSync(join(dir, "step-1"))).toBe(true); // shard 0's part
    expect(job.status().checkpointPath).toBe("");
    expect(lines.some((l) => l.msg === "checkpoint saved")).toBe(false);
    let dealt = false;
    const work = job.getWork("trainer-0").then((w) => ((dealt = true), w));
    await new Promise((r) => setTimeout(r, 20));
    expect(dealt).toBe(false); // step 2 waits: shard 1 must write exactly step 1
    job.checkpointWritten("ps-1", 1, "");
    expect(await work).toMatchObject({ step: 1, batchIndices: [2] });
    expect(job.status()).toMatchObject({ checkpointPath: join(dir, "step-1"), checkpoints: [join(dir, "step-1")] });
  });

  it("time-based checkpoints on 2 shards: shard 0 reads the clock and tells shard 1 the step", async () => {
    vi.useFakeTimers({ now: 1_000_000, toFake: ["Date"] });
    const { job, requests } = shardedJob({ checkpointEverySeconds: 10, steps: 4 });
    await step(job);
    expect(requests()).toEqual([]);
    vi.setSystemTime(1_010_000);
    await step(job);
    expect(requests()).toEqual([{ step: 2, final: false, batches: 4 }]);
    job.checkpointWritten("ps-1", 2, "");
    expect(job.status().checkpointPath.endsWith("step-2")).toBe(true);
  });

  it("the job completes only when it is evaluated and every shard wrote the final checkpoint", async () => {
    const { job, requests, shard } = shardedJob();
    await step(job);
    await step(job);
    expect(job.state).toBe("JOB_STATE_EVALUATING");
    expect(requests()).toEqual([{ step: 2, final: true, batches: 4 }]);
    const evaluator = (await job.getWork("trainer-0")).evaluate ? "trainer-0" : "trainer-1";
    job.reportEval(evalReport(evaluator));
    job.reportEval(evalReport(evaluator)); // a retried report is taken again, not refused
    expect(job.state).toBe("JOB_STATE_EVALUATING");
    expect(shard.finished()).toBeUndefined();
    job.checkpointWritten("ps-1", 2, "");
    expect(job.state).toBe("JOB_STATE_COMPLETED");
    expect(job.status().checkpointPath.endsWith("step-2")).toBe(true);
    expect(shard.finished()).toEqual({ state: "JOB_STATE_COMPLETED", error: "" });
  });

  it("a shard that cannot write its part fails the job naming it; a report nobody asked for is refused", async () => {
    const { job } = shardedJob({ checkpointEverySteps: 1 });
    expect(() => job.checkpointWritten("ps-1", 1, "")).toThrow("parameter-server shard 1 reported a checkpoint of step 1, which it was not asked for");
    expect(() => job.checkpointWritten("trainer-0", 1, "")).toThrow("checkpoint report from trainer-0, which is not a parameter-server shard of this job");
    await step(job);
    job.checkpointWritten("ps-1", 1, "ENOSPC: no space left on device");
    expect(job.status()).toMatchObject({
      state: "JOB_STATE_FAILED",
      error: "ORCH_ERR_CHECKPOINT_IO: parameter-server shard ps-1 (index 1) could not write its part of the checkpoint of step 1: ENOSPC: no space left on device",
    });
  });

  it("a checkpoint shard 0 cannot write fails the job with the IO line: the push is taken and the trainers are told, nothing waits on the step", async () => {
    const { log } = recordingLog();
    const job = new Job(jobConfig({ checkpointEverySteps: 1, steps: 5 }), log);
    job.registerCompute("compute-0", "127.0.0.1:7001", SOURCE);
    job.openSession("compute-0", new FakeSession());
    const sessions = new Map<string, FakeSession>();
    joinTrainer(job, "trainer-0", sessions);
    joinTrainer(job, "trainer-1", sessions);
    // The job's checkpoint directory became a file (a full or remounted disk fails the same way).
    writeFileSync(join(job.config.checkpointDir, "unit-job"), "not a directory");
    await job.push(gradients(job, 0, 0));
    await expect(job.push(gradients(job, 1, 1))).resolves.toBeDefined();
    expect(job.state).toBe("JOB_STATE_FAILED");
    expect(job.status().error).toMatch(/^ORCH_ERR_CHECKPOINT_IO: cannot write checkpoint .*unit-job\/step-1: ENOTDIR/);
    expect(sessions.get("trainer-0")!.finished()).toMatchObject({ state: "JOB_STATE_FAILED" });
  });

  it("a whole checkpoint shard 0 cannot commit (its directory gone between the parts) fails the job, not the shard's report", async () => {
    const { job, dir } = shardedJob({ checkpointEverySteps: 1 });
    await step(job);
    rmSync(dir, { recursive: true });
    writeFileSync(dir, "not a directory");
    expect(() => job.checkpointWritten("ps-1", 1, "")).not.toThrow();
    expect(job.status()).toMatchObject({ state: "JOB_STATE_FAILED", error: `ORCH_ERR_CHECKPOINT_IO: the checkpoint of step 1 is gone from ${join(dir, "step-1")} before it was whole` });
  });

  it("--checkpoint-every-seconds is taken with more than one shard", () => {
    expect(loadConfig(["--checkpoint-every-seconds", "30", "--ps-shards", "2"], {})).toMatchObject({ checkpointEverySeconds: 30, psShards: 2 });
  });
});
