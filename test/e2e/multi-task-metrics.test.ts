import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chromium } from "playwright-core";
import { Rng } from "@pangea/kit";
import { encodeExample, type PlainSample } from "@pangea/monolith";
import type { JobStatus__Output } from "@pangea/schema";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { formatSummary, statusJson } from "../../packages/cli/src/commands/summary.js";
import { encodePbRecords, PB_FILE_DEFAULTS } from "../../services/compute/src/formats/pb-framing.js";
import { waitFor } from "../support/processes.js";

/**
 * A two-task job end to end (processes, Monolith Example files with two
 * labels): a click (bce) and a watch time (mse) learned together, the user
 * slot named as the feature list's groupSlot. Its status, the CLI summary
 * and the Prometheus metrics of the orchestrator and a trainer carry each
 * task's figures; the label rates the evaluation reports are the file's own
 * (computed here from the records written), so each task reads its column.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-mt-metrics-"));
const RECORDS = 6000;
const EVAL_FRACTION = 0.2;
const USERS = 60;
const ITEMS = 200;
const USER_SLOT = 3;
const ITEM_SLOT = 4;
const live: LocalCluster[] = [];
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));

afterAll(async () => {
  await Promise.all(live.map((c) => c.stop(1_000)));
});

/** A v2 feature id of `slot` for value v, as (lo, hi) words. */
const fid = (slot: number, v: number) => Uint32Array.of((v * 2654435761) >>> 0, ((slot << 16) | (v & 0xffff)) >>> 0);

/** Users and items with their own click propensity; watch time grows with the item's quality and the click. */
function writeData(): { path: string; featureList: string; evalClickRate: number; evalMeanWatch: number } {
  const rng = new Rng(19);
  const userBias = Array.from({ length: USERS }, () => rng.uniform(-2, 2));
  const itemBias = Array.from({ length: ITEMS }, () => rng.uniform(-1.5, 1.5));
  const messages: Uint8Array[] = [];
  const clicks: number[] = [];
  const watches: number[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const u = Math.floor(rng.next() * USERS);
    const it = Math.floor(rng.next() * ITEMS);
    const x = rng.next();
    const p = 1 / (1 + Math.exp(-(userBias[u]! + itemBias[it]! + x - 0.5)));
    const click = rng.next() < p ? 1 : 0;
    const watch = 3 + 2 * itemBias[it]! + 4 * click + rng.uniform(-1, 1);
    clicks.push(click);
    watches.push(watch);
    const sample: PlainSample = { ids: new Map([["user", fid(USER_SLOT, u)], ["item", fid(ITEM_SLOT, it)]]), floats: new Map([["x", [x]]]), labels: [click, watch] };
    messages.push(encodeExample(sample));
  }
  const path = join(tmp, "two-labels.pb");
  writeFileSync(path, encodePbRecords(messages, PB_FILE_DEFAULTS));
  const featureList = join(tmp, "features.json");
  writeFileSync(featureList, JSON.stringify({
    slots: [{ name: "user", slot: USER_SLOT }, { name: "item", slot: ITEM_SLOT }],
    dense: [{ name: "x" }],
    labels: [{ name: "click", loss: "bce" }, { name: "watch", loss: "mse", weight: 0.2 }],
    groupSlot: USER_SLOT,
  }));
  const heldOut = Math.round(RECORDS * EVAL_FRACTION);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { path, featureList, evalClickRate: mean(clicks.slice(RECORDS - heldOut)), evalMeanWatch: mean(watches.slice(RECORDS - heldOut)) };
}

function series(text: string, name: string, labels: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : null;
}

