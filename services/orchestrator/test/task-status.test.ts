import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { EvalReport__Output, TaskEval__Output } from "@pangea/schema";
import { TaskLosses, buildTaskStatuses } from "../src/job/task-status.js";
import { checkEvalReport } from "../src/job/eval-report-check.js";
import { readCompletion, writeCompletion } from "../src/checkpoint/completion.js";
import { SOURCE, evalReport } from "./fakes/job-fixture.js";

const TASKS = [
  { name: "click", loss: "bce" as const, weight: 1 },
  { name: "watch", loss: "mse" as const, weight: 0.5 },
];

function taskEval(name: string, loss: string, over: Partial<TaskEval__Output> = {}): TaskEval__Output {
  const nan = Number.NaN;
  return { name, loss, records: 200, auc: nan, logloss: nan, rmse: nan, meanPrediction: 0.3, labelRate: 0.25, calibration: 1.2, hasGauc: false, gauc: nan, gaucGroups: 0, gaucRecords: 0, ungroupedRecords: 0, ...over };
}
const good = () => evalReport("trainer-0", { tasks: [taskEval("click", "bce", { auc: 0.7, logloss: 0.5, hasGauc: true, gauc: 0.6, gaucGroups: 9, gaucRecords: 150 }), taskEval("watch", "mse", { rmse: 2.5, meanPrediction: 4, labelRate: 5 })] });

describe("per-task figures in the orchestrator", () => {
  it("a task's loss is the mean over a step's batches, smoothed over steps like the job's loss", () => {
    const l = new TaskLosses();
    l.add([0.6, 4], false);
    l.add([0.4, 2], true);
    expect(l.last).toEqual([0.5, 3]);
    expect(l.smoothed).toEqual([0.5, 3]);
    l.add([0.3, 1], true);
    expect(l.last).toEqual([0.3, 1]);
    expect(l.smoothed[0]).toBeCloseTo(0.95 * 0.5 + 0.05 * 0.3, 12);
    expect(l.smoothed[1]).toBeCloseTo(0.95 * 3 + 0.05 * 1, 12);
  });

  it("a single task's figures are the job's scalars; several tasks' come from their own reports and the source's per-task ground truth", () => {
    const one = buildTaskStatuses({ tasks: null, lastLoss: 0.4, smoothedLoss: 0.45, losses: new TaskLosses(), streamingAuc: [], scalarStreamingAuc: 0.71, evalReport: evalReport("t", { tasks: [] }), source: { ...SOURCE, hasGroundTruth: true, groundTruthAuc: 0.8, groundTruthLogloss: 0.4 } });
    expect(one).toHaveLength(1);
    expect(one[0]).toMatchObject({ name: "ctr", loss: "bce", lastLoss: 0.4, smoothedLoss: 0.45, streamingAuc: 0.71, hasGroundTruth: true, groundTruthAuc: 0.8 });
    expect(one[0]!.eval).toMatchObject({ auc: 0.7, logloss: 0.5, calibration: 0.3 / 0.25, hasGauc: false });
    const losses = new TaskLosses();
    losses.add([0.5, 3], true);
    const two = buildTaskStatuses({ tasks: TASKS, lastLoss: 2, smoothedLoss: 2, losses, streamingAuc: [0.66, Number.NaN], scalarStreamingAuc: 0.66, evalReport: good(), source: { ...SOURCE, hasGroundTruth: true, groundTruthTaskAuc: [0.81, Number.NaN], groundTruthTaskLogloss: [0.42, Number.NaN] } });
    expect(two.map((t) => [t.name, t.lastLoss, t.streamingAuc, t.hasGroundTruth, t.groundTruthAuc])).toEqual([["click", 0.5, 0.66, true, 0.81], ["watch", 3, Number.NaN, false, Number.NaN]]);
    expect(two[0]!.eval!.gauc).toBe(0.6);
    expect(two[1]!.eval!.rmse).toBe(2.5);
  });

  it("refuses a report whose tasks are not the job's, or whose figures cannot be", () => {
    expect(() => checkEvalReport(good(), "trainer-0", 200, TASKS)).not.toThrow();
    // A regression task 0: its scalars are no probabilities.
    const watchFirst = [TASKS[1]!, TASKS[0]!];
    const r = good();
    expect(() => checkEvalReport({ ...r, auc: Number.NaN, logloss: Number.NaN, meanPrediction: 4, labelRate: 5, tasks: [r.tasks[1]!, r.tasks[0]!] }, "trainer-0", 200, watchFirst)).not.toThrow();
    const bad = (over: (r: EvalReport__Output) => void) => {
      const x = good();
      over(x);
      return () => checkEvalReport(x, "trainer-0", 200, TASKS);
    };
    expect(bad((x) => x.tasks.reverse())).toThrow("evaluation report from trainer-0 refused: it reports tasks watch, click, the job's are click, watch");
    expect(bad((x) => x.tasks.pop())).toThrow("it reports tasks click, the job's are click, watch");
    expect(bad((x) => (x.tasks[0]!.gauc = 1.5))).toThrow("task click: GAUC 1.5 is outside [0, 1]");
    expect(bad((x) => (x.tasks[0]!.auc = -1))).toThrow("task click: AUC -1 is outside [0, 1]");
    expect(bad((x) => (x.tasks[1]!.rmse = Number.NaN))).toThrow("task watch: RMSE NaN is not a non-negative number");
    expect(bad((x) => (x.tasks[1]!.loss = "bce"))).toThrow("task watch: loss bce, the job's is mse");
    expect(bad((x) => (x.tasks[1]!.records = 201))).toThrow("task watch: 201 records of 200");
  });

  it("a completion record keeps every task's figures, NaN included", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-task-completion-"));
    mkdirSync(join(root, "job"));
    writeCompletion(root, "job", 7, good());
    const back = readCompletion(root, "job", 7, (m) => {
      throw new Error(m);
    })!;
    expect(back.tasks).toEqual(good().tasks);
    expect(back.tasks[1]!.auc).toBeNaN();
  });
});
