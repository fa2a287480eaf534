import { describe, expect, it } from "vitest";
import type { CheckpointData } from "../src/checkpoint/checkpoint.js";
import { resumedTraining } from "../src/job/job-model.js";
import { codeOf, jobConfig } from "./fakes/job-fixture.js";

/** A checkpoint as resumedTraining reads it: only its manifest's training progress. */
const checkpointOf = (batchesPerStep: number, batchSize = 4, mode = "sync") =>
  [{ manifest: { training: { mode, batchesPerStep, step: 3, finishedBatches: 3 * batchesPerStep, outstanding: [], denseUpdates: 3, batchSize, samples: 3 * batchesPerStep * batchSize } } }] as unknown as CheckpointData[];

describe("a --resume whose step is not the checkpoint's", () => {
  it("is refused naming both; when only the trainer count differs, naming the flag that keeps the step", async () => {
    const fewer = jobConfig({ trainers: 1, resume: true, restoreFrom: checkpointOf(2) });
    expect(await codeOf(() => resumedTraining(fewer))).toBe("ORCH_ERR_CHECKPOINT_MISMATCH");
    expect(() => resumedTraining(fewer)).toThrow(
      "cannot resume: the checkpoint was taken in sync mode with 2 batches of 4 per step, but this job has sync, 1 of 4 (with 1 trainer: --batches-per-step 2 keeps the job's step as it was)",
    );
    expect(resumedTraining(jobConfig({ trainers: 1, batchesPerStep: 2, resume: true, restoreFrom: checkpointOf(2) }))?.step).toBe(3);
    // Another batch size is no trainer count's doing: no such hint.
    expect(() => resumedTraining(jobConfig({ trainers: 2, batchSize: 8, resume: true, restoreFrom: checkpointOf(2) }))).toThrow(/this job has sync, 2 of 8$/);
  });
});
