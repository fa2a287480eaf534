import { describe, expect, it } from "vitest";
import type { JobStatus__Output, TaskEval__Output } from "@pangea/schema";
import { formatSummary } from "../src/commands/summary.js";

const nan = Number.NaN;
const evalOf = (over: Partial<TaskEval__Output> = {}): TaskEval__Output => ({
  name: "ctr", loss: "bce", records: 1000, auc: 0.81, logloss: 0.45, rmse: nan, meanPrediction: 0.28, labelRate: 0.3, calibration: 0.28 / 0.3,
  hasGauc: false, gauc: nan, gaucGroups: 0, gaucRecords: 0, ungroupedRecords: 0, ...over,
});

/** A completed single-task job's status, as the orchestrator reports it. */
function status(task: TaskEval__Output): JobStatus__Output {
  return {
    jobId: "j", state: "JOB_STATE_COMPLETED", step: 10, steps: 10, lastLoss: 0.46, smoothedLoss: 0.47, firstLoss: 0.7, firstLossStep: 1, samples: 640,
    samplesPerSecond: 100, elapsedSeconds: 6.4, workers: [], backend: "cpu", mode: "sync", error: "", embeddingRows: 5, embeddings: null,
    eval: { workerId: "t", step: 10, records: 1000, auc: 0.81, logloss: 0.45, meanPrediction: 0.28, labelRate: 0.3, tasks: [task] },
    source: null, checkpointPath: "", batchesApplied: 10, duplicateBatches: 0, reassignedBatches: 0, staleGradients: 0, maxStalenessSeen: 0,
    resumedFromStep: 0, checkpoints: [], liveTrainers: 0, deadTrainers: 0, missingBatches: 0, streamingAuc: 0.8,
    tasks: [{ name: "ctr", loss: "bce", weight: 1, lastLoss: 0.46, smoothedLoss: 0.47, streamingAuc: 0.8, eval: task, hasGroundTruth: false, groundTruthAuc: nan, groundTruthLogloss: nan }],
  } as JobStatus__Output;
}

const keys = (summary: string) => summary.split("\n").slice(1).map((l) => l.slice(2).split(/ {2,}/)[0]);

describe("the job summary of a single-task job", () => {
  it("has today's lines, and a GAUC line only when the job had a group slot", () => {
    const plain = formatSummary(status(evalOf()), 1);
    expect(keys(plain)).toEqual(["state", "backend", "mode", "steps", "batches", "train time", "throughput", "train loss", "embedding rows", "held-out AUC", "held-out logloss", "held-out records"]);
    const grouped = formatSummary(status(evalOf({ hasGauc: true, gauc: 0.7123, gaucGroups: 40, gaucRecords: 950, ungroupedRecords: 12 })), 1);
    expect(grouped.split("\n").slice(0, -1).join("\n")).toBe(plain);
    expect(grouped.split("\n").at(-1)).toBe("  held-out GAUC     0.7123 over 40 groups with both classes (950 records; 12 in no group)");
  });
});

describe("the held-out AUC line", () => {
  it("says why it is n/a when every held-out record has one label (a trial's 10-record file held out 1 record)", () => {
    const one = status(evalOf());
    one.eval = { ...one.eval!, records: 1, auc: nan, labelRate: 0 };
    const line = (s: JobStatus__Output) => formatSummary(s, 1).split("\n").find((l) => l.startsWith("  held-out AUC"));
    expect(line(one)).toBe("  held-out AUC      n/a (every held-out record has label 0: AUC needs both labels)");
    expect(line(status(evalOf()))).toBe("  held-out AUC      0.8100");
  });
});

