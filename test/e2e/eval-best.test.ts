import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { EvalReport__Output, JobStatus__Output } from "@pangea/schema";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { formatSummary } from "../../packages/cli/src/commands/summary.js";
import { loadShardedCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { closedPort, waitFor } from "../support/processes.js";

/**
 * Held-out evaluation every N steps and --keep-best on a real cluster: the
 * evaluations are in the status and the summary, the best one's checkpoint
 * (every shard's part) is the one best.json names and the one exported, and
 * an orchestrator killed with SIGKILL and restarted with --resume keeps the
 * evaluations and the best so far.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-eval-best-"));
const live: LocalCluster[] = [];

afterAll(async () => {
  await Promise.all(live.map((c) => c.stop(1_000)));
});

const steps = (s: JobStatus__Output) => (s.evaluations ?? []).map((e) => Number(e.step));

async function ended(status: StatusClient): Promise<JobStatus__Output> {
  return waitFor("the job to end", async () => {
    const s = await status.get().catch(() => null);
    return s && (s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED") ? s : null;
  }, 120_000, 100);
}

/** The step of the best evaluation by `value` (a tie: the earlier one), as --keep-best must pick it. */
function bestStep(history: readonly EvalReport__Output[], value: (e: EvalReport__Output) => number, higherIsBetter: boolean): number {
  let best = history[0]!;
  for (const e of history) if (higherIsBetter ? value(e) > value(best) : value(e) < value(best)) best = e;
  return Number(best.step);
}

function metric(text: string, name: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : null;
}

describe("evaluations during training and the best checkpoint", () => {
  it("sync, 2 parameter-server shards: 4 evaluations of 20 steps, the best step's checkpoint kept, and kept across kill -9 and --resume", async () => {
    const ckpt = join(tmp, "sync");
    const c = await LocalCluster.start({
      trainers: 2,
      psShards: 2,
      orchestratorPort: await closedPort(),
      logDir: join(tmp, "logs-sync"),
      orchestratorArgs: [
        "--job-id", "evals", "--steps", "20", "--batch-size", "32", "--eval-batch-size", "1000", "--checkpoint-dir", ckpt,
        "--eval-every-steps", "5", "--keep-best", "--checkpoint-every-steps", "5", "--keep-checkpoints", "1", "--heartbeat-timeout-ms", "3000",
      ],
      computeArgs: ["--eval-records", "2000", "--rejoin-timeout-ms", "30000"],
      trainerArgs: ["--rejoin-timeout-ms", "30000"],
    });
    live.push(c);
    const status = new StatusClient(c.orchestratorAddress);
    try {
      await status.connect(5_000);
      // The Prometheus gauge follows the evaluations during training, not only the final one.
      const [before, text] = await waitFor("an evaluation during training", async () => {
        const s = await status.get();
        if (!s.evaluations?.length || s.state !== "JOB_STATE_RUNNING") return null;
        const t = await (await fetch(`http://${c.dashboardAddress}/metrics`)).text();
        return [s, t] as const;
      }, 60_000, 50);
      const gauge = metric(text, "pangea_eval_auc");
      const after = await status.get();
      expect((after.evaluations ?? []).map((e) => e.auc)).toContain(gauge);
      expect(before.best).not.toBeNull();
      const preKill = await waitFor("two evaluations", async () => {
        const s = await status.get();
        return (s.evaluations?.length ?? 0) >= 2 ? s : null;
      }, 60_000, 20);

      c.process("orchestrator")!.child.kill("SIGKILL");
      await c.process("orchestrator")!.exited;
      await c.restart("orchestrator", ["--resume"]);
      const s = await ended(status);
      expect(s.error).toBe("");
      const resumedFrom = Number(s.resumedFromStep);
      expect(resumedFrom).toBeGreaterThanOrEqual(5);
      expect(steps(s)).toEqual([5, 10, 15, 20]);
      // What the checkpoint resumed from recorded is kept as it was measured.
      const kept = preKill.evaluations!.filter((e) => Number(e.step) <= resumedFrom);
      expect(kept.length).toBeGreaterThanOrEqual(1);
      for (const e of kept) expect(s.evaluations!.find((x) => Number(x.step) === Number(e.step))!.auc).toBe(e.auc);

      const best = bestStep(s.evaluations!, (e) => e.auc, true);
      expect(s.best).toMatchObject({ step: best, task: "ctr", metric: "auc", checkpoint: join(ckpt, "evals", `step-${best}`) });
      expect(s.best!.value).toBe(s.evaluations!.find((e) => Number(e.step) === best)!.auc);
      const marker = JSON.parse(readFileSync(join(ckpt, "evals", "best.json"), "utf8")) as { step: number; value: number };
      expect(marker).toMatchObject({ step: best, value: s.best!.value });
      // Both shards' parts of the best checkpoint are there (never pruned), of the best step, recording its evaluation.
      const parts = loadShardedCheckpoint(s.best!.checkpoint);
      expect(parts.map((p) => [p.manifest.step, p.manifest.shard.index])).toEqual([[best, 0], [best, 1]]);
      // Its evaluation is recorded beside it: in the checkpoint written after a mid-training evaluation, in completed.json for the final one.
      const completed = JSON.parse(readFileSync(join(ckpt, "evals", "completed.json"), "utf8")) as { eval: EvalReport__Output };
      const recorded = [...(parts[0]!.manifest.training!.evaluations ?? []), completed.eval].find((e) => Number(e.step) === best);
      expect(recorded?.auc).toBe(s.best!.value);
      // --keep-checkpoints 1: the final checkpoint, and the best besides it when it is another.
      expect(existsSync(join(ckpt, "evals", "step-20"))).toBe(true);

      const summary = formatSummary(s, 2);
      expect(summary).toMatch(/\n {2}held-out by step +step 5: AUC 0\.\d{4}, logloss 0\.\d{4}/);
      for (const k of [10, 15, 20]) expect(summary).toMatch(new RegExp(`\\n {20,}step ${k}: AUC`));
      expect(summary).toContain(`step ${best}: AUC ${s.best!.value.toFixed(4)}`);
      expect(summary).toMatch(new RegExp(`\\n {2}best checkpoint +step ${best} \\(ctr AUC ${s.best!.value.toFixed(4)}\\): ${s.best!.checkpoint}\\n`));
    } finally {
      status.close();
      await c.stop(1_000);
    }
  }, 180_000);

  it("async, two tasks, --best-task conversion --best-metric logloss: the exported version is the best step's", async () => {
    const ckpt = join(tmp, "async");
    const out = join(tmp, "models");
    const c = await LocalCluster.start({
      trainers: 2,
      logDir: join(tmp, "logs-async"),
      orchestratorArgs: [
        "--job-id", "evals-async", "--mode", "async", "--steps", "8", "--batch-size", "32", "--eval-batch-size", "1000", "--checkpoint-dir", ckpt,
        "--eval-every-steps", "4", "--keep-best", "--best-metric", "logloss", "--best-task", "conversion", "--export-dir", out,
      ],
      computeArgs: ["--eval-records", "2000", "--synthetic-tasks", "2"],
      trainerArgs: [],
    });
    live.push(c);
    const status = new StatusClient(c.orchestratorAddress);
    try {
      await status.connect(5_000);
      const s = await ended(status);
      expect(s.error).toBe("");
      expect(steps(s)).toEqual([4, 8]);
      const conversion = (e: EvalReport__Output) => e.tasks.find((t) => t.name === "conversion")!.logloss;
      const best = bestStep(s.evaluations!, conversion, false);
      expect(s.best).toMatchObject({ step: best, task: "conversion", metric: "logloss" });
      expect(s.best!.exported).not.toBe("");
      const manifest = JSON.parse(readFileSync(join(s.best!.exported, "manifest.json"), "utf8")) as { source: { step: number; checkpoint: string } };
      expect(manifest.source).toMatchObject({ step: best, checkpoint: join(ckpt, "evals-async", `step-${best}`) });
      // The best version is exported before the job's completion is recorded: a kill between them leaves a job a restart exports again.
      expect(statSync(join(ckpt, "evals-async", "completed.json")).mtimeMs).toBeGreaterThanOrEqual(statSync(join(s.best!.exported, "manifest.json")).mtimeMs);
      const summary = formatSummary(s, 2);
      expect(summary).toContain("held-out by step (conversion)");
      expect(summary).toMatch(/\n {2}best checkpoint +step \d+ /);
      expect(summary).toContain(`step ${best} (conversion logloss ${s.best!.value.toFixed(4)}): ${s.best!.checkpoint}; exported as ${s.best!.exported}`);
    } finally {
      status.close();
      await c.stop(1_000);
    }
  }, 120_000);
});
