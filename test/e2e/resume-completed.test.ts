import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { ENTRY, runNode } from "../support/processes.js";

/**
 * `pangea run --resume` is the one command for every (re)start of a job,
 * including after it completed: with --steps no more than it trained, the
 * completed job is reported at once (exit 0, nothing trained again); with
 * more, it trains on from its final checkpoint to the new --steps.
 */
describe("pangea run --resume of a job that completed", () => {
  it("reports the completed job at once with exit 0; with a larger --steps it trains on to them", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-resume-completed-"));
    const ckpt = join(tmp, "ckpt");
    const run = (steps: number, extra: string[] = []) =>
      runNode(
        ENTRY.cli,
        ["run", "--json", "--steps", String(steps), "--job-id", "done", "--trainers", "2", "--batch-size", "64", "--eval-records", "500", "--checkpoint-dir", ckpt, "--log-dir", join(tmp, "logs"), ...extra],
        { timeoutMs: 120_000, stopSignal: "SIGTERM" },
      );
    const statusOf = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!) as JobStatus__Output;

    const first = await run(4);
    expect(first.code, first.stderr).toBe(0);
    const done = statusOf(first.stdout);
    expect(done.state).toBe("JOB_STATE_COMPLETED");

    // The same command again: the job is reported as completed, with its evaluation, and nothing trains.
    const again = await run(4, ["--resume"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/exited with code|job failed/);
    const s = statusOf(again.stdout);
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.step)).toBe(4);
    expect(Number(s.resumedFromStep)).toBe(4);
    expect(Number(s.samples)).toBe(Number(done.samples));
    expect(s.eval!.auc).toBe(done.eval!.auc);
    expect(Number(s.eval!.records)).toBe(500);
    // Its figures are the final checkpoint's, not zeros.
    expect(Number(s.batchesApplied)).toBe(Number(done.batchesApplied));
    expect(Number(s.embeddingRows)).toBe(Number(done.embeddingRows));
    expect(s.checkpointPath).toBe(join(ckpt, "done", "step-4"));
    expect(existsSync(s.checkpointPath)).toBe(true);
    expect(again.stderr.split("\n")).toContain("  throughput        nothing trained since the resume (the job had completed)");
    // The model is the checkpoint's, as the first run reported it; no trainer ran, so no backend is claimed.
    expect(s.model).toBe(done.model);
    expect(s.model).toMatch(/^dlrm \(/);
    expect(again.stderr).toContain(`  model             ${done.model}\n`);
    expect(again.stderr).not.toMatch(/backend +n\/a/);
    expect(again.stderr).toMatch(/embedding rows +[\d,]+ {2}\(in the final checkpoint, every shard's\)/);

    // Fewer steps than it trained: the same report, its steps those it trained (not "4 of 2").
    const fewer = await run(2, ["--resume"]);
    expect(fewer.code, fewer.stderr).toBe(0);
    const f = statusOf(fewer.stdout);
    expect([Number(f.step), Number(f.steps)]).toEqual([4, 4]);
    expect(f.eval!.auc).toBe(done.eval!.auc);

    // More steps than it trained: it trains on from step 4 and is evaluated again.
    const more = await run(7, ["--resume"]);
    expect(more.code, more.stderr).toBe(0);
    const m = statusOf(more.stdout);
    expect(m.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(m.resumedFromStep)).toBe(4);
    expect(Number(m.step)).toBe(7);
    expect(Number(m.samples)).toBe(7 * 2 * 64);
    expect(Number(m.eval!.records)).toBe(500);
    expect(m.checkpointPath).toBe(join(ckpt, "done", "step-7"));
    // The memory reported is the tables' alone, as in a job never resumed: no slot has an occurrence threshold, so no
    // frequency sketch is made (a resume used to make its 4 MiB on the way to restoring an empty one).
    expect(Number(m.embeddings!.bytes)).toBe(m.embeddings!.slots.reduce((sum, x) => sum + Number(x.bytes), 0));

    // A job that had not completed (killed after its step-7 checkpoint, before completed.json) cannot stop before
    // step 7: fewer --steps are refused before anything starts (they were run and reported as "steps 7 of 5").
    rmSync(join(ckpt, "done", "completed.json"));
    const below = await run(5, ["--resume"]);
    expect(below.code).toBe(2);
    // --json prints a status even so: why, and the exit code (there was none on stdout).
    const refused = statusOf(below.stdout) as JobStatus__Output & { stoppedByRun?: boolean };
    expect([refused.state, refused.errorExitCode, refused.stoppedByRun]).toEqual(["JOB_STATE_FAILED", 2, true]);
    expect(refused.error).toMatch(/^orchestrator exited with code 2 while starting: pangea-orchestrator: --resume: job done's checkpoint at step 7 is beyond --steps 5/);
    expect(below.stderr).toContain("pangea run: orchestrator exited with code 2 while starting: pangea-orchestrator: --resume: job done's checkpoint at step 7 is beyond --steps 5: --steps counts the job's steps from its start, so give at least 7 to continue it (or --restore-from that checkpoint to start a new job from its parameters)");
    // As many as it reached: it completes there (evaluated, completed.json written again).
    const at = await run(7, ["--resume"]);
    expect(at.code, at.stderr).toBe(0);
    expect(statusOf(at.stdout).state).toBe("JOB_STATE_COMPLETED");
    expect(existsSync(join(ckpt, "done", "completed.json"))).toBe(true);
  }, 300_000);
});