describe("the embedding rows line", () => {
  const rowsLine = (s: JobStatus__Output) => formatSummary(s, 1).split("\n").find((l) => l.startsWith("  embedding rows"));
  const shard = { workerId: "shard-1", kind: "WORKER_KIND_PS_SHARD", alive: true } as JobStatus__Output["workers"][number];
  const embeddings = { bytes: 2_000_000, filteredLookups: 0, admittedIds: 7, evictedRows: 0, rejectedGradients: 0 } as JobStatus__Output["embeddings"];
  it("on several shards: shard 0's while the job runs, every shard's once counted from the final checkpoint", () => {
    const running = { ...status(evalOf()), state: "JOB_STATE_RUNNING", workers: [shard], embeddingRows: 5, embeddings } as JobStatus__Output;
    expect(rowsLine(running)).toBe("  embedding rows (shard 0 of 2)  5  (2.0 MB; 0 lookups filtered, 7 ids admitted, 0 rows evicted, 0 gradients rejected)");
    const done = { ...running, state: "JOB_STATE_COMPLETED", embeddingRows: 9, embeddingRowsEveryShard: true } as JobStatus__Output;
    expect(rowsLine(done)).toBe("  embedding rows    9  (in the final checkpoint, every shard's; shard 0's table: 2.0 MB; 0 lookups filtered, 7 ids admitted, 0 rows evicted, 0 gradients rejected)");
  });
});

describe("the batches line", () => {
  const batches = (s: JobStatus__Output) => formatSummary(s, 1).split("\n").find((l) => l.startsWith("  batches"));
  it("async: tells the batches whose gradients were dropped as stale from the applied ones (they were counted as applied)", () => {
    const async = { ...status(evalOf()), mode: "async", batchesApplied: 40, staleGradients: 3, maxStalenessSeen: 7 } as JobStatus__Output;
    expect(batches(async)).toBe("  batches           40 taken: 37 applied, 3 dropped as stale (the oldest applied 7 updates behind), 0 missing, 0 duplicates ignored, 0 reassigned from 0 lost trainers");
    expect(batches(status(evalOf()))).toBe("  batches           10 applied, 0 missing, 0 duplicates ignored, 0 reassigned from 0 lost trainers");
    // A trainer pushed batches to shard 0 alone: the other shards applied those steps without their part, and it says so.
    const skipped = { ...status(evalOf()), shardPartsSkipped: 3 } as JobStatus__Output;
    expect(batches(skipped)).toBe("  batches           10 applied, 0 missing, 0 duplicates ignored, 0 reassigned from 0 lost trainers; 3 applied without their part on another shard (pushed to shard 0 alone)");
  });
});

describe("the summary of a run a failed process ended", () => {
  it("says the job was stopped, not that it is running", () => {
    const running = { ...status(evalOf()), state: "JOB_STATE_RUNNING" } as JobStatus__Output;
    expect(formatSummary(running, 1).split("\n")[1]).toBe("  state             running");
    expect(formatSummary(running, 1, null, true).split("\n")[1]).toBe("  state             stopped (a process failed while the job ran; see below)");
  });
});

describe("the summary of a job with no held-out split (Kafka, --eval-fraction 0)", () => {
  it("says the job was not evaluated instead of printing figures of nothing", () => {
    const empty = status(evalOf({ records: 0, auc: nan, logloss: nan, meanPrediction: nan, labelRate: nan, calibration: nan }));
    const s = formatSummary({ ...empty, eval: { ...empty.eval!, records: 0, auc: nan, logloss: nan, meanPrediction: nan, labelRate: nan } }, 1);
    expect(keys(s)).toEqual(["state", "backend", "mode", "steps", "batches", "train time", "throughput", "train loss", "embedding rows", "held-out records"]);
    expect(s.split("\n").at(-1)).toBe("  held-out records  0 (no held-out split: the job was not evaluated)");
  });
});

describe("the summary's warnings", () => {
  it("shows each warning of the job's status on a line of its own", () => {
    const s = formatSummary({ ...status(evalOf()), warnings: ["--slot-config names slot 9, which the data does not have (its slots: 0, 1); its settings are not used"] }, 1);
    expect(s.split("\n").filter((l) => l.startsWith("  warning"))).toEqual(["  warning           --slot-config names slot 9, which the data does not have (its slots: 0, 1); its settings are not used"]);
    expect(keys(formatSummary(status(evalOf()), 1))).not.toContain("warning");
  });
});

