import { describe, expect, it } from "vitest";
import { codeOf, gradients, joinTrainer, startedJob } from "./fakes/job-fixture.js";

/** The pull's verdict so far: "pending", or true (served) / false (withdrawn). */
function watch(p: Promise<boolean>): () => boolean | "pending" {
  let verdict: boolean | "pending" = "pending";
  p.then((v) => (verdict = v));
  return () => verdict;
}

const tick = () => new Promise((r) => setImmediate(r));

describe("Job: pulls sent ahead", () => {
  it("are held until the step is planned, then served to the trainers whose batches they name", async () => {
    const { job } = startedJob({ steps: 3 });
    const a = watch(job.holdPull(1, 0, [2], [0]));
    const b = watch(job.holdPull(1, 1, [3], [1]));
    await tick();
    expect([a(), b()]).toEqual(["pending", "pending"]);
    await job.push(gradients(job, 0, 0));
    await tick();
    // Half the step is in: its parameters are not final yet.
    expect([a(), b()]).toEqual(["pending", "pending"]);
    await job.push(gradients(job, 1, 1));
    await tick();
    expect(job.step).toBe(1);
    expect([a(), b()]).toEqual([true, true]);
    // Served: those are the batches GetWork hands out too.
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([2]);
  });

  it("a pull for a step already planned is decided at once", async () => {
    const { job } = startedJob({ steps: 3 });
    expect(await job.holdPull(0, 0, [0], [])).toBe(true);
    expect(await job.holdPull(0, 1, [0], [])).toBe(false);
  });

  it("is withdrawn when the step deals the trainer other batches (a trainer joined)", async () => {
    const { job, sessions } = startedJob({ steps: 3, batchesPerStep: 4 });
    const a = watch(job.holdPull(1, 0, [4, 6], [0, 2]));
    expect(joinTrainer(job, "trainer-2", sessions)).toBe(2);
    for (const j of [0, 1, 2, 3]) await job.push(gradients(job, j % 2, j));
    await tick();
    // Step 1 is dealt over three trainers: trainer-0 has batches 4 and 7.
    expect(a()).toBe(false);
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([4, 7]);
  });

  it("is withdrawn at once when the trainer is given a dead trainer's batch of the step under way (else the step could never end)", async () => {
    const { job, sessions } = startedJob({ steps: 3 });
    const a = watch(job.holdPull(1, 0, [2], [0]));
    await tick();
    expect(a()).toBe("pending");
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    await tick();
    expect(a()).toBe(false);
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([0, 1]);
  });

  it("a dead trainer's pull is withdrawn; so is a trainer's older pull when it sends a newer one", async () => {
    const { job, sessions } = startedJob({ steps: 3 });
    const dead = watch(job.holdPull(1, 1, [3], [1]));
    const older = watch(job.holdPull(1, 0, [2], [0]));
    const newer = watch(job.holdPull(1, 0, [2], [0]));
    await tick();
    expect([older(), newer()]).toEqual([false, "pending"]);
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    await tick();
    expect(dead()).toBe(false);
  });

  it("is withdrawn when training ends or pauses for an evaluation, so the trainers come to GetWork", async () => {
    const ending = startedJob({ steps: 1 }).job;
    const last = watch(ending.holdPull(1, 0, [2], [0]));
    await ending.push(gradients(ending, 0, 0));
    await ending.push(gradients(ending, 1, 1));
    await tick();
    expect(last()).toBe(false);

    const pausing = startedJob({ steps: 3, evalEverySteps: 1 }).job;
    const paused = watch(pausing.holdPull(1, 0, [2], [0]));
    await pausing.push(gradients(pausing, 0, 0));
    await pausing.push(gradients(pausing, 1, 1));
    await tick();
    expect(paused()).toBe(false);
    // Both trainers at GetWork: the last to ask evaluates.
    void pausing.getWork("trainer-0");
    expect((await pausing.getWork("trainer-1")).evaluate).toBe(true);
  });

  it("a pull for a step already past is withdrawn", async () => {
    const { job } = startedJob({ steps: 3 });
    await job.push(gradients(job, 0, 0));
    await job.push(gradients(job, 1, 1));
    expect(await job.holdPull(0, 0, [0], [])).toBe(false);
  });

  it("a pull for more than one step ahead is withdrawn at once; a cancelled one is dropped and never served", async () => {
    const { job } = startedJob({ steps: 3 });
    expect(await job.holdPull(2, 0, [4], [0])).toBe(false);
    const gone = new AbortController();
    const cancelled = watch(job.holdPull(1, 1, [3], [1], gone.signal));
    await tick();
    expect(cancelled()).toBe("pending");
    gone.abort();
    await tick();
    expect(cancelled()).toBe(false);
    await job.push(gradients(job, 0, 0));
    await job.push(gradients(job, 1, 1));
    // trainer-1 holds nothing now: a new pull of its is decided on its own.
    expect(await job.holdPull(1, 1, [3], [1])).toBe(true);
  });

  it("refuses an async job's pull sent ahead, and an unknown rank", async () => {
    expect(await codeOf(() => startedJob({ mode: "async" }).job.holdPull(1, 0, [2], [0]))).toBe("ORCH_ERR_BAD_REQUEST");
    expect(await codeOf(() => startedJob().job.holdPull(1, 7, [2], [0]))).toBe("ORCH_ERR_UNKNOWN_WORKER");
  });
});