describe("per-task metrics of a two-task job", () => {
  it("status, summary and Prometheus carry each task's loss, streaming AUC, held-out AUC/GAUC/calibration or RMSE", async () => {
    const data = writeData();
    const c = await LocalCluster.start({
      trainers: 2,
      logDir: join(tmp, "logs"),
      orchestratorArgs: ["--job-id", "two-tasks", "--steps", "120", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--metrics-port", "0"],
      computeArgs: ["--data", data.path, "--format", "example", "--feature-list", data.featureList, "--eval-fraction", String(EVAL_FRACTION)],
      trainerArgs: [],
    });
    live.push(c);
    const status = new StatusClient(c.orchestratorAddress);
    try {
      await status.connect(5_000);
      // A trainer's own series, read while it trains (it exits after the job).
      const trainerAt = c.metricsAddresses()["trainer-0"]!;
      const trainerText = await waitFor("per-task series on trainer-0's /metrics", async () => {
        const t = await (await fetch(`http://${trainerAt}/metrics`)).text().catch(() => "");
        return series(t, "pangea_trainer_task_loss", 'task="watch"') !== null && series(t, "pangea_trainer_task_streaming_auc", 'task="click"') !== null ? t : null;
      }, 60_000, 100);
      expect(series(trainerText, "pangea_trainer_task_loss", 'task="click"')).toBeGreaterThan(0);
      // A regression task has no AUC.
      expect(series(trainerText, "pangea_trainer_task_streaming_auc", 'task="watch"')).toBeNull();
      const running = await waitFor("per-task training figures", async () => {
        const s = await status.get();
        return s.tasks.length === 2 && Number.isFinite(s.tasks[1]!.smoothedLoss) && Number.isFinite(s.tasks[0]!.streamingAuc) ? s : null;
      }, 60_000, 100);
      expect(running.tasks.map((t) => [t.name, t.loss, t.weight])).toEqual([["click", "bce", 1], ["watch", "mse", 0.2]]);
      expect(running.tasks[1]!.streamingAuc).toBeNaN();

      const s: JobStatus__Output = await waitFor("the job to end", async () => {
        const st = await status.get();
        return st.state === "JOB_STATE_COMPLETED" || st.state === "JOB_STATE_FAILED" ? st : null;
      }, 150_000);
      expect(s.error).toBe("");
      const heldOut = Math.round(RECORDS * EVAL_FRACTION);
      const [click, watch] = s.tasks;
      const ce = click!.eval!;
      const we = watch!.eval!;
      expect(Number(ce.records)).toBe(heldOut);
      expect(Number(we.records)).toBe(heldOut);
      // Each task's labels are its own column of the file.
      expect(ce.labelRate).toBeCloseTo(data.evalClickRate, 6);
      expect(we.labelRate).toBeCloseTo(data.evalMeanWatch, 4);
      expect(ce.auc).toBeGreaterThan(0.6);
      expect(ce.logloss).toBeGreaterThan(0);
      expect(ce.calibration).toBeCloseTo(ce.meanPrediction / ce.labelRate, 10);
      // GAUC over the users: a held-out split of 1,200 records over 60 users leaves most of them with both classes.
      expect(ce.hasGauc).toBe(true);
      expect(Number(ce.gaucGroups)).toBeGreaterThan(20);
      expect(Number(ce.gaucRecords)).toBeLessThanOrEqual(heldOut);
      expect(Number(ce.ungroupedRecords)).toBe(0);
      expect(ce.gauc).toBeGreaterThan(0.5);
      expect(ce.gauc).toBeLessThan(1);
      // The regression task: RMSE, no AUC or GAUC; it must beat predicting a constant 0.
      expect(we.hasGauc).toBe(false);
      expect(we.auc).toBeNaN();
      expect(we.rmse).toBeGreaterThan(0);
      expect(we.rmse).toBeLessThan(data.evalMeanWatch);
      // The scalars stay task 0's for readers that know one task.
      expect(s.eval!.auc).toBe(ce.auc);
      expect(s.eval!.labelRate).toBe(ce.labelRate);
      expect(Number.isFinite(click!.lastLoss) && Number.isFinite(watch!.lastLoss)).toBe(true);
      // No ground truth for data from a file.
      expect(click!.hasGroundTruth).toBe(false);

      const summary = formatSummary(s, 2);
      const clickLine = summary.split("\n").find((l) => l.startsWith("  task click (bce, weight 1)"));
      const watchLine = summary.split("\n").find((l) => l.startsWith("  task watch (mse, weight 0.2)"));
      expect(clickLine).toContain(`AUC ${ce.auc.toFixed(4)}`);
      expect(clickLine).toContain(`logloss ${ce.logloss.toFixed(4)}`);
      expect(clickLine).toContain(`calibration ${ce.calibration.toFixed(3)}`);
      expect(clickLine).toContain(`GAUC ${ce.gauc.toFixed(4)} over ${ce.gaucGroups} groups`);
      expect(watchLine).toContain(`RMSE ${we.rmse.toFixed(4)}`);
      expect(watchLine).not.toContain("GAUC");
      expect(summary).not.toContain("held-out AUC");
      // The default architecture, named with its hyper-parameters.
      expect(s.model).toBe("dlrm (bottomMlp [64, 16], topMlp [64, 32])");
      expect(summary.split("\n")).toContain(`  ${"model".padEnd(summary.split("\n")[1]!.indexOf("completed") - 2)}${s.model}`);
      const json = JSON.parse(statusJson(s)) as { tasks: { name: string; eval: { gauc: number } }[] };
      expect(json.tasks[0]!.eval.gauc).toBe(ce.gauc);

      const text = await (await fetch(`http://${c.dashboardAddress}/metrics`)).text();
      expect(series(text, "pangea_task_eval_auc", 'task="click"')).toBe(ce.auc);
      expect(series(text, "pangea_task_eval_gauc", 'task="click"')).toBe(ce.gauc);
      expect(series(text, "pangea_task_eval_calibration", 'task="click"')).toBe(ce.calibration);
      expect(series(text, "pangea_task_eval_rmse", 'task="watch"')).toBe(we.rmse);
      expect(series(text, "pangea_task_training_loss", 'task="watch"')).toBe(watch!.smoothedLoss);
      expect(series(text, "pangea_task_eval_auc", 'task="watch"')).toBeNull();
      expect(series(text, "pangea_task_eval_gauc", 'task="watch"')).toBeNull();

      // The dashboard (the orchestrator stays up after the job): a loss curve per task beside the total, an AUC curve for the binary task, a row per task.
      if (!CHROMIUM) throw new Error("no chromium: .ci/run installs Debian's chromium");
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(e.message));
        await page.goto(`http://${c.dashboardAddress}/`);
        const labels = (await page.evaluate("Object.fromEntries(Object.entries(charts).map(([id, c]) => [id, c.series.map((s) => s.label)]))")) as Record<string, string[]>;
        expect(labels["loss-chart"]).toEqual(["step", "smoothed loss (weighted sum, mixed units)", "click", "watch"]);
        // The regression task's squared error on its own axis, not on the nats one.
        const scales = (await page.evaluate("charts['loss-chart'].series.map((s) => s.scale)")) as string[];
        expect(scales.slice(2)).toEqual(["y", "se"]);
        const axes = (await page.evaluate("charts['loss-chart'].axes.map((a) => [a.label, a.scale])")) as [string, string][];
        expect(axes).toEqual([["training step", "x"], ["log loss (nats per sample)", "y"], ["squared error (per sample)", "se"]]);
        expect(labels["auc-chart"]).toEqual(["step", "click"]);
        const rows = await page.$$eval("#tasks tr", (trs) => trs.map((r) => [...r.children].map((td) => td.textContent)));
        expect(rows[0]).toEqual(["task", "loss", "weight", "train loss (smoothed)", "streaming AUC", "held-out AUC (ground truth)", "log loss", "GAUC (groups)", "calibration", "RMSE"]);
        expect(rows[1]!.slice(0, 3)).toEqual(["click", "bce", "1"]);
        expect(rows[1]![5]).toBe(ce.auc.toFixed(4));
        expect(rows[1]![7]).toBe(`${ce.gauc.toFixed(4)} (${ce.gaucGroups})`);
        expect(rows[2]!.slice(0, 3)).toEqual(["watch", "mse", "0.2"]);
        expect(rows[2]![9]).toBe(we.rmse.toFixed(4));
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    } finally {
      status.close();
      await c.stop(1_000);
    }
  }, 240_000);
});
