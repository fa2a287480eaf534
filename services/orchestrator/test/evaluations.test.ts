import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { EvalReport__Output } from "@pangea/schema";
import { loadShardedCheckpoint } from "../src/checkpoint/checkpoint.js";
import { loadConfig } from "../src/config.js";
import { ENTRY, runNode } from "../../../test/support/processes.js";
import { OrchestratorErrors } from "../src/errors.js";
import { EVALUATIONS_KEPT, Evaluations } from "../src/job/evaluations.js";
import type { Job } from "../src/job/job.js";
import { SOURCE, codeOf, evalReport, gradients, startedJob, tempDir } from "./fakes/job-fixture.js";

const report = (step: number, auc: number, logloss = 0.5): EvalReport__Output => evalReport("t", { step, auc, logloss });

describe("the flags", () => {
  it("are read with their defaults, and refused with one line naming the flag: N negative, --keep-best without N, --best-task without --keep-best, an unknown metric", async () => {
    expect(loadConfig([], {})).toMatchObject({ evalEverySteps: 0, keepBest: false });
    expect(loadConfig(["--eval-every-steps", "5", "--keep-best", "--best-metric", "logloss", "--best-task", "conversion"], {})).toMatchObject({ evalEverySteps: 5, keepBest: true, bestMetric: "logloss", bestTask: "conversion" });
    expect(() => loadConfig(["--eval-every-steps=-1"], {})).toThrow("invalid --eval-every-steps: expected a number of steps");
    expect(() => loadConfig(["--keep-best"], {})).toThrow("invalid --keep-best: needs evaluations to compare: give --eval-every-steps N too");
    expect(() => loadConfig(["--eval-every-steps", "5", "--best-task", "ctr"], {})).toThrow("invalid --best-task: names the task --keep-best compares; give --keep-best too");
    expect(() => loadConfig(["--eval-every-steps", "5", "--best-metric", "logloss"], {})).toThrow("invalid --best-metric: names what --keep-best compares; give --keep-best too");
    expect(() => loadConfig(["--eval-every-steps", "5", "--keep-best", "--best-metric", "f1"], {})).toThrow("invalid --best-metric: expected one of auc, logloss");
    const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--keep-best"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual(["pangea-orchestrator: invalid --keep-best: needs evaluations to compare: give --eval-every-steps N too", "Run 'pangea-orchestrator --help' for usage."]);
  });
});

