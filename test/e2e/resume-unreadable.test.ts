import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { ENTRY, lastLine, runNode, waitFor } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";

/**
 * --resume with checkpoints none of which can be read: the orchestrator
 * refuses to start (exit 1, one line naming each and why) instead of
 * silently starting over; with --fresh-start-if-unreadable it starts over
 * and never deletes or overwrites them. A job with no checkpoints at all
 * still starts fresh under --resume (compose's first start).
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-resume-"));
let running: RunningService | null = null;
let cluster: LocalCluster | null = null;

afterEach(async () => {
  await running?.stop();
  running = null;
  await cluster?.stop(1_000);
  cluster = null;
});

/** A job directory with two broken checkpoints: step-3 with a manifest that is not JSON, step-5 without one. */
function brokenJob(root: string, jobId: string): { step3: string; step5: string } {
  const step3 = join(root, jobId, "step-3");
  const step5 = join(root, jobId, "step-5");
  mkdirSync(step3, { recursive: true });
  mkdirSync(step5, { recursive: true });
  writeFileSync(join(step3, "manifest.json"), "{ truncated");
  writeFileSync(join(step5, "dense.f32"), Buffer.alloc(16, 7));
  return { step3, step5 };
}

const orchestratorArgs = (root: string, jobId: string, extra: string[] = []) => [
  "--host", "127.0.0.1", "--port", "0", "--trainers", "1", "--checkpoint-dir", root, "--job-id", jobId, "--resume", ...extra,
];

describe("--resume and unreadable checkpoints", () => {
  it("no checkpoint directory at all: --resume starts the job fresh", async () => {
    const root = join(tmp, "none");
    running = await startService(ENTRY.orchestrator, orchestratorArgs(root, "job-a", ["--register-timeout-ms", "600000"]));
    expect(running.output()).toContain('"from":"nothing (fresh start)"');
  });

  it("checkpoints exist but none can be read: exit 1 with one line naming each file and why; nothing is touched", async () => {
    const root = join(tmp, "broken");
    const { step3, step5 } = brokenJob(root, "job-b");
    const r = await runNode(ENTRY.orchestrator, orchestratorArgs(root, "job-b"), { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    const line = lastLine(r.stderr);
    expect(line).toMatch(/^pangea-orchestrator: error ORCH_ERR_CHECKPOINT_CORRUPT: --resume: job job-b has 2 checkpoints and none can be read: /);
    expect(line).toContain(`checkpoint ${step5}: no manifest.json (incomplete checkpoint)`);
    expect(line).toContain(`checkpoint ${step3}: manifest.json is not valid JSON`);
    expect(line).toContain("--fresh-start-if-unreadable");
    expect(readFileSync(join(step3, "manifest.json"), "utf8")).toBe("{ truncated");
    expect(readdirSync(join(root, "job-b")).sort()).toEqual(["step-3", "step-5"]);
  });

  it("a newer checkpoint --resume passes over is named in the job's warnings (the summary's and --json's), not only in the orchestrator's log", async () => {
    const root = join(tmp, "passed-over");
    const run = (steps: number, extra: string[] = []) =>
      runNode(ENTRY.cli, ["run", "--json", "--job-id", "job-p", "--steps", String(steps), "--trainers", "1", "--batch-size", "64", "--eval-records", "300", "--checkpoint-dir", root, "--log-dir", join(tmp, "passed-logs"), ...extra], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    const first = await run(2);
    expect(first.code, first.stderr).toBe(0);
    // Its checkpoint copied in whole under another job's id: nothing is damaged, it is the wrong job's (exit 2, not 1).
    const copied = join(root, "job-q", "step-2");
    cpSync(join(root, "job-p", "step-2"), copied, { recursive: true });
    const other = await runNode(ENTRY.orchestrator, orchestratorArgs(root, "job-q"), { timeoutMs: 30_000 });
    expect(other.code, other.stderr).toBe(2);
    expect(lastLine(other.stderr)).toMatch(
      new RegExp(`^pangea-orchestrator: error ORCH_ERR_CHECKPOINT_MISMATCH: --resume: job job-q has 1 checkpoint and it is another job's: checkpoint ${copied}: its manifest says it is of job job-p, not job-q \\(--restore-from it to start a new job from its parameters\\)`),
    );
    const broken = join(root, "job-p", "step-5");
    mkdirSync(broken);
    writeFileSync(join(broken, "manifest.json"), "{ truncated");
    const again = await run(4, ["--resume"]);
    expect(again.code, again.stderr).toBe(0);
    const status = JSON.parse(again.stdout.trim().split("\n").at(-1)!) as { warnings: string[]; resumedFromStep: string };
    expect(Number(status.resumedFromStep)).toBe(2);
    expect(status.warnings).toHaveLength(1);
    expect(status.warnings[0]!.startsWith(`--resume passed over ${broken}, which cannot be read (checkpoint ${broken}: manifest.json is not valid JSON`)).toBe(true);
    expect(status.warnings[0]!.endsWith("); the job resumed from step 2")).toBe(true);
    expect(again.stderr).toContain(`warning           --resume passed over ${broken}`);
  }, 240_000);

  it("--fresh-start-if-unreadable starts over; the unreadable checkpoints are neither pruned nor overwritten", async () => {
    const root = join(tmp, "fresh");
    const { step3, step5 } = brokenJob(root, "job-c");
    cluster = await LocalCluster.start({
      trainers: 1,
      logDir: join(tmp, "fresh-logs"),
      orchestratorArgs: ["--steps", "6", "--batch-size", "64", "--checkpoint-dir", root, "--job-id", "job-c", "--resume", "--fresh-start-if-unreadable",
        "--checkpoint-every-steps", "1", "--keep-checkpoints", "2"],
      computeArgs: ["--eval-records", "500"],
      trainerArgs: [],
    });
    const log = cluster.process("orchestrator")!.logPath;
    await waitFor("the job to complete", async () => readFileSync(log, "utf8").includes('"state":"JOB_STATE_COMPLETED"'), 60_000);
    // The fresh start is in the job's warnings (the summary's), not only in the orchestrator's log.
    const status = new StatusClient(cluster.orchestratorAddress);
    try {
      await status.connect(5_000);
      expect((await status.get()).warnings).toEqual([expect.stringMatching(/^--fresh-start-if-unreadable: none of job job-c's 2 checkpoints could be read \(.+\); the job started over from step 0 beside them$/)]);
    } finally {
      status.close();
    }
    const names = readdirSync(join(root, "job-c")).sort();
    // Pruning kept the newest 2 good ones (step-5 and step-6) and never touched step-3's bytes; the fresh
    // step-3 and step-5 were written beside the broken ones, which were moved aside, not deleted.
    expect(names.filter((n) => /^step-\d+$/.test(n))).toEqual(["step-5", "step-6"]);
    const aside = names.filter((n) => n.includes(".unreadable-"));
    expect(aside.map((n) => n.replace(/\.unreadable-.*$/, "")).sort()).toEqual(["step-3", "step-5"]);
    expect(readFileSync(join(root, "job-c", aside.find((n) => n.startsWith("step-3."))!, "manifest.json"), "utf8")).toBe("{ truncated");
    expect(existsSync(join(root, "job-c", aside.find((n) => n.startsWith("step-5."))!, "dense.f32"))).toBe(true);
    expect(existsSync(join(step5, "manifest.json"))).toBe(true);
    expect(existsSync(step3)).toBe(false);
  }, 90_000);
});
