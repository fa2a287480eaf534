import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { exportPlaceProblem } from "../src/checkpoint/export-place.js";
import { tempDir } from "./fakes/job-fixture.js";

describe("where model versions may be exported", () => {
  it("not in the job's checkpoint directory, also through a link to it made before the job's first start", () => {
    const root = tempDir("pangea-export-place-");
    const checkpointDir = join(root, "ck");
    mkdirSync(join(checkpointDir, "j"), { recursive: true });
    symlinkSync(join(checkpointDir, "j"), join(root, "link"));
    const job = { checkpointDir, jobId: "j" };
    expect(exportPlaceProblem(join(root, "link", "models"), job)).toBe(`${join(root, "link", "models")} is inside job j's checkpoint directory ${join(checkpointDir, "j")}; give the model versions a directory outside the job's checkpoints`);
    expect(exportPlaceProblem(join(root, "link"), job)).toMatch(/ is job j's checkpoint directory /);
    expect(exportPlaceProblem(join(root, "models"), job)).toBeNull();
    // Beside the jobs, in a directory of its own under --checkpoint-dir: no job's, so taken.
    expect(exportPlaceProblem(join(checkpointDir, "models"), job)).toBeNull();
  });
});