describe("Evaluations: when, and which is best", () => {
  it("is due every N steps, never at the last step (the final evaluation) nor twice at one step", () => {
    const e = new Evaluations({ everySteps: 5, best: null });
    expect([0, 4, 5, 10, 15, 20].map((s) => e.dueAt(s, 20))).toEqual([false, false, true, true, true, false]);
    e.record(report(5, 0.6));
    expect(e.dueAt(5, 20)).toBe(false);
    expect(new Evaluations({ everySteps: 0, best: null }).dueAt(5, 20)).toBe(false);
  });

  it(`keeps the first and the newest evaluations, ${EVALUATIONS_KEPT} in all, however long the job (the history travels in every status and checkpoint)`, () => {
    const e = new Evaluations({ everySteps: 1, best: { metric: "auc" } });
    e.bind([{ name: "ctr", loss: "bce", weight: 1 }], 100, "test");
    const n = EVALUATIONS_KEPT + 500;
    for (let s = 1; s <= n; s++) e.record(report(s, s === 7 ? 0.9 : 0.6));
    const steps = e.history.map((h) => Number(h.step));
    expect(steps.length).toBe(EVALUATIONS_KEPT);
    expect(steps.slice(0, 2)).toEqual([1, n - EVALUATIONS_KEPT + 2]);
    expect(steps.at(-1)).toBe(n);
    // The best is kept apart from the history: a dropped step stays the best.
    expect(e.bestStatus()).toMatchObject({ step: 7, value: 0.9 });
  });

  it("auc: higher is better, a tie keeps the earlier step, NaN (one class only) is never best; logloss: lower is better", () => {
    const auc = new Evaluations({ everySteps: 1, best: { metric: "auc" } });
    auc.bind([{ name: "ctr", loss: "bce", weight: 1 }], 100, "test");
    expect([report(1, 0.6), report(2, 0.7), report(3, 0.7), report(4, Number.NaN), report(5, 0.65)].map((r) => auc.record(r))).toEqual([true, true, false, false, false]);
    expect(auc.bestStatus()).toMatchObject({ step: 2, task: "ctr", metric: "auc", value: 0.7 });
    expect(auc.history.map((h) => Number(h.step))).toEqual([1, 2, 3, 4, 5]);
    const ll = new Evaluations({ everySteps: 1, best: { metric: "logloss" } });
    ll.bind([{ name: "ctr", loss: "bce", weight: 1 }], 100, "test");
    expect([report(1, 0.6, 0.5), report(2, 0.7, 0.52), report(3, 0.5, 0.45)].map((r) => ll.record(r))).toEqual([true, false, true]);
    expect(ll.bestStatus()).toMatchObject({ step: 3, metric: "logloss", value: 0.45 });
  });

  it("compares the named task of a multi-task report", () => {
    const e = new Evaluations({ everySteps: 1, best: { metric: "auc", task: "cvr" } });
    e.bind([{ name: "ctr", loss: "bce", weight: 1 }, { name: "cvr", loss: "bce", weight: 1 }], 100, "test");
    const two = (step: number, ctr: number, cvr: number) => ({ ...report(step, ctr), tasks: [{ name: "ctr", auc: ctr }, { name: "cvr", auc: cvr }] }) as unknown as EvalReport__Output;
    expect([two(1, 0.6, 0.6), two(2, 0.7, 0.55), two(3, 0.5, 0.65)].map((r) => e.record(r))).toEqual([true, false, true]);
    expect(e.bestStatus()).toMatchObject({ step: 3, task: "cvr", value: 0.65 });
  });

  it("a restored best of another task than the one compared now (--best-task given before, not on resume) starts over", () => {
    const tasks = [{ name: "ctr", loss: "bce" as const, weight: 1 }, { name: "cvr", loss: "bce" as const, weight: 1 }];
    const e = new Evaluations({ everySteps: 1, best: { metric: "auc" } });
    const saved = { step: 2, task: "cvr", metric: "auc" as const, value: 0.9, checkpoint: "/x/step-2", eval: report(2, 0.5) };
    expect(e.restore([], saved, 4)).toBeNull();
    expect(e.bind(tasks, 100, "test")).toBe("best.json compares cvr auc, this job ctr auc: the best starts over");
    expect(e.bestStatus()).toBeNull();
    const same = new Evaluations({ everySteps: 1, best: { metric: "auc", task: "cvr" } });
    same.restore([], saved, 4);
    expect(same.bind(tasks, 100, "test")).toBeNull();
    expect(same.bestStatus()).toMatchObject({ step: 2, task: "cvr", value: 0.9 });
  });

  it("refuses at job start: a task the data does not have, a regression task, and evaluations of a source without a held-out split", async () => {
    const tasks = [{ name: "ctr", loss: "bce" as const, weight: 1 }, { name: "dwell", loss: "mse" as const, weight: 1 }];
    const message = async (fn: () => void) => {
      try {
        fn();
        return "";
      } catch (err) {
        return `${(err as { code: string }).code}: ${(err as Error).message}`;
      }
    };
    expect(await message(() => new Evaluations({ everySteps: 5, best: { metric: "auc", task: "cvr" } }).bind(tasks, 100, "test"))).toBe("ORCH_ERR_BAD_JOB_CONFIG: --best-task cvr: the job's tasks are ctr, dwell");
    expect(await message(() => new Evaluations({ everySteps: 5, best: { metric: "logloss", task: "dwell" } }).bind(tasks, 100, "test"))).toBe("ORCH_ERR_BAD_JOB_CONFIG: --best-metric logloss needs a binary task; dwell is a regression (mse)");
    expect(await message(() => new Evaluations({ everySteps: 5, best: null }).bind(tasks, 0, "kafka topic t"))).toBe("ORCH_ERR_BAD_JOB_CONFIG: --eval-every-steps 5 needs a held-out split; the source (kafka topic t) has none");
    // The job fails with that line when compute registers.
    const { job } = startedJob({ evalEverySteps: 1 }, { ...SOURCE, evalRecords: 0 });
    expect(job.state).toBe("JOB_STATE_FAILED");
    expect(job.status().error).toBe("ORCH_ERR_BAD_JOB_CONFIG: --eval-every-steps 1 needs a held-out split; the source (in-memory test source) has none");
    expect(await codeOf(() => job.getWork("trainer-0"))).toBe("");
  });
});

