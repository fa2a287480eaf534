import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium } from "playwright-core";
import { orchestratorClient, unary } from "@pangea/rpc";
import { ENTRY, runNode } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";
import { dashboardPage } from "../../services/orchestrator/src/monitor/dashboard-page.js";

/**
 * A peer that sends hostile text (HTML, terminal escapes) as its worker id is
 * refused at registration, and the dashboard shows any peer text as text.
 */
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-text-"));
let orch: RunningService;

beforeAll(async () => {
  orch = await startService(ENTRY.orchestrator, ["--host", "127.0.0.1", "--port", "0", "--trainers", "1", "--checkpoint-dir", join(tmp, "ckpt"), "--register-timeout-ms", "600000"]);
});
afterAll(async () => {
  await orch?.stop();
});

describe("worker ids from peers", () => {
  const register = (workerId: string, kind = "WORKER_KIND_TRAINER") => {
    const c = orchestratorClient(orch.address);
    return unary("orchestrator", c.RegisterWorker.bind(c), { workerId, kind, address: "" }, 5_000).finally(() => c.close());
  };

  it.each([
    ["HTML", "<img src=x onerror=alert(1)>"],
    ["a terminal escape", "trainer-\x1b[2J\x1b[31mowned"],
    ["a newline", "trainer-0\nforged log line"],
    ["129 characters", "t".repeat(129)],
    ["a space", "trainer 0"],
  ])("an id with %s is refused with INVALID_ARGUMENT naming worker_id", async (_what, id) => {
    const err = (await register(id).then(() => null, (e: unknown) => e)) as { code: number; details: string } | null;
    expect(err).not.toBeNull();
    expect(err!.code).toBe(3);
    expect(err!.details).toMatch(/^ORCH_ERR_BAD_REGISTRATION: RegisterWorker: worker_id "/);
    // The refusal echoes the id escaped: no raw control character travels back.
    expect(err!.details).not.toMatch(/[\x00-\x1f\x7f]/);
  });

  it("an address longer than any host:port is refused with INVALID_ARGUMENT", async () => {
    const c = orchestratorClient(orch.address);
    const err = (await unary("orchestrator", c.RegisterWorker.bind(c), { workerId: "trainer-long", kind: "WORKER_KIND_TRAINER", address: "a".repeat(100_000) }, 5_000)
      .finally(() => c.close())
      .then(() => null, (e: unknown) => e)) as { code: number; details: string } | null;
    expect([err?.code, err?.details]).toEqual([3, "ORCH_ERR_BAD_REGISTRATION: RegisterWorker: address of 100000 characters; a host:port has at most 263"]);
  });

  it("a message cut short (a worker id claiming 2 MiB in 6 bytes) does not decode: INVALID_ARGUMENT, nothing registered", async () => {
    const c = new grpc.Client(orch.address, grpc.credentials.createInsecure());
    const raw = (b: Buffer) => b;
    const call = (bytes: Buffer) =>
      new Promise<{ code: number; details: string }>((resolve) =>
        c.makeUnaryRequest("/pangea.v1.Orchestrator/RegisterWorker", raw, raw, bytes, (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "" })),
      );
    try {
      // kind = TRAINER (field 2), then worker_id (field 1) whose length says 2^21 bytes.
      const cut = await call(Buffer.concat([Buffer.from([0x10, 0x01, 0x0a, 0x80, 0x80, 0x80, 0x01]), Buffer.from("trunc1")]));
      expect(cut.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(cut.details).toMatch(/^\/pangea\.v1\.Orchestrator\/RegisterWorker: the request is not a valid message of this method \(index out of range/);
      // The same message whole registers.
      const whole = await call(Buffer.concat([Buffer.from([0x10, 0x01, 0x0a, 0x06]), Buffer.from("whole1")]));
      expect(whole.code).toBe(0);
    } finally {
      c.close();
    }
  });

  it("an id of the allowed alphabet (1-128 of A-Za-z0-9._:@-) registers", async () => {
    const res = (await register("trainer_0.pod-a:1@host")) as { worldSize: number };
    expect(res.worldSize).toBe(1);
  });
});

describe("pangea status", () => {
  it("a backend name with control characters (ReportBackend) is refused, and the summary and --json print none", async () => {
    const c = orchestratorClient(orch.address);
    let err: { code: number; details: string } | null = null;
    try {
      const { workerToken } = (await unary("orchestrator", c.RegisterWorker.bind(c), { workerId: "trainer-esc", kind: "WORKER_KIND_TRAINER", address: "" }, 5_000)) as { workerToken: string };
      err = (await unary("orchestrator", c.ReportBackend.bind(c), { workerId: "trainer-esc", workerToken, backend: "wasm\x1b[2J\x1b]0;owned\x07\u009b31m\nforged line" }, 5_000).then(
        () => null,
        (e: unknown) => e,
      )) as typeof err;
    } finally {
      c.close();
    }
    expect(err?.code).toBe(3);
    expect(err?.details).toBe("ORCH_ERR_BAD_REQUEST: trainer-esc: backend must be 1-64 printable ASCII characters without spaces, got 34 characters");
    const text = await runNode(ENTRY.cli, ["status", "--orchestrator", orch.address]);
    expect(text.stdout).toMatch(/\n {2}backend +n\/a on \d trainers?\n/);
    expect(text.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    const json = await runNode(ENTRY.cli, ["status", "--orchestrator", orch.address, "--json"]);
    expect(json.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect((JSON.parse(json.stdout) as { backend: string }).backend).toBe("");
  });
});

describe("the dashboard", () => {
  it("its page script never parses text as HTML (no innerHTML, outerHTML, insertAdjacentHTML, document.write)", async () => {
    const page = await (await fetch(`http://${orch.metrics}/`)).text();
    const script = page.slice(page.indexOf("<script>"), page.lastIndexOf("</script>"));
    expect(script.length).toBeGreaterThan(1000);
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    expect(script).toContain("textContent");
  });

  it.runIf(CHROMIUM)("the update embedded in the page for its first paint cannot close its script element", async () => {
    const hostile = '</script><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>\u2028';
    const update = { points: [], serving: null, batchSize: 64, status: { jobId: "j", state: "JOB_STATE_FAILED", error: hostile, step: 1, steps: 2, smoothedLoss: 0.5, samplesPerSecond: 1, streamingAuc: null, workers: [], embeddings: null } };
    const html = dashboardPage(update);
    const embedded = html.slice(html.indexOf('id="initial-update">') + 'id="initial-update">'.length, html.indexOf("</script>", html.indexOf('id="initial-update">')));
    expect(JSON.parse(embedded)).toEqual(update);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage();
      await page.setContent(html);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(await page.locator("img").count()).toBe(0);
      expect(await page.textContent("#state")).toBe("failed — " + hostile);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it.runIf(CHROMIUM)("renders peer-supplied text as text, never as HTML", async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`http://${orch.metrics}/`);
      await page.waitForFunction(() => document.getElementById("job")!.textContent !== "");
      // A job still waiting for trainers has no points yet: the charts draw empty axes, without errors.
      expect(await page.locator("#loss-chart canvas").count()).toBe(1);
      expect(errors).toEqual([]);
      // Stop the live updates, so the real status does not replace the one rendered below.
      await page.evaluate("events.close()");
      const hostile = '<img src=x onerror="window.__pwned=1">';
      // Feed the page's own render() an update as a buggy peer could shape it (ids, backend, error and slot text).
      await page.evaluate((h) => {
        const w = window as unknown as { render(u: unknown): void };
        w.render({
          points: [],
          serving: null,
          status: {
            jobId: h, state: "JOB_STATE_RUNNING", error: h, step: 1, steps: 2, smoothedLoss: 0.5, samplesPerSecond: 1, streamingAuc: NaN, mode: h,
            workers: [{ workerId: h, kind: "WORKER_KIND_TRAINER", rank: h, batchesDone: h, alive: true, heartbeatAgeSeconds: 0.1 }],
            embeddings: { rows: 1, bytes: 1, evictedRows: h, admittedIds: h, slots: [{ slot: h, rows: 1, evictedRows: h }] },
          },
        });
      }, hostile);
      await page.waitForTimeout(200);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(await page.locator("img").count()).toBe(0);
      expect(await page.textContent("#workers")).toContain(hostile);
      expect(await page.textContent("#tables")).toContain(hostile);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
