import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chromium } from "playwright-core";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { writeVersion } from "../../services/serving/test/support/versions.js";
import { ENTRY, ROOT, closedPort, runNode, waitFor } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";

/**
 * --metrics-token-file on every service: /metrics (and the orchestrator's
 * dashboard, its JSON and its event stream) answer 401 without the token,
 * and take it as a bearer token (Prometheus) or as HTTP Basic's password (a
 * browser, here headless Chromium given the credentials); Debian's
 * Prometheus scrapes it with authorization.credentials_file.
 */
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const PROMETHEUS = ["/usr/bin/prometheus"].find((p) => existsSync(p));
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-metrics-"));
const TOKEN = "metrics-0123456789abcdef";
const tokenFile = join(tmp, "metrics.token");
writeFileSync(tokenFile, `${TOKEN}\n`);
let cluster: LocalCluster | null = null;
let serving: RunningService | null = null;

afterAll(async () => {
  await cluster?.stop(1_000);
  await serving?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

async function get(url: string, authorization?: string): Promise<{ status: number; challenge: string | null; body: string }> {
  const r = await fetch(url, authorization ? { headers: { authorization } } : {});
  return { status: r.status, challenge: r.headers.get("www-authenticate"), body: await r.text() };
}

/** What a port with the token answers: 401 with a Basic challenge unless the request carries the token, either way. */
async function expectGuarded(url: string, wanted: RegExp): Promise<void> {
  for (const authorization of [undefined, `Bearer ${TOKEN}x`, "Bearer ", basic("ops", "wrong-password-0123"), `Basic ${TOKEN}`, `Basic ${Buffer.from(TOKEN).toString("base64")}`, TOKEN]) {
    const r = await get(url, authorization);
    expect(r.status, `${url} with ${authorization}`).toBe(401);
    expect(r.challenge).toBe('Basic realm="pangea metrics", charset="UTF-8"');
    expect(r.body).not.toMatch(wanted);
  }
  for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, basic("ops", TOKEN), basic("", TOKEN)]) {
    const r = await get(url, authorization);
    expect(r.status, `${url} with ${authorization}`).toBe(200);
    expect(r.body).toMatch(wanted);
  }
}

