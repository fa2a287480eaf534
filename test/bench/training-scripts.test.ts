import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ENTRY, ROOT, lastLine, runNode } from "../support/processes.js";

/**
 * The training benchmark's two single-process sides still run (nothing
 * timed here): bench/training/in-process.mjs (Pangea's trainer wired to
 * compute's reader and the orchestrator's tables) and ctr_torch.py (the
 * PyTorch twins of torch_ctr.py in a training loop), a few small steps
 * on generated data. The cluster side is `pangea run`, tested elsewhere.
 */
const PYTHON = "/usr/bin/python3";
const tmp = mkdtempSync(join(tmpdir(), "pangea-bench-scripts-"));
const data = join(tmp, "criteo.tsv");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Figures {
  samples: number;
  steps: number;
  auc: number;
  firstLoss: number;
  lastLoss: number;
}

function checkFigures(f: Figures, steps: number, batch: number): void {
  expect(f.steps).toBe(steps);
  expect(f.samples).toBe(steps * batch);
  expect(f.auc).toBeGreaterThan(0);
  expect(f.auc).toBeLessThan(1);
  // Cross-entropies: positive and finite (a NaN would fail both).
  for (const loss of [f.firstLoss, f.lastLoss]) {
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(Infinity);
  }
}

describe("training benchmark scripts", () => {
  it("in-process.mjs and ctr_torch.py train a few steps of an architecture and print their figures", async () => {
    const gen = await runNode(ENTRY.cli, ["gen-data", "--out", data, "--records", "1100"]);
    expect(gen.code, gen.stderr).toBe(0);
    // 1000 training records, the last 100 held out: 3 steps of 256.
    const common = ["--data", data, "--eval-fraction", String(100 / 1100), "--batch", "256"];
    const pangea = await runNode(join(ROOT, "bench/training/in-process.mjs"), common);
    expect(pangea.code, pangea.stderr).toBe(0);
    checkFigures(JSON.parse(lastLine(pangea.stdout)) as Figures, 3, 256);
    // Any architecture, as ctr_torch.py takes it: Wide&Deep's rows are one column wider than the embedding.
    const wide = await runNode(join(ROOT, "bench/training/in-process.mjs"), [...common, "--steps", "2", "--architecture", JSON.stringify({ name: "wide-deep", deepMlp: [16] })]);
    expect(wide.code, wide.stderr).toBe(0);
    const wf = JSON.parse(lastLine(wide.stdout)) as Figures & { model: string };
    expect(wf.model).toBe("wide-deep");
    checkFigures(wf, 2, 256);
    // DeepFM: rows one column wider than the embedding (its first-order weight), a torch_ctr class built in float32.
    const torch = spawnSync(PYTHON, [join(ROOT, "bench/training/ctr_torch.py"), ...common, "--steps", "2", "--architecture", JSON.stringify({ name: "deepfm", deepMlp: [16] })], { encoding: "utf8" });
    expect(torch.status, torch.stderr).toBe(0);
    const t = JSON.parse(lastLine(torch.stdout)) as Figures & { model: string; samplesPerSecAfterWarmup: number; warmupSteps: number };
    expect(t.model).toBe("deepfm");
    // Two steps are all warm-up (the first 10): no rate after it, as the cluster reports none.
    expect([t.samplesPerSecAfterWarmup, t.warmupSteps]).toEqual([0, 0]);
    // Twelve steps of 64: the rate of the last two, against the whole run's.
    const longer = spawnSync(PYTHON, [join(ROOT, "bench/training/ctr_torch.py"), ...common.slice(0, -2), "--batch", "64", "--steps", "12", "--warmup-steps", "10", "--architecture", JSON.stringify({ name: "wide-deep", deepMlp: [16] })], { encoding: "utf8" });
    expect(longer.status, longer.stderr).toBe(0);
    const w = JSON.parse(lastLine(longer.stdout)) as Figures & { samplesPerSecAfterWarmup: number; warmupSteps: number; seconds: number };
    expect(w.warmupSteps).toBe(10);
    // Two steps' samples in less time than the whole run's twelve.
    expect((2 * 64) / w.samplesPerSecAfterWarmup).toBeLessThan(w.seconds);
    expect(w.samplesPerSecAfterWarmup).toBeGreaterThan(0);
    checkFigures(t, 2, 256);
  }, 60_000);
});