describe("a --resume the orchestrator refused", () => {
  it("says the job did not resume from the checkpoint, instead of 'resumed from step N'", () => {
    const refused = formatSummary({ ...status(evalOf()), state: "JOB_STATE_FAILED", error: "ORCH_ERR_CHECKPOINT_MISMATCH: the checkpoint holds another model than this job's: tasks", resumedFromStep: 60 }, 1);
    expect(refused.split("\n").find((l) => l.startsWith("  mode"))).toBe("  mode              sync, not resumed: the checkpoint at step 60 does not fit this job (see state)");
    const unreadable = formatSummary({ ...status(evalOf()), state: "JOB_STATE_FAILED", error: "ORCH_ERR_CHECKPOINT_CORRUPT: the checkpoint: its denseParams are not a list", resumedFromStep: 60, step: 60, steps: 120 }, 1);
    expect(unreadable.split("\n").find((l) => l.startsWith("  mode"))).toBe("  mode              sync, not resumed: the checkpoint at step 60 could not be read (see state)");
    expect(unreadable.split("\n").find((l) => l.startsWith("  steps"))).toBe("  steps             none of 120 trained (the checkpoint, at step 60, was not resumed)");
    // The counts the status carries are the checkpoint's: this run trained nothing, lost no trainer.
    const carried = formatSummary({ ...status(evalOf()), state: "JOB_STATE_FAILED", error: "ORCH_ERR_CHECKPOINT_MISMATCH: cannot resume: other data", resumedFromStep: 20, step: 20, steps: 120, samples: 2560, batchesApplied: 40, reassignedBatches: 3, deadTrainers: 2 }, 1);
    const lines = carried.split("\n");
    expect(lines.find((l) => l.startsWith("  steps"))).toBe("  steps             none of 120 trained (the checkpoint, at step 20, was not resumed)");
    expect(lines.some((l) => l.startsWith("  batches"))).toBe(false);
    expect(lines.find((l) => l.startsWith("  train time"))).toBe("  train time        n/a (no batch was trained)");
    expect(lines.find((l) => l.startsWith("  backend"))).not.toContain("lost");
    expect(lines.find((l) => l.startsWith("  throughput"))).toBe("  throughput        n/a (no batch was trained)");
    // A resumed job that failed later for another reason did resume.
    const later = formatSummary({ ...status(evalOf()), state: "JOB_STATE_FAILED", error: "ORCH_ERR_NO_TRAINERS: every trainer was lost", resumedFromStep: 60 }, 1);
    expect(later.split("\n").find((l) => l.startsWith("  mode"))).toBe("  mode              sync, resumed from step 60");
  });
});

describe("the summary of a job started with --restore-from", () => {
  it("names the checkpoint its parameters came from, after the mode", () => {
    const s = formatSummary({ ...status(evalOf()), restoredFrom: "/ck/a/step-50 (step 50 of job a)" }, 1);
    expect(keys(s).slice(2, 4)).toEqual(["mode", "restored from"]);
    expect(s.split("\n").find((l) => l.startsWith("  restored from"))).toBe("  restored from     /ck/a/step-50 (step 50 of job a); its parameters, this job's steps from 0");
    expect(keys(formatSummary(status(evalOf()), 1))).not.toContain("restored from");
  });
});

describe("the summary of a job that failed before its first batch", () => {
  it("gives no throughput or loss, instead of 0 samples/s and n/a at step 0", () => {
    const s = formatSummary({ ...status(evalOf()), state: "JOB_STATE_FAILED", error: "MODEL_ERR_BAD_SPEC: too wide", step: 0, samples: 0, samplesPerSecond: 0, firstLoss: Number.NaN, smoothedLoss: Number.NaN }, 2);
    expect(s.split("\n").find((l) => l.startsWith("  throughput"))).toBe("  throughput        n/a (no batch was trained)");
    expect(s.split("\n").find((l) => l.startsWith("  train loss"))).toBe("  train loss        n/a (no batch was trained)");
    // One batch is enough for both.
    const one = formatSummary({ ...status(evalOf()), state: "JOB_STATE_FAILED", samples: 64 }, 2);
    expect(one.split("\n").find((l) => l.startsWith("  throughput"))).toBe("  throughput        100 samples/s");
  });
});

