import { existsSync, mkdirSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { chromium } from "playwright-core";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { ROOT, waitFor } from "../support/processes.js";
import { declaredFamilies, grafanaMetricNames } from "../support/grafana.js";

/**
 * The monitor step end to end: a running local cluster's orchestrator serves
 * Prometheus metrics and the live dashboard; headless Chromium (Debian's
 * chromium, driven by playwright-core) opens the page, waits for the curves to
 * advance without a reload, and saves a screenshot.
 */
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const tmp = mkdtempSync(join(tmpdir(), "pangea-dash-"));
let cluster: LocalCluster | null = null;

afterAll(async () => {
  await cluster?.stop(1_000);
});

async function startJob(): Promise<LocalCluster> {
  cluster = await LocalCluster.start({
    trainers: 2,
    logDir: join(tmp, "logs"),
    orchestratorArgs: ["--steps", "100000", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--metrics-port", "0"],
    computeArgs: ["--eval-records", "1000"],
    trainerArgs: [],
  });
  return cluster;
}

function metric(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  if (!line) throw new Error(`no ${name}{${labels}} in /metrics`);
  return Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("monitoring", () => {
  it("the orchestrator's /metrics has the job's progress, tables and gRPC latencies, in Prometheus' format", async () => {
    const c = cluster ?? (await startJob());
    expect(c.dashboardAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const text = await waitFor("step 5 in /metrics", async () => {
      const t = await (await fetch(`http://${c.dashboardAddress}/metrics`)).text();
      return metric(t, "pangea_job_step") >= 5 ? t : null;
    }, 60_000, 200);
    expect(text).toContain("# TYPE pangea_training_samples_total counter");
    expect(metric(text, "pangea_training_samples_total")).toBeGreaterThan(0);
    expect(metric(text, "pangea_job_state", 'state="running"')).toBe(1);
    // Figures that do not exist yet are absent (declared, no sample), not 0: no held-out evaluation while training, no serving to sync to.
    for (const name of ["pangea_eval_auc", "pangea_eval_logloss", "pangea_parameter_sync_lag_seconds"]) {
      expect(text).toContain(`# TYPE ${name} gauge`);
      expect(text.split("\n").filter((l) => l.startsWith(`${name}{`))).toEqual([]);
    }
    // The streaming AUC arrives once trainers have scored 10 batches each.
    const withAuc = await waitFor("a streaming AUC", async () => {
      const t = await (await fetch(`http://${c.dashboardAddress}/metrics`)).text();
      return t.split("\n").some((l) => l.startsWith("pangea_training_streaming_auc{")) ? t : null;
    }, 60_000, 200);
    const auc = metric(withAuc, "pangea_training_streaming_auc");
    expect(auc).toBeGreaterThan(0.5);
    expect(auc).toBeLessThan(1);
    expect(metric(text, "pangea_trainers_live")).toBe(2);
    expect(metric(text, "pangea_embedding_rows", 'slot="1"')).toBeGreaterThan(0);
    expect(metric(text, "pangea_embedding_slot_bytes", 'slot="1"')).toBeGreaterThan(0);
    expect(metric(text, "pangea_grpc_server_handling_seconds_count", 'method="/pangea.v1.ParameterServer/Pull",code="OK"')).toBeGreaterThan(0);
    expect(text).toMatch(/pangea_process_resident_memory_bytes\{service="orchestrator"\} \d+/);
    // Compute and every trainer serve their own /metrics.
    const at = c.metricsAddresses();
    expect(Object.keys(at).sort()).toEqual(["compute", "orchestrator", "trainer-0", "trainer-1"]);
    const compute = await (await fetch(`http://${at.compute}/metrics`)).text();
    expect(metric(compute, "pangea_compute_batches_served_total")).toBeGreaterThan(0);
    expect(compute).toContain("# TYPE pangea_grpc_server_handling_seconds histogram");
    const trainer = await (await fetch(`http://${at["trainer-0"]}/metrics`)).text();
    expect(metric(trainer, "pangea_trainer_batches_total")).toBeGreaterThan(0);
    for (const phase of ["fetch", "pull", "compute", "push", "wait"]) expect(metric(trainer, "pangea_trainer_phase_seconds_count", `phase="${phase}"`)).toBeGreaterThan(0);
    // The job status carries each trainer's cumulative phase seconds (sent with its heartbeats, so at most a beat behind).
    const status = new StatusClient(c.orchestratorAddress);
    try {
      const beat = await waitFor("phase seconds in the job status", async () => {
        const w = (await status.get()).workers.find((x) => x.workerId === "trainer-0");
        return w && (w.phaseSeconds.compute ?? 0) > 0 ? w : null;
      }, 10_000, 200);
      const after = await (await fetch(`http://${at["trainer-0"]}/metrics`)).text();
      expect(Object.keys(beat.phaseSeconds).sort()).toEqual(["compute", "fetch", "pull", "push", "wait"]);
      // Reported seconds never exceed what the trainer's own histogram has summed since.
      expect(beat.phaseSeconds.compute!).toBeLessThanOrEqual(metric(after, "pangea_trainer_phase_seconds_sum", 'phase="compute"') + 1e-9);
    } finally {
      status.close();
    }
    // Every metric the provisioned Grafana dashboard queries exists (serving's are checked in serving.test.ts).
    const declared = new Set([...declaredFamilies(text), ...declaredFamilies(compute), ...declaredFamilies(trainer)]);
    for (const name of grafanaMetricNames().filter((n) => !n.startsWith("pangea_serving_"))) expect(declared.has(name), name).toBe(true);
  }, 90_000);

  it.runIf(CHROMIUM)("the dashboard updates live in headless Chromium; a screenshot is saved", async () => {
    const c = cluster ?? (await startJob());
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`http://${c.dashboardAddress}/`);
      const points = async () => Number(await page.getAttribute("#loss-chart", "data-points"));
      await waitFor("the loss curve to have points", async () => (await points()) >= 3, 30_000, 200);
      const first = await points();
      await waitFor("the loss curve to advance without a reload", async () => (await points()) > first + 2, 30_000, 200);
      expect(await page.textContent("#state")).toBe("running");
      expect(await page.textContent("#workers")).toContain("trainer-1");
      expect(await page.locator("#loss-chart path").count()).toBe(1);
      await waitFor("the streaming AUC curve", async () => Number(await page.getAttribute("#auc-chart", "data-points")) >= 2, 30_000, 200);
      expect(Number(await page.textContent("#streaming-auc"))).toBeGreaterThan(0.5);
      const dir = join(ROOT, ".pangea", "test-artifacts");
      mkdirSync(dir, { recursive: true });
      const shot = join(dir, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it("chromium is installed where CI expects it (.ci/run installs Debian's chromium)", () => {
    expect(CHROMIUM, "install chromium (apt-get install chromium)").toBeDefined();
    expect(spawnSync(CHROMIUM!, ["--version"], { encoding: "utf8" }).stdout).toMatch(/Chromium \d+/);
  });
});
