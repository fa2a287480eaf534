import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXPORT_FORMAT } from "@pangea/model";
import { exportedVersionAt, exportPlaceProblem } from "../src/checkpoint/export-place.js";
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

  it("not the checkpoint directory of jobs, known by the jobs it holds (pangea export knows no --checkpoint-dir); a job's directory that is a model version is refused to the job", () => {
    const root = tempDir("pangea-export-root-");
    mkdirSync(join(root, "ck", "j"), { recursive: true });
    writeFileSync(join(root, "ck", "j", "orchestrator.lock"), "{}");
    // Version 1 exported into it would have been job 1's directory: a job of that id trained into the version.
    expect(exportPlaceProblem(join(root, "ck"))).toBe(`${join(root, "ck")} is a --checkpoint-dir (it holds the checkpoints of job j), where each directory is a job's; give the model versions a directory of their own`);
    expect(exportPlaceProblem(join(root, "models"))).toBeNull();
    mkdirSync(join(root, "ck", "1"));
    writeFileSync(join(root, "ck", "1", "manifest.json"), JSON.stringify({ format: EXPORT_FORMAT, version: 1 }));
    expect(exportedVersionAt(join(root, "ck", "1"))).toBe(`${join(root, "ck", "1")}, where the job's checkpoints go, is an exported model version; give another --job-id or --checkpoint-dir`);
    expect(exportedVersionAt(join(root, "ck", "j"))).toBeNull();
    expect(exportedVersionAt(join(root, "ck", "none"))).toBeNull();
  });

  it("not a model version, nor inside one: the next version would be written inside it (and served from there)", () => {
    const root = tempDir("pangea-export-version-");
    mkdirSync(join(root, "models", "1"), { recursive: true });
    writeFileSync(join(root, "models", "1", "manifest.json"), JSON.stringify({ format: EXPORT_FORMAT, version: 1 }));
    expect(exportPlaceProblem(join(root, "models", "1"))).toBe(`${join(root, "models", "1")} is the model version ${join(root, "models", "1")}, and versions are immutable; give the directory holding the versions, ${join(root, "models")}`);
    expect(exportPlaceProblem(join(root, "models", "1", "more"))).toMatch(/ is inside the model version .*models\/1, and versions are immutable/);
    expect(exportPlaceProblem(join(root, "models"))).toBeNull();
  });
});