describe("the summary of a completed job resumed with --resume", () => {
  it("says nothing trained since the resume instead of a throughput of 0", () => {
    const s = formatSummary({ ...status(evalOf()), resumedFromStep: 10, samplesPerSecond: 0, backend: "" }, 1);
    expect(s.split("\n").find((l) => l.startsWith("  throughput"))).toBe("  throughput        nothing trained since the resume (the job had completed)");
    // Trainers joined (one reported its backend): the run before ended during its final evaluation, which this one made.
    const evaluated = formatSummary({ ...status(evalOf()), resumedFromStep: 10, samplesPerSecond: 0 }, 1);
    expect(evaluated.split("\n").find((l) => l.startsWith("  throughput"))).toBe("  throughput        nothing trained since the resume (it resumed from the final step's checkpoint and evaluated it)");
    const trained = formatSummary({ ...status(evalOf()), resumedFromStep: 4 }, 1);
    expect(trained.split("\n").find((l) => l.startsWith("  throughput"))).toBe("  throughput        100 samples/s since the resume");
  });

  it("claims no backend no trainer reported, and says the embedding rows are the final checkpoint's", () => {
    const s = formatSummary({ ...status(evalOf()), resumedFromStep: 10, samplesPerSecond: 0, backend: "" }, 2);
    expect(keys(s)).not.toContain("backend");
    expect(s.split("\n").find((l) => l.startsWith("  embedding rows"))).toBe("  embedding rows    5  (in the final checkpoint, every shard's)");
    // A job that trained keeps both as before.
    const trained = formatSummary({ ...status(evalOf()), resumedFromStep: 4, backend: "" }, 2);
    expect(trained.split("\n").find((l) => l.startsWith("  backend"))).toBe("  backend           n/a on 2 trainers");
    expect(trained.split("\n").find((l) => l.startsWith("  embedding rows"))).toBe("  embedding rows    5");
  });
});

describe("the summary's backend line", () => {
  const backend = (s: string) => s.split("\n").find((l) => l.startsWith("  backend"));
  it("says how many of the trainers launched are live while the job runs, and how many were lost once it ended", () => {
    expect(backend(formatSummary(status(evalOf()), 3))).toBe("  backend           cpu on 3 trainers");
    expect(backend(formatSummary({ ...status(evalOf()), deadTrainers: 1 }, 3))).toBe("  backend           cpu on 3 trainers (1 lost during the job)");
    const running = { ...status(evalOf()), state: "JOB_STATE_RUNNING" as const };
    expect(backend(formatSummary({ ...running, liveTrainers: 3 }, 3))).toBe("  backend           cpu on 3 trainers");
    expect(backend(formatSummary({ ...running, liveTrainers: 2, deadTrainers: 1 }, 3))).toBe("  backend           cpu on 3 trainers (2 live now)");
    // pangea up's cluster joined by a trainer started by hand.
    expect(backend(formatSummary({ ...running, liveTrainers: 4 }, 3))).toBe("  backend           cpu on 3 trainers (4 live now)");
  });

  it("counts a trainer started by hand that trained among the job's, not a registration that never trained a step", () => {
    const trainer = (workerId: string, stepsDone: number, alive = false) => ({ workerId, kind: "WORKER_KIND_TRAINER", stepsDone: String(stepsDone), batchesDone: String(stepsDone), alive }) as unknown as JobStatus__Output["workers"][number];
    const ended = { ...status(evalOf()), deadTrainers: 3, workers: [trainer("trainer-0", 40), trainer("trainer-1", 40), trainer("by-hand", 90), trainer("ghost", 0, true)] };
    expect(backend(formatSummary(ended, 2))).toBe("  backend           cpu on 3 trainers (3 lost during the job)");
  });
});