describe("--metrics-token-file", () => {
  it("guards every service's /metrics and the orchestrator's dashboard; the token is a bearer token or Basic's password", async () => {
    cluster = await LocalCluster.start({
      trainers: 1,
      logDir: join(tmp, "logs"),
      orchestratorArgs: ["--steps", "100000", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--metrics-token-file", tokenFile],
      computeArgs: ["--eval-records", "1000", "--metrics-token-file", tokenFile],
      trainerArgs: ["--metrics-token-file", tokenFile],
    });
    const addresses = cluster.metricsAddresses();
    expect(Object.keys(addresses).sort()).toEqual(["compute", "orchestrator", "trainer-0"]);
    for (const address of Object.values(addresses)) await expectGuarded(`http://${address}/metrics`, /^# HELP pangea_/m);
    const dash = cluster.dashboardAddress;
    await expectGuarded(`http://${dash}/`, /<html/i);
    await expectGuarded(`http://${dash}/status.json`, /"status"/);
    // A path that does not exist says nothing of what the port serves without the token.
    expect((await get(`http://${dash}/nope`)).status).toBe(401);
    expect((await get(`http://${dash}/nope`, `Bearer ${TOKEN}`)).status).toBe(404);

    writeVersion(join(tmp, "models"), 1);
    serving = await startService(join(ROOT, "services/serving/dist/main.js"), ["--model-base-path", join(tmp, "models"), "--port", "0", "--rest-port", "0", "--metrics-token-file", tokenFile]);
    await expectGuarded(`http://${serving.rest}/metrics`, /^# HELP pangea_/m);
    // Its REST API is the API token's to guard (none here), not the metrics token's.
    expect((await get(`http://${serving.rest}/v1/models/pangea`)).status).toBe(200);
  }, 120_000);

  it.runIf(CHROMIUM)("a browser given the token as Basic's password sees the live dashboard; one without is asked for it", async () => {
    const c = cluster!;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      // Headless, a browser asked for credentials it was not given fails the navigation (a desktop one prompts).
      const anonymous = await browser.newPage();
      await expect(anonymous.goto(`http://${c.dashboardAddress}/`)).rejects.toThrow("ERR_INVALID_AUTH_CREDENTIALS");
      const context = await browser.newContext({ httpCredentials: { username: "ops", password: TOKEN } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      expect((await page.goto(`http://${c.dashboardAddress}/`))!.status()).toBe(200);
      // The event stream and the JSON it falls back to carry the credentials too: the page goes live and its curve advances.
      await waitFor("the dashboard to go live", async () => (await page.textContent("#link")) === "live", 30_000, 200);
      const points = async () => Number(await page.getAttribute("#loss-chart", "data-points"));
      const before = await points();
      await waitFor("the loss curve to advance", async () => (await points()) > before, 30_000, 200);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it.runIf(PROMETHEUS)("Prometheus (Debian's) scrapes a guarded port with authorization.credentials_file, and is refused without", async () => {
    const c = cluster!;
    const port = await closedPort();
    const config = join(tmp, "prometheus.yml");
    const target = c.metricsAddresses().orchestrator!;
    writeFileSync(config, [
      "global: {scrape_interval: 1s, scrape_timeout: 1s}",
      "scrape_configs:",
      `  - {job_name: with-token, authorization: {credentials_file: "${tokenFile}"}, static_configs: [{targets: ["${target}"]}]}`,
      `  - {job_name: without, static_configs: [{targets: ["${target}"]}]}`,
      "",
    ].join("\n"));
    const prom = spawn(PROMETHEUS!, [`--config.file=${config}`, `--storage.tsdb.path=${join(tmp, "prometheus-data")}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: "ignore" });
    try {
      const targets = await waitFor("Prometheus to have scraped both jobs", async () => {
        const r = await fetch(`http://127.0.0.1:${port}/api/v1/targets`).catch(() => null);
        if (!r?.ok) return null;
        const active = ((await r.json()) as { data: { activeTargets: { labels: { job: string }; health: string; lastError: string }[] } }).data.activeTargets;
        return active.length === 2 && active.every((t) => t.health !== "unknown") ? Object.fromEntries(active.map((t) => [t.labels.job, t])) : null;
      }, 30_000, 250);
      expect(targets["with-token"]!.health).toBe("up");
      expect(targets.without!.health).toBe("down");
      expect(targets.without!.lastError).toContain("401");
      // What it scraped with the token is the job's: its step, as the query API answers it.
      const step = await waitFor("pangea_job_step in Prometheus", async () => {
        const r = await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=pangea_job_step`)).json() as { data: { result: { metric: { job: string }; value: [number, string] }[] } };
        return r.data.result.find((x) => x.metric.job === "with-token")?.value[1] ?? null;
      }, 30_000, 250);
      expect(Number(step)).toBeGreaterThan(0);
    } finally {
      prom.kill("SIGKILL");
    }
  }, 90_000);

  it("a token file that cannot serve is refused at start, naming the flag, before anything listens", async () => {
    const short = join(tmp, "short.token");
    writeFileSync(short, "abc\n");
    for (const [entry, args] of [[ENTRY.orchestrator, []], [ENTRY.orchestrator, ["--role", "shard", "--shard-index", "1", "--ps-shards", "2", "--coordinator", "127.0.0.1:1"]], [ENTRY.compute, []], [ENTRY.trainer, ["--orchestrator", "127.0.0.1:1"]]] as const) {
      const r = await runNode(entry, ["--port", "0", "--metrics-port", "0", ...args, "--metrics-token-file", short]);
      expect(r.code, `${entry} ${args.join(" ")}`).toBe(2);
      expect(r.stderr.trim().split("\n").at(-2)).toContain(`--metrics-token-file: ${short} holds a token of 3 characters; it must have 16 to 1024`);
      // Before anything listened (a process announces its addresses once they do).
      expect(r.stdout).not.toContain('"ready"');
    }
    const run = await runNode(ENTRY.cli, ["run", "--steps", "5", "--metrics-token-file", join(tmp, "missing.token"), "--log-dir", join(tmp, "run-logs")]);
    expect(run.code).toBe(2);
    expect(run.stdout).not.toContain("starting");
    expect(run.stderr).toContain(`--metrics-token-file: cannot read ${join(tmp, "missing.token")} (ENOENT)`);
  }, 60_000);
});