describe("Job: evaluations during training", () => {
  it("sync: pauses at every N-th step until the last trainer to ask has evaluated, checkpoints the best step, and best.json keeps it from pruning", async () => {
    const { job, lines } = startedJob({ steps: 6, evalEverySteps: 2, keepBest: true, keepCheckpoints: 1 });
    const step = async (s: number) => {
      await job.push(gradients(job, 0, 2 * s));
      await job.push(gradients(job, 1, 2 * s + 1));
    };
    await step(0);
    await step(1);
    expect(job.status()).toMatchObject({ state: "JOB_STATE_RUNNING", step: 2 });
    const waiting = job.getWork("trainer-0"); // held: trainer-1 has not asked yet
    const asked = await job.getWork("trainer-1");
    expect(asked).toMatchObject({ done: false, evaluate: true, step: 2, batchIndices: [], computeAddress: "127.0.0.1:7001" });
    expect(await codeOf(() => job.reportEval(report(2, 0.6)))).toBe("ORCH_ERR_BAD_EVAL_REPORT"); // from "t", not the evaluator
    expect(await codeOf(() => job.reportEval(evalReport("trainer-1", { step: 3 })))).toBe("ORCH_ERR_BAD_EVAL_REPORT");
    job.reportEval(evalReport("trainer-1", { step: 2, auc: 0.6 }));
    const dir = join(job.config.checkpointDir, "unit-job");
    expect(JSON.parse(readFileSync(join(dir, "best.json"), "utf8"))).toMatchObject({ step: 2, task: "ctr", metric: "auc", value: 0.6, checkpoint: join(dir, "step-2") });
    // The checkpoint of an evaluated step records its evaluation, so a resumed job keeps it.
    expect(JSON.parse(readFileSync(join(dir, "step-2", "manifest.json"), "utf8")).training.evaluations).toMatchObject([{ step: 2, auc: 0.6 }]);
    expect((await waiting).batchIndices).toEqual([4]);
    expect((await job.getWork("trainer-1")).batchIndices).toEqual([5]);
    // A second report of the step (an impostor's came first, or a late one) is refused saying none is awaited:
    // FAILED_PRECONDITION, which the trainer logs and trains on from (it awaits nothing from it).
    expect(() => job.reportEval(evalReport("trainer-1", { step: 2, auc: 0.7 }))).toThrow(
      "evaluation report from trainer-1 for step 2 refused: no evaluation is awaited now (the one asked for was reported already, or none was asked for)",
    );
    await step(2);
    await step(3);
    const held = job.getWork("trainer-1");
    expect(await job.getWork("trainer-0")).toMatchObject({ evaluate: true, step: 4 });
    job.reportEval(evalReport("trainer-0", { step: 4, auc: 0.55 }));
    expect(existsSync(join(dir, "step-4"))).toBe(false); // not the best, and no periodic checkpoint due
    expect((await held).batchIndices).toEqual([9]);
    await step(4);
    await step(5);
    expect(job.state).toBe("JOB_STATE_EVALUATING");
    expect(await job.getWork("trainer-0")).toMatchObject({ done: true, evaluate: true });
    job.reportEval(evalReport("trainer-0", { step: 6, auc: 0.58 }));
    const s = job.status();
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(s.evaluations!.map((e) => [Number(e.step), e.auc])).toEqual([[2, 0.6], [4, 0.55], [6, 0.58]]);
    expect(s.best).toMatchObject({ step: 2, value: 0.6, checkpoint: join(dir, "step-2") });
    // --keep-checkpoints 1 keeps the final one, and the best besides it.
    expect(existsSync(join(dir, "step-2")) && existsSync(join(dir, "step-6"))).toBe(true);
    expect(lines.filter((l) => l.msg === "held-out evaluation").map((l) => l.fields.best)).toEqual([true, false, false]);
  });

  it("async: waits for the batches handed out before the pause, then the last trainer back evaluates", async () => {
    const { job } = startedJob({ mode: "async", steps: 3, batchesPerStep: 2, evalEverySteps: 1 });
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([0]);
    expect((await job.getWork("trainer-1")).batchIndices).toEqual([1]);
    await job.push(gradients(job, 0, 0));
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([2]);
    await job.push(gradients(job, 1, 1)); // step 1 done: the pause starts; batch 2 is still out
    const waiting = job.getWork("trainer-1");
    await job.push(gradients(job, 0, 2));
    expect(await job.getWork("trainer-0")).toMatchObject({ done: false, evaluate: true, step: 1 });
    job.reportEval(evalReport("trainer-0", { step: 1 }));
    expect((await waiting).batchIndices).toEqual([3]);
    expect(job.status().evaluations!.map((e) => Number(e.step))).toEqual([1]);
    expect(job.status().best).toBeNull();
  });

  it("a trainer lost while evaluating: another one evaluates the same step", async () => {
    const { job, sessions } = startedJob({ steps: 3, evalEverySteps: 1 });
    await job.push(gradients(job, 0, 0));
    await job.push(gradients(job, 1, 1));
    const other = job.getWork("trainer-0");
    expect(await job.getWork("trainer-1")).toMatchObject({ evaluate: true, step: 1 });
    job.sessionClosed("trainer-1", sessions.get("trainer-1")!);
    expect(await other).toMatchObject({ done: false, evaluate: true, step: 1 });
    job.reportEval(evalReport("trainer-0", { step: 1 }));
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([2, 3]);
  });
});