describe("a running job's compute that is gone", () => {
  it("gets a line saying training waits for a compute, only while the job runs and compute's session is closed", () => {
    const line = (s: string) => s.split("\n").find((l) => l.startsWith("  not connected"));
    const compute = (alive: boolean) => ({ workerId: "compute-1", kind: "WORKER_KIND_COMPUTE", address: "127.0.0.1:5001", connected: alive, alive }) as JobStatus__Output["workers"][number];
    const running = { ...status(evalOf()), state: "JOB_STATE_RUNNING" as const, liveTrainers: 1 };
    expect(line(formatSummary({ ...running, workers: [compute(false)] }, 1))).toBe("  not connected     compute compute-1 at 127.0.0.1:5001: training waits for a compute to register");
    // pangea run stopped the job (a process failed): nothing waits any more.
    expect(line(formatSummary({ ...running, workers: [compute(false)] }, 1, null, true))).toBe("  not connected     compute compute-1 at 127.0.0.1:5001: gone when the job stopped");
    expect(line(formatSummary({ ...running, workers: [compute(true)] }, 1))).toBeUndefined();
    // Done with its data, compute may leave: a finished job waits for nothing.
    expect(line(formatSummary({ ...status(evalOf()), workers: [compute(false)] }, 1))).toBeUndefined();
  });
});

describe("the summary's model line", () => {
  it("names the architecture and its hyper-parameters after the state, when the orchestrator reports them", () => {
    const s = formatSummary({ ...status(evalOf()), model: "dlrm (bottomMlp [64, 16], topMlp [64, 32])" }, 1);
    expect(keys(s).slice(0, 3)).toEqual(["state", "model", "backend"]);
    expect(s.split("\n")[2]).toBe("  model             dlrm (bottomMlp [64, 16], topMlp [64, 32])");
  });
});

describe("a single regression task", () => {
  it("gets its task row (RMSE, calibration), not AUC lines", () => {
    const e = evalOf({ name: "watch", loss: "mse", auc: nan, logloss: nan, rmse: 3.25, meanPrediction: 10.9, labelRate: 11.1, calibration: 10.9 / 11.1 });
    const st = status(e);
    st.tasks = [{ ...st.tasks[0]!, name: "watch", loss: "mse", eval: e }];
    const s = formatSummary(st, 1);
    expect(s).not.toContain("held-out AUC");
    const row = s.split("\n").find((l) => l.startsWith("  task watch (mse"));
    expect(row).toContain("RMSE 3.2500");
    expect(row).toContain("calibration 0.982");
  });
});

