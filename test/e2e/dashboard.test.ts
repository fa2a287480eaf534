import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { chromium } from "playwright-core";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { waitFor } from "../support/processes.js";
import { declaredFamilies, grafanaMetricNames } from "../support/grafana.js";

/**
 * The monitor step end to end: a running local cluster's orchestrator serves
 * Prometheus metrics and the live dashboard; headless Chromium (Debian's
 * chromium, driven by playwright-core) opens the page, checks its first paint
 * with the event stream blocked, waits for the curves to advance without a
 * reload, and saves a screenshot.
 */
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const tmp = mkdtempSync(join(tmpdir(), "pangea-dash-"));
let cluster: LocalCluster | null = null;

/** The part of a dashboard update (GET /status.json) the tests read. */
interface Update {
  points: unknown[];
  status: { workers: Array<{ kind: string; phaseSeconds?: Record<string, number> }> };
}

afterAll(async () => {
  await cluster?.stop(1_000);
});

async function startJob(): Promise<LocalCluster> {
  cluster = await LocalCluster.start({
    trainers: 2,
    logDir: join(tmp, "logs"),
    // Held-out evaluations during training, which the AUC tile and the tasks table show with their step.
    orchestratorArgs: ["--steps", "100000", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--metrics-port", "0", "--eval-every-steps", "20"],
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

/** A metric's sample lines in /metrics text (none: absent, or only declared). */
function samplesOf(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(`${name}{`));
}

/** The orchestrator's /metrics, scraped until `name` has a sample. */
function scrapeUntilPresent(c: LocalCluster, label: string, name: string): Promise<string> {
  return waitFor(label, async () => {
    const t = await (await fetch(`http://${c.dashboardAddress}/metrics`)).text();
    return samplesOf(t, name).length ? t : null;
  }, 60_000, 200);
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
      expect(samplesOf(text, name)).toEqual([]);
    }
    // The streaming AUC arrives once trainers have scored 10 batches each.
    const withAuc = await scrapeUntilPresent(c, "a streaming AUC", "pangea_training_streaming_auc");
    const auc = metric(withAuc, "pangea_training_streaming_auc");
    // The rate after the warm-up (absent before it: services/orchestrator/test/job-metrics), served once the job is past it.
    const warm = await scrapeUntilPresent(c, "the rate after the warm-up", "pangea_training_samples_per_second_after_warmup");
    expect(metric(warm, "pangea_job_step")).toBeGreaterThanOrEqual(10);
    expect(metric(warm, "pangea_training_samples_per_second_after_warmup")).toBeGreaterThan(0);
    // At its first scrape it is an AUC of ~10 early batches, which can be under 0.5 (0.43 was seen); the job learns: the
    // same figure passes 0.5 as training goes on.
    expect(auc).toBeGreaterThan(0);
    expect(auc).toBeLessThan(1);
    const learned = await waitFor("a streaming AUC over 0.5", async () => {
      const t = await (await fetch(`http://${c.dashboardAddress}/metrics`)).text();
      const a = metric(t, "pangea_training_streaming_auc");
      return a > 0.5 ? a : null;
    }, 60_000, 200);
    expect(learned).toBeLessThan(1);
    expect(metric(text, "pangea_trainers_live")).toBe(2);
    expect(metric(text, "pangea_embedding_rows", 'slot="1"')).toBeGreaterThan(0);
    expect(metric(text, "pangea_embedding_slot_bytes", 'slot="1"')).toBeGreaterThan(0);
    expect(metric(text, "pangea_grpc_server_handling_seconds_count", 'method="/pangea.v1.ParameterServer/Pull",code="OK"')).toBeGreaterThan(0);
    // Trainers on this machine take the dense parameters and give their gradients through the dense exchange's files
    // (where /dev/shm exists): after each trainer's first pull, which offers it, no dense tensor travels in a message.
    if (existsSync("/dev/shm")) {
      expect(metric(withAuc, "pangea_dense_exchange_open")).toBe(1);
      expect(metric(withAuc, "pangea_dense_transfers_total", 'tensors="weights",via="file"')).toBeGreaterThan(0);
      expect(metric(withAuc, "pangea_dense_transfers_total", 'tensors="gradients",via="file"')).toBeGreaterThan(0);
      expect(metric(withAuc, "pangea_dense_transfers_total", 'tensors="gradients",via="message"')).toBe(0);
      // In a message only the pulls a trainer sends before the first answer names the directory: its first, and the
      // next step's when it goes ahead before that answer (two trainers: 2 to 4).
      const inMessages = metric(withAuc, "pangea_dense_transfers_total", 'tensors="weights",via="message"');
      expect(inMessages).toBeGreaterThanOrEqual(2);
      expect(inMessages).toBeLessThanOrEqual(4);
      // A training pull's rows and a push's row gradients too, from the same point on.
      expect(metric(withAuc, "pangea_dense_transfers_total", 'tensors="rows",via="file"')).toBeGreaterThan(0);
      expect(metric(withAuc, "pangea_dense_transfers_total", 'tensors="row_gradients",via="file"')).toBeGreaterThan(0);
      for (const tensors of ["rows", "row_gradients"]) {
        const n = metric(withAuc, "pangea_dense_transfers_total", `tensors="${tensors}",via="message"`);
        expect(n).toBeGreaterThanOrEqual(2);
        expect(n).toBeLessThanOrEqual(4);
      }
    }
    expect(text).toMatch(/pangea_process_resident_memory_bytes\{service="orchestrator"\} \d+/);
    // Every path on the orchestrator's HTTP port is read-only: another method is 405 naming GET; an unknown path 404.
    for (const [method, path] of [["POST", "/metrics"], ["DELETE", "/"], ["POST", "/status.json"], ["PUT", "/events"]] as const) {
      const r = await fetch(`http://${c.dashboardAddress}${path}`, { method });
      expect([r.status, r.headers.get("allow"), await r.text()]).toEqual([405, "GET, HEAD", `${method} ${path}: this path takes GET\n`]);
    }
    const unknown = await fetch(`http://${c.dashboardAddress}/nope`);
    expect([unknown.status, await unknown.text()]).toEqual([404, "not found: /nope\n"]);
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

  it.runIf(CHROMIUM)("the dashboard's first paint shows the job before any server-sent event (the stream blocked)", async () => {
    const c = cluster ?? (await startJob());
    // Wait until the job has curve points and both trainers have reported phase seconds.
    await waitFor("points and phase seconds in /status.json", async () => {
      const u = (await (await fetch(`http://${c.dashboardAddress}/status.json`)).json()) as Update;
      const trainers = u.status.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER");
      return u.points.length >= 3 && trainers.length === 2 && trainers.every((w) => (w.phaseSeconds?.compute ?? 0) > 0);
    }, 60_000, 200);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      let streamRequests = 0;
      await page.route("**/events", (route) => {
        streamRequests++;
        return route.abort();
      });
      await page.goto(`http://${c.dashboardAddress}/`);
      // Read at once after load: everything below comes from the update embedded in the page.
      expect(await page.textContent("#job")).not.toBe("");
      expect(await page.textContent("#state")).toBe("running");
      expect(await page.textContent("#updated")).toMatch(/\d/);
      expect(await page.textContent("#step")).toMatch(/^[\d,]+ \/ 100,000$/);
      expect(await page.textContent("#loss")).toMatch(/^\d\.\d{4}$/);
      expect(await page.textContent("#rate")).toMatch(/^[1-9][\d,]*$/);
      expect(await page.textContent("#workers")).toContain("trainer-1");
      expect(Number(await page.getAttribute("#loss-chart", "data-points"))).toBeGreaterThanOrEqual(3);
      // uPlot draws into canvases: one per chart, with the axes' labels and units the page configured.
      expect(await page.locator("#loss-chart canvas").count()).toBe(1);
      const axes = (await page.evaluate("Object.fromEntries(Object.entries(charts).map(([id, c]) => [id, c.axes.map((a) => a.label)]))")) as Record<string, string[]>;
      expect(axes).toEqual({
        "loss-chart": ["training step", "log loss (nats per sample)"],
        "auc-chart": ["training step", "AUC (0.5 = chance)"],
        "rate-chart": ["time (local clock)", "samples per second"],
      });
      // Per trainer: samples/s, then compute, communication and waiting seconds with their shares, then a bar.
      const phases = await page.$$eval("#phases tr", (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
      expect(phases[0]).toEqual(["trainer", "samples/s", "compute", "communication", "waiting", "fetch · pull · push · compute · wait"]);
      expect(phases.slice(1).map((r) => r[0]).sort()).toEqual(["trainer-0", "trainer-1"]);
      for (const r of phases.slice(1)) {
        expect(r[1]).toMatch(/^[1-9][\d,]*$/);
        for (const seconds of r.slice(2, 5)) expect(seconds).toMatch(/^\d+\.\d s \(\d+%\)$/);
      }
      expect(await page.locator("#phases .bar span").count()).toBe(10);
      expect(await page.textContent("#link")).toMatch(/connecting|disconnected/);
      expect(streamRequests).toBeGreaterThan(0);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it.runIf(CHROMIUM)("the dashboard updates live in headless Chromium, with hover values and gone trainers marked; a screenshot is saved", async () => {
    const c = cluster ?? (await startJob());
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`http://${c.dashboardAddress}/`);
      const points = async () => Number(await page.getAttribute("#loss-chart", "data-points"));
      await waitFor("the loss curve to have points", async () => (await points()) >= 3, 30_000, 200);
      const first = await points();
      await waitFor("the loss curve to advance without a reload", async () => (await points()) > first + 2, 30_000, 200);
      expect(await page.textContent("#link")).toBe("live");
      expect(await page.textContent("#state")).toBe("running");
      expect(await page.textContent("#workers")).toContain("trainer-1");
      expect(await page.textContent("#workers")).toMatch(/heartbeat \d+\.\d s ago/);
      await waitFor("the streaming AUC curve", async () => Number(await page.getAttribute("#auc-chart", "data-points")) >= 2, 30_000, 200);
      // Over recent batches it can dip under 0.5 for a moment; the job learns, so the tile shows it over 0.5 soon.
      await waitFor("a streaming AUC figure over 0.5", async () => Number(await page.textContent("#streaming-auc")) > 0.5, 30_000, 200);
      expect(Number(await page.textContent("#streaming-auc"))).toBeLessThan(1);
      // The latest evaluation during training: the tile names its step, and the tasks table shows its AUC (it showed "–").
      await waitFor("an evaluation during training", async () => /^\d\.\d{4} \(step \d+\)$/.test((await page.textContent("#auc")) ?? ""), 60_000, 200);
      const aucCell = await page.textContent("#tasks tr:nth-child(2) td:nth-child(6)");
      expect(aucCell).toMatch(/^\d\.\d{4}/);
      expect(await page.textContent("#rate-since")).toBe("since start");
      // The legend shows the latest values, as grouped whole numbers with their unit; hovering shows those under the cursor.
      const legendTime = () => page.textContent("#rate-chart .u-legend .u-series:first-child .u-value");
      expect(await page.textContent("#rate-chart .u-legend")).toMatch(/[1-9][\d,]* samples\/s/);
      expect(await page.textContent("#loss-chart .u-legend")).toMatch(/smoothed loss\s*\d\.\d{4} nats/);
      const latest = await legendTime();
      const box = (await page.locator("#rate-chart .u-over").boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.05, box.y + box.height / 2);
      await waitFor("the hovered time in the throughput legend", async () => (await legendTime()) !== latest, 5_000, 100);
      expect(await page.textContent("#rate-chart .u-legend")).toMatch(/[\d,]+ samples\/s/);
      await page.mouse.move(0, 0);
      // The curves were drawn: the loss canvas has many pixels of its stroke colour (#2563eb).
      const strokePixels = await page.$eval("#loss-chart canvas", (canvas) => {
        const cv = canvas as HTMLCanvasElement;
        const px = cv.getContext("2d")!.getImageData(0, 0, cv.width, cv.height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i]! - 0x25) < 24 && Math.abs(px[i + 1]! - 0x63) < 24 && Math.abs(px[i + 2]! - 0xeb) < 24 && px[i + 3]! > 200) n++;
        return n;
      });
      expect(strokePixels).toBeGreaterThan(100);
      const shot = join(tmp, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      const png = readFileSync(shot);
      expect(png.length).toBeGreaterThan(30_000);
      expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
      expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
      expect(png.readUInt32BE(16)).toBe(1280);
      expect(png.readUInt32BE(20)).toBeGreaterThanOrEqual(900);
      // Once the job has ended, its trainers are marked gone instead of showing a heartbeat age that keeps growing.
      await page.evaluate("events.close()");
      await page.evaluate(async (url) => {
        const u = await (await fetch(url)).json();
        u.status.state = "JOB_STATE_COMPLETED";
        (window as unknown as { render(u: unknown): void }).render(u);
      }, `http://${c.dashboardAddress}/status.json`);
      const workers = await page.$$eval("#workers tr.gone", (rows) => rows.map((r) => r.textContent));
      expect(workers.filter((t) => t!.includes("trainer"))).toHaveLength(2);
      expect(await page.textContent("#workers")).not.toContain("s ago");
      expect(await page.textContent("#workers")).toContain("gone (job ended)");
      expect(await page.locator("#phases tr.gone").count()).toBe(2);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it("chromium is installed where CI expects it (.ci/run installs Debian's chromium)", () => {
    expect(CHROMIUM, "install chromium (apt-get install chromium)").toBeDefined();
    expect(spawnSync(CHROMIUM!, ["--version"], { encoding: "utf8" }).stdout).toMatch(/Chromium \d+/);
  });
});