describe("Job: evaluations across --resume", () => {
  const step = async (job: Job, s: number) => {
    await job.push(gradients(job, 0, 2 * s));
    await job.push(gradients(job, 1, 2 * s + 1));
  };
  const abandon = (job: Job) => job.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", "the test stops this run"));
  /** A --keep-best job of 4 steps that evaluated step 2 (AUC 0.6) and stopped there: its settings and checkpoint root. */
  const evaluatedAtStep2 = async () => {
    const checkpointDir = tempDir("pangea-evals-resume-");
    const over = { steps: 4, evalEverySteps: 2, keepBest: true, checkpointDir };
    const first = startedJob(over).job;
    await step(first, 0);
    await step(first, 1);
    void first.getWork("trainer-0");
    await first.getWork("trainer-1");
    first.reportEval(evalReport("trainer-1", { step: 2, auc: 0.6 }));
    abandon(first);
    return { checkpointDir, over };
  };

  it("keeps the history its checkpoint recorded and the best best.json names", async () => {
    const { checkpointDir, over } = await evaluatedAtStep2();
    const restoreFrom = loadShardedCheckpoint(join(checkpointDir, "unit-job", "step-2"));
    const { job } = startedJob({ ...over, resume: true, restoreFrom });
    expect(job.status()).toMatchObject({ step: 2, resumedFromStep: 2, best: { step: 2, value: 0.6, checkpoint: join(checkpointDir, "unit-job", "step-2") } });
    expect(job.status().evaluations!.map((e) => [Number(e.step), e.auc])).toEqual([[2, 0.6]]);
    expect((await job.getWork("trainer-0")).batchIndices).toEqual([4]); // step 2 was evaluated: training goes on
    await step(job, 2);
    await step(job, 3);
    await job.getWork("trainer-0");
    job.reportEval(evalReport("trainer-0", { step: 4, auc: 0.55 }));
    expect(job.status()).toMatchObject({ state: "JOB_STATE_COMPLETED", best: { step: 2, value: 0.6 } });
    expect(JSON.parse(readFileSync(join(checkpointDir, "unit-job", "best.json"), "utf8"))).toMatchObject({ step: 2, value: 0.6 });
  });

  it("a best.json that cannot be read is a warning in the resumed job's status, and the best starts over: from the checkpoint resumed from, which was evaluated", async () => {
    const { checkpointDir, over } = await evaluatedAtStep2();
    writeFileSync(join(checkpointDir, "unit-job", "best.json"), "{garbage");
    const restoreFrom = loadShardedCheckpoint(join(checkpointDir, "unit-job", "step-2"));
    const { job } = startedJob({ ...over, resume: true, restoreFrom });
    expect(job.status().best).toMatchObject({ step: 2, value: 0.6, checkpoint: join(checkpointDir, "unit-job", "step-2") });
    expect(job.status().warnings).toEqual([expect.stringMatching(/^--keep-best: ignoring best\.json \(.+\); the best starts over$/)]);
    expect(JSON.parse(readFileSync(join(checkpointDir, "unit-job", "best.json"), "utf8"))).toMatchObject({ step: 2, value: 0.6 });
  });

  it("a best.json of another metric is a warning in the resumed job's status too (it was only in the log), and the best starts over by the job's metric", async () => {
    const { checkpointDir, over } = await evaluatedAtStep2();
    const restoreFrom = loadShardedCheckpoint(join(checkpointDir, "unit-job", "step-2"));
    const { job } = startedJob({ ...over, bestMetric: "logloss", resume: true, restoreFrom });
    expect(job.status().best).toMatchObject({ step: 2, metric: "logloss", value: 0.5 });
    expect(job.status().warnings).toEqual(["--keep-best: best.json compares ctr auc, this job the first task logloss: the best starts over"]);
  });

  it("killed after the evaluated checkpoint was whole and before best.json named it: the resumed job takes it as the best if it beats best.json's, and names it there (pruning keeps it)", async () => {
    const { checkpointDir, over } = await evaluatedAtStep2();
    const bestFile = join(checkpointDir, "unit-job", "best.json");
    const restoreFrom = loadShardedCheckpoint(join(checkpointDir, "unit-job", "step-2"));
    rmSync(bestFile);
    expect(startedJob({ ...over, resume: true, restoreFrom }).job.status().best).toMatchObject({ step: 2, value: 0.6, checkpoint: join(checkpointDir, "unit-job", "step-2") });
    expect(JSON.parse(readFileSync(bestFile, "utf8"))).toMatchObject({ step: 2, value: 0.6 });
    // best.json naming a worse figure (an older step's, in the run that ended) gives way to it.
    writeFileSync(bestFile, JSON.stringify({ ...JSON.parse(readFileSync(bestFile, "utf8")), value: 0.5 }));
    expect(startedJob({ ...over, resume: true, restoreFrom }).job.status().best).toMatchObject({ step: 2, value: 0.6 });
    expect(JSON.parse(readFileSync(bestFile, "utf8"))).toMatchObject({ step: 2, value: 0.6 });
    // best.json naming a better figure keeps it: the checkpoint resumed from does not beat it.
    writeFileSync(bestFile, JSON.stringify({ ...JSON.parse(readFileSync(bestFile, "utf8")), value: 0.9 }));
    expect(startedJob({ ...over, resume: true, restoreFrom }).job.status().best).toMatchObject({ step: 2, value: 0.9 });
  });

  it("a checkpoint at a step boundary without its evaluation (written without --eval-every-steps): the resumed job evaluates it first", async () => {
    const checkpointDir = tempDir("pangea-evals-resume-");
    const first = startedJob({ steps: 4, checkpointEverySteps: 2, checkpointDir }).job;
    await step(first, 0);
    await step(first, 1);
    abandon(first);
    const restoreFrom = loadShardedCheckpoint(join(checkpointDir, "unit-job", "step-2"));
    const { job } = startedJob({ steps: 4, evalEverySteps: 2, checkpointDir, resume: true, restoreFrom });
    const held = job.getWork("trainer-0");
    expect(await job.getWork("trainer-1")).toMatchObject({ done: false, evaluate: true, step: 2 });
    job.reportEval(evalReport("trainer-1", { step: 2 }));
    expect((await held).batchIndices).toEqual([4]);
  });
});