describe("the summary's parameter sync line", () => {
  const line = (sync: { version: number; rowsSent: number; ignored: number; failing?: string }) => formatSummary(status(evalOf()), 1, { failing: null, ...sync }).split("\n").find((l) => l.startsWith("  parameter sync"));
  it("names the version serving applied pushes to, and pushes serving ignored as not newer than ones it had", () => {
    expect(line({ version: 3, rowsSent: 1200, ignored: 0 })).toBe("  parameter sync    1,200 embedding rows pushed to serving; serving acknowledged version 3");
    expect(line({ version: 3, rowsSent: 1200, ignored: 1 })).toBe("  parameter sync    1,200 embedding rows pushed to serving; serving acknowledged version 3; 1 push ignored by serving as not newer than ones it had applied");
    expect(line({ version: 0, rowsSent: 1200, ignored: 7 })).toBe("  parameter sync    no push was applied by serving (1,200 embedding rows in them); 7 pushes ignored by serving as not newer than ones it had applied");
  });
  it("with pushes failing, says the rows were sent, not taken, and why the last push failed", () => {
    expect(line({ version: 0, rowsSent: 1200, ignored: 0, failing: "serving at 127.0.0.1:9 refused: UNAUTHENTICATED" })).toBe("  parameter sync    no push was applied by serving (1,200 embedding rows in them); the last push failed: serving at 127.0.0.1:9 refused: UNAUTHENTICATED");
    expect(line({ version: 2, rowsSent: 1200, ignored: 0, failing: "serving at 127.0.0.1:9 is unreachable" })).toBe("  parameter sync    1,200 embedding rows pushed to serving; serving acknowledged version 2; the last push failed: serving at 127.0.0.1:9 is unreachable");
  });
  it("after a resume, says the count runs from the job's start and that none were applied since the resume", () => {
    const text = formatSummary({ ...status(evalOf()), resumedFromStep: 40 }, 1, { version: 0, rowsSent: 1200, ignored: 0, failing: "serving at 127.0.0.1:9 is unreachable" }).split("\n").find((l) => l.startsWith("  parameter sync"));
    expect(text).toBe("  parameter sync    1,200 embedding rows sent to serving since the job began; none applied since the resume from step 40; the last push failed: serving at 127.0.0.1:9 is unreachable");
  });
});

describe("the summary's evaluations during training (--eval-every-steps) and best checkpoint (--keep-best)", () => {
  const report = (step: number, auc: number) => ({ workerId: "t", step, records: 1000, auc, logloss: 1 - auc, meanPrediction: 0.3, labelRate: 0.3, tasks: [evalOf({ auc, logloss: 1 - auc })] });

  it("adds nothing for a job evaluated only at the end", () => {
    const s = formatSummary({ ...status(evalOf()), evaluations: [report(10, 0.81)], best: null }, 1);
    expect(s).toBe(formatSummary(status(evalOf()), 1));
  });

  it("lists one evaluation a line with the best marked, then the best checkpoint and its export; beyond 12, the first two and the newest nine", () => {
    const few = [report(5, 0.7), report(10, 0.75), report(15, 0.72)];
    const best = { step: 10, task: "ctr", metric: "auc", value: 0.75, checkpoint: "/ck/j/step-10", exported: "/models/2" };
    const s = formatSummary({ ...status(evalOf()), evaluations: few, best }, 1).split("\n");
    expect(s.slice(-4)).toEqual([
      "  held-out by step  step 5: AUC 0.7000, logloss 0.3000",
      "                    step 10: AUC 0.7500, logloss 0.2500  (best)",
      "                    step 15: AUC 0.7200, logloss 0.2800",
      "  best checkpoint   step 10 (ctr AUC 0.7500): /ck/j/step-10; exported as /models/2",
    ]);
    const many = Array.from({ length: 20 }, (_, i) => report(i + 1, 0.5 + i / 100));
    const lines = formatSummary({ ...status(evalOf()), evaluations: many, best: null }, 1).split("\n");
    const listed = lines.slice(lines.findIndex((l) => l.includes("held-out by step")));
    expect(listed.map((l) => l.trim().replace(/^held-out by step +/, "").split(":")[0])).toEqual(["step 1", "step 2", "... (9 more)", ...[12, 13, 14, 15, 16, 17, 18, 19, 20].map((k) => `step ${k}`)]);
  });
});

describe("the throughput after the warm-up steps", () => {
  it("follows the job's rate once the orchestrator reports one, and is left out before", () => {
    const line = (s: string) => s.split("\n").find((l) => l.startsWith("  throughput"));
    expect(line(formatSummary({ ...status(evalOf()), samplesPerSecond: 83_803.4, samplesPerSecondAfterWarmup: 123_229.6, warmupSteps: 10 }, 2))).toBe("  throughput        83,803 samples/s (123,230 after its first 10 steps)");
    expect(line(formatSummary({ ...status(evalOf()), samplesPerSecondAfterWarmup: 0, warmupSteps: 0 }, 2))).toBe("  throughput        100 samples/s");
  });
});
