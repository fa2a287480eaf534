import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { ENTRY, runNode } from "../support/processes.js";

/**
 * A file source with --eval-fraction 0 holds out nothing: like a Kafka
 * stream it has no held-out split, so the job trains, evaluates on nothing
 * and completes, and says so. Two trainers, so the evaluator's stream and
 * the other trainer's end are both exercised.
 */
describe("pangea run with --eval-fraction 0", () => {
  it("trains, completes with exit 0 and reports 0 held-out records (no held-out split)", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-no-held-out-"));
    const data = join(tmp, "train.tsv");
    const gen = await runNode(ENTRY.cli, ["gen-data", "--out", data, "--records", "4000"]);
    expect(gen.code, gen.stderr).toBe(0);
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--steps", "3", "--trainers", "2", "--batch-size", "64", "--data", data, "--format", "criteo", "--eval-fraction", "0", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 120_000, stopSignal: "SIGTERM" },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/exited with code/);
    const s = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output;
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(s.error).toBe("");
    expect(Number(s.step)).toBe(3);
    expect(Number(s.source!.evalRecords)).toBe(0);
    expect(Number(s.eval!.records)).toBe(0);
    // The summary (on stderr with --json) says there was nothing to evaluate instead of printing figures of nothing.
    const lines = r.stderr.split("\n");
    expect(lines).toContain("  held-out records  0 (no held-out split: the job was not evaluated)");
    expect(r.stderr).not.toContain("held-out AUC");
  }, 180_000);
});
