import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENTRY, ROOT, closedPort, runNode, waitFor } from "../support/processes.js";
import { docker, ensureEngine, run, skipDocker, type Ran } from "../support/docker.js";

/**
 * `make docker-up` for real: the images built from infra/Dockerfile, the
 * compose cluster started, trained to completion on a data file of the
 * user's, the orchestrator container killed mid-job and brought back, and
 * serving, the dashboard and Prometheus called from the host. The engine and
 * the base images: test/support/docker.ts.
 */
const skip = skipDocker;
/** The job's steps: enough that it still runs when the test kills the orchestrator at its first checkpoint (step 50). */
const STEPS = 500;

const projectContainers = (project: string) => docker("ps", "-aq", "--filter", `label=com.docker.compose.project=${project}`).stdout.trim();
const projectVolumes = (project: string) => docker("volume", "ls", "-q", "--filter", `label=com.docker.compose.project=${project}`).stdout.trim();

let project = "";

/** Where make docker-up copies the CA and the admin certificate the host calls with (the cluster runs mutual TLS). */
const tlsDir = () => join(ROOT, ".pangea", "docker", `${project}-tls`);

/** HTTPS to serving's REST port, trusting the cluster's CA. */
function restCall(port: number, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path, method: body ? "POST" : "GET", ca: readFileSync(join(tlsDir(), "ca.crt")), headers: body ? { "content-type": "application/json" } : {} }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null }));
    });
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

async function statusJson(port: number): Promise<Record<string, unknown> | null> {
  const r = await runNode(ENTRY.cli, ["status", "--orchestrator", `127.0.0.1:${port}`, "--json", "--tls-dir", tlsDir()], { timeoutMs: 20_000 });
  if (r.code !== 0) return null;
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    return null;
  }
}


/** What a failed `make docker-up` said: compose's errors and each service's state (anywhere in its output), then its end. */
function failureOf(out: string): string {
  const said = out.split("\n").filter((l) => /ERROR|[Ee]rror:|unhealthy|exited with|Exit \d|dependency failed/.test(l) && !l.includes('"level":30'));
  return `${said.slice(-30).join("\n")}\n...\n${out.slice(-2000)}`;
}

describe.skipIf(skip)("make docker-up", () => {
  project = `pangea-e2e-${process.pid}`;
  const ports: Record<string, number> = {};
  let env: NodeJS.ProcessEnv = {};
  let data = "";
  let up: Ran = { code: null, out: "" };
  /** "healthy" once every Pangea container was seen healthy, else why not. */
  let healthy: Promise<string> = Promise.resolve("make docker-up failed");
  /** The job's status when its orchestrator was killed. */
  let killed: Promise<{ step: number; checkpoints: string[] }> = Promise.reject(new Error("make docker-up failed"));
  killed.catch(() => {});

  beforeAll(async () => {
    ensureEngine();
    for (const name of ["ORCHESTRATOR_PORT", "DASHBOARD_PORT", "SERVING_GRPC_PORT", "SERVING_REST_PORT", "PROMETHEUS_PORT"]) ports[name] = await closedPort();
    // The user's own data: Monolith Examples in TFRecord framing, read with a feature list that is also exported with the model.
    data = mkdtempSync(join(tmpdir(), "pangea-docker-data-"));
    // Readable by the containers' user, as a user's data directory is (mkdtemp makes it 0700).
    chmodSync(data, 0o755);
    const gen = await runNode(ENTRY.genData, ["--out", join(data, "day_0.tfrecord"), "--records", "60000", "--format", "example", "--framing", "tfrecord", "--feature-list-out", join(data, "features.json")]);
    expect(gen.code, gen.stderr).toBe(0);
    env = {
      COMPOSE_PROJECT: project,
      PANGEA_BIND: "127.0.0.1",
      STEPS: String(STEPS),
      DATA: join(data, "day_0.tfrecord"),
      FORMAT: "example",
      FRAMING: "tfrecord",
      FEATURE_LIST: join(data, "features.json"),
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    };
    const started = Date.now();
    up = await run("make", ["docker-up"], env, 1_200_000);
    process.stdout.write(`docker e2e: make docker-up took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    if (up.code !== 0) return;
    // The job trains from here on (tens of steps a second on this machine): the orchestrator is killed as soon as it has
    // a periodic checkpoint, here rather than when the tests below come to it (the job had ended by then). Whether every
    // container turned healthy is watched meanwhile (each seen healthy once: a trainer's first check comes seconds after
    // the job began, and the kill must not wait for it); both outcomes are kept for the tests.
    const orchestrator = docker("ps", "-q", "--filter", `label=com.docker.compose.project=${project}`, "--filter", "label=com.docker.compose.service=orchestrator").stdout.trim();
    const seenHealthy = new Map<string, string>();
    let lastStates = "";
    healthy = waitFor(
      "every Pangea container healthy",
      async () => {
        const ids = docker("ps", "-q", "--filter", `label=com.docker.compose.project=${project}`).stdout.trim().split("\n").filter(Boolean);
        const states = ids.map((id) => [id, docker("inspect", "-f", '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}', id).stdout.trim()] as const);
        for (const [id, state] of states) if (/^(orchestrator|compute|trainer|serving) healthy$/.test(state)) seenHealthy.set(id, state.split(" ")[0]!);
        lastStates = states.map(([, state]) => state).join(", ");
        const services = [...seenHealthy.values()].sort().join();
        return services === "compute,orchestrator,serving,trainer,trainer" ? "healthy" : false;
      },
      600_000,
      1000,
    ).catch((err: Error) => `${err.message}; seen healthy: ${[...seenHealthy.values()].join(", ")}; last seen: ${lastStates}`);
    killed = (async () => {
      const s = await waitFor("the job's first periodic checkpoint", async () => {
        const st = await statusJson(ports.ORCHESTRATOR_PORT!);
        return st && Array.isArray(st.checkpoints) && st.checkpoints.length > 0 ? st : null;
      }, 240_000, 100);
      const k = docker("kill", orchestrator);
      if (k.status !== 0) throw new Error(`docker kill ${orchestrator}: ${k.stderr}`);
      return { step: Number(s.step), checkpoints: s.checkpoints as string[] };
    })();
    await killed.catch(() => {});
  }, 1_800_000);

  afterAll(async () => {
    if (!env.COMPOSE_PROJECT) return;
    const down = await run("make", ["docker-down"], env, 300_000);
    expect(down.code, down.out).toBe(0);
    expect(projectContainers(project)).toBe("");
    expect(projectVolumes(project)).toBe("");
    // A second docker-down has nothing left: one line saying so, not compose's "not found" per object.
    const again = await run("make", ["docker-down"], env, 60_000);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain(`project '${project}' has no containers, networks or volumes; nothing to remove`);
    expect(again.out).not.toContain("not found");
  }, 300_000);

  it("trains to completion with every batch applied once across a docker kill of the orchestrator, with Prometheus scraping every service", async () => {
    expect(up.code).toBe(0);
    // The orchestrator was killed (docker kill) as soon as the job had a periodic checkpoint, before it could end.
    const before = await killed;
    process.stdout.write(`docker e2e: orchestrator killed at step ${before.step} of ${STEPS}\n`);
    expect(Number(before.step)).toBeLessThan(STEPS);
    expect(before.checkpoints.length).toBeGreaterThan(0);
    // A refused start of the same project (data that is not there) changes nothing the next start takes from it.
    const refused = await run("make", ["docker-up"], { COMPOSE_PROJECT: project, DATA: "/nonexistent/day_1.tsv" }, 60_000);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain("make docker-up: DATA: /nonexistent/day_1.tsv is not a file");
    // `make docker-up` again, as the user would type it: without the variables, the project's own are kept (data, format,
    // feature list, steps, ports). The held-out count below (10% of the user's 60,000 records; the synthetic data's is
    // 50,000) says the resumed job read the user's data.
    const again = await run("make", ["docker-up"], { COMPOSE_PROJECT: project }, 600_000);
    expect(again.code, failureOf(again.out)).toBe(0);
    expect(again.out).toContain(`make docker-up: with the settings of the earlier start of '${project}': DATA=${env.DATA} FORMAT=example FRAMING=tfrecord FEATURE_LIST=${env.FEATURE_LIST} STEPS=${STEPS} PANGEA_BIND=127.0.0.1 ORCHESTRATOR_PORT=${ports.ORCHESTRATOR_PORT}`);

    // Prometheus scraped every Pangea target up while it ran (both trainers; in the last 30 minutes: on a fast machine the
    // trainers may be done by the time this asks), and the orchestrator again since it came back.
    const query = async (q: string) => {
      const r = await fetch(`http://127.0.0.1:${ports.PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => null);
      return r?.ok ? ((await r.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result : [];
    };
    await waitFor(
      "Prometheus to have scraped every Pangea target up",
      async () => {
        const jobs = (await query("max by (job) (max_over_time(up[30m]))")).filter((x) => x.value[1] === "1").map((x) => x.metric.job).sort();
        const trainers = (await query('count(max_over_time(up{job="trainer"}[30m]) == 1)'))[0]?.value[1];
        return jobs.join() === "compute,orchestrator,serving,trainer" && Number(trainers) >= 2;
      },
      60_000,
      1000,
    );
    await waitFor("Prometheus to scrape the restarted orchestrator", async () => (await query('max(up{job="orchestrator"})'))[0]?.value[1] === "1", 60_000, 1000);
    const dash = await fetch(`http://127.0.0.1:${ports.DASHBOARD_PORT}/`);
    expect(dash.status).toBe(200);
    expect(await dash.text()).toContain("<html");

    const done = await waitFor("the job to complete", async () => {
      const s = await statusJson(ports.ORCHESTRATOR_PORT!);
      return s && (s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED") ? s : null;
    }, 420_000, 1000);
    expect(done.error ?? "").toBe("");
    expect(done.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(done.resumedFromStep)).toBeGreaterThanOrEqual(50);
    expect(Number(done.step)).toBe(STEPS);
    expect(Number(done.batchesApplied)).toBe(2 * STEPS);
    expect(Number(done.missingBatches)).toBe(0);
    expect(Number(done.duplicateBatches)).toBe(0);
    const evalReport = done.eval as { auc: number; records: number };
    expect(evalReport.records).toBe(6000);
    expect(evalReport.auc).toBeGreaterThan(0.7);

    // A start the job's checkpoint refuses (3 trainers: other batches per step than the job's): one line naming the service
    // and its reason, the refused service stopped (restart: on-failure had started it again and again), and the earlier
    // settings kept, so the next plain start is the job as it was.
    const settings = join(ROOT, ".pangea", "docker", `${project}.settings`);
    const settingsBefore = readFileSync(settings, "utf8");
    const refusedChange = await run("make", ["docker-up"], { COMPOSE_PROJECT: project, STEPS: String(STEPS + 100), TRAINERS: "3" }, 300_000);
    expect(refusedChange.code).not.toBe(0);
    expect(refusedChange.out.split("\n").find((l) => l.startsWith("make docker-up: starting the containers failed")) ?? refusedChange.out.slice(-2000)).toMatch(
      new RegExp(`^make docker-up: starting the containers failed: orchestrator: pangea-orchestrator: --resume: job compose-job's checkpoint at step ${STEPS} was taken in sync mode with 2 batches .+BATCHES_PER_STEP=2 keeps the job's step as it was.*; the refused service is stopped and the earlier start's settings are kept: make docker-up COMPOSE_PROJECT=${project} without the changed variables starts the job as before`),
    );
    expect(readFileSync(settings, "utf8")).toBe(settingsBefore);
    expect(docker("ps", "-q", "--filter", `label=com.docker.compose.project=${project}`, "--filter", "status=restarting").stdout.trim()).toBe("");

    // Other data after the job completed: compute is refused (exit 2, a refusal), and the data is not remembered either
    // (compute exited 1, and the next plain start took the refused DATA again).
    const otherDir = mkdtempSync(join(tmpdir(), "pangea-docker-other-"));
    chmodSync(otherDir, 0o755);
    const other = join(otherDir, "other.tsv");
    const row = (i: number) => [i % 3 === 0 ? 1 : 0, ...Array.from({ length: 13 }, (_, j) => (i * 7 + j) % 50), ...Array.from({ length: 26 }, (_, j) => ((i * 31 + j * 17) % 4999).toString(16).padStart(8, "0"))].join("\t");
    writeFileSync(other, `${Array.from({ length: 3000 }, (_, i) => row(i)).join("\n")}\n`, { mode: 0o644 });
    const refusedData = await run("make", ["docker-up"], { COMPOSE_PROJECT: project, DATA: other, FORMAT: "criteo" }, 300_000);
    expect(refusedData.code).not.toBe(0);
    expect(refusedData.out.split("\n").find((l) => l.startsWith("make docker-up: starting the containers failed")) ?? refusedData.out.slice(-2000)).toMatch(
      /^make docker-up: starting the containers failed: compute: pangea-compute: error COMPUTE_ERR_REFUSED: .*the job completed at step \d+ on other data.*; the refused service is stopped and the earlier start's settings are kept/,
    );
    expect(readFileSync(settings, "utf8")).toBe(settingsBefore);

    // Started again once the job has completed (its volumes kept), the cluster says the job has ended, not that it trains.
    const after = await run("make", ["docker-up"], { COMPOSE_PROJECT: project }, 300_000);
    expect(after.code, failureOf(after.out)).toBe(0);
    expect(after.out).toContain(`' is up in `);
    expect(after.out).toContain(`; the job had completed at step ${STEPS} of ${STEPS} and trains no further: make docker-up STEPS=N (N > ${STEPS}) trains on, make docker-down first starts a new job.`);
  }, 1_000_000);

  it("builds the images, starts the cluster with healthy non-root services and says where to look", async () => {
    expect(up.code, up.out.slice(-3000)).toBe(0);
    expect(up.out).toContain(`make docker-up: cluster '${project}' is up`);
    expect(up.out).toContain("; the job trains in the background.");
    expect(up.out).toContain(`http://127.0.0.1:${ports.DASHBOARD_PORT}/`);
    expect(up.out).toContain(`./pangea status --orchestrator 127.0.0.1:${ports.ORCHESTRATOR_PORT} --tls-dir .pangea/docker/${project}-tls`);
    expect(up.out).toContain("make logs DOCKER=1");
    for (const svc of ["orchestrator", "compute", "trainer", "serving"]) {
      const image = `pangea/${svc}:dev`;
      expect(docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.trim(), image).toBe("node");
      const size = Number(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.trim());
      process.stdout.write(`docker e2e: ${image} ${(size / 1e6).toFixed(0)} MB\n`);
      // The service's user can read and run the code but not change it.
      const writable = docker("run", "--rm", "--entrypoint", "sh", image, "-c", `find /app -writable -print -quit; test -r /app/services/${svc}/dist/main.js && echo readable`);
      expect(writable.stdout.trim(), image).toBe("readable");
    }
    // Each service holds the CA's certificate and its own role's certificate and key, and nothing else: not the CA's key,
    // the admin key or another role's key (a compromised trainer could otherwise make itself any role's certificate).
    // (Read from each container's mounts and its volume: the trainers may have exited with the job by now.)
    for (const svc of ["orchestrator", "compute", "trainer", "serving"]) {
      const id = docker("ps", "-aq", "--filter", `label=com.docker.compose.project=${project}`, "--filter", `label=com.docker.compose.service=${svc}`).stdout.trim().split("\n")[0]!;
      const volumes = docker("inspect", "-f", "{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}", id).stdout.trim().split(" ");
      expect(volumes.filter((v) => v.startsWith(`${project}_certs`)), svc).toEqual([`${project}_certs-${svc}`]);
      const held = docker("run", "--rm", "--entrypoint", "ls", "-v", `${project}_certs-${svc}:/certs:ro`, "pangea/orchestrator:dev", "-1", "/certs").stdout.trim().split("\n").sort();
      expect(held, svc).toEqual(["ca.crt", `${svc}.crt`, `${svc}.key`]);
    }
    // One dependency tree, one layer: the four images differ only in their entry points and health checks.
    const layers = ["orchestrator", "compute", "trainer", "serving"].map((svc) => docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", `pangea/${svc}:dev`).stdout.trim());
    expect(new Set(layers).size, layers.join("\n")).toBe(1);
    // Every service's health check turned healthy, each container at some point (compose started compute and the trainers only after their dependencies did).
    expect(await healthy).toBe("healthy");
  }, 120_000);

  it("serves the exported model over REST and gRPC from the host, with the feature list it was trained with", async () => {
    expect(up.code).toBe(0);
    // The final export (version 2; version 1 was the first checkpoint) reaches serving through the models volume.
    const status = await waitFor("serving to load the final version", async () => {
      const r = await restCall(ports.SERVING_REST_PORT!, "/v1/models/ctr").catch(() => null);
      if (r?.status !== 200) return null;
      const body = r.json as { model_version_status: { version: string; state: string }[] };
      return body.model_version_status.some((v) => v.version === "2" && v.state === "AVAILABLE") ? body : null;
    }, 60_000, 500);
    expect(status.model_version_status.map((v) => v.version)).toEqual(["1", "2"]);
    const models = docker("ps", "-q", "--filter", `label=com.docker.compose.project=${project}`, "--filter", "label=com.docker.compose.service=serving").stdout.trim();
    const manifest = JSON.parse(docker("exec", models, "cat", "/data/models/ctr/2/manifest.json").stdout) as { featureList?: string; source: { step: number } };
    expect(manifest.featureList).toBe("feature_list.json");
    expect(manifest.source.step).toBe(STEPS);

    const features = JSON.parse(readFileSync(join(data, "features.json"), "utf8")) as { slots: unknown[]; dense: { size: number }[] };
    const numDense = features.dense.reduce((n, d) => n + d.size, 0);
    const rows = [0.1, 0.9].map((x) => ({ dense_features: Array.from({ length: numDense }, (_, i) => x * (i + 1)), feature_ids: Array.from({ length: features.slots.length }, () => 0) }));
    const rest = await restCall(ports.SERVING_REST_PORT!, "/v1/models/ctr:predict", { instances: rows });
    expect(rest.status).toBe(200);
    const restBody = rest.json as { predictions: number[]; model_version: number };
    expect(restBody.predictions).toHaveLength(2);
    for (const p of restBody.predictions) expect(p > 0 && p < 1).toBe(true);
    const input = join(data, "request.json");
    writeFileSync(input, JSON.stringify({ instances: rows }));
    const grpc = await runNode(ENTRY.cli, ["predict", "--address", `127.0.0.1:${ports.SERVING_GRPC_PORT}`, "--model", "ctr", "--input", input, "--tls-dir", tlsDir()]);
    expect(grpc.code, grpc.stderr).toBe(0);
    expect(JSON.parse(grpc.stdout)).toEqual(restBody);
  }, 120_000);

  it("make logs DOCKER=1 follows the containers' logs", async () => {
    expect(up.code).toBe(0);
    const logs = await run("make", ["logs", "DOCKER=1"], env, 8_000);
    // The orchestrator's container of the last start (recreated after the refused one) reports the job it had completed.
    expect(logs.out).toMatch(/orchestrator[_-]1 +\|.*"(job completed|the job had completed; reporting its result)"/);
    expect(logs.out).toMatch(/serving[_-]1 +\|.*"model version loaded"/);
  }, 30_000);
});

describe.skipIf(skip)("make docker-up refuses to start a broken setup, in one line, leaving nothing behind", () => {
  const env = (extra: NodeJS.ProcessEnv) => ({ COMPOSE_PROJECT: `pangea-bad-${process.pid}`, ...extra });

  beforeAll(() => ensureEngine(), 900_000);

  it("names a missing engine (make docker-up and make docker-build)", async () => {
    for (const target of ["docker-up", "docker-build"]) {
      const r = await run("make", [target], env({ DOCKER_HOST: "unix:///nonexistent/docker.sock" }), 60_000);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(new RegExp(`^make ${target}: no Docker engine answers \\(.+\\): start it \\(e\\.g\\. sudo systemctl start docker\\) and run make ${target} again$`, "m"));
    }
  });

  it("names a port that is taken", async () => {
    const port = await closedPort();
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(port, "127.0.0.1", resolve));
    try {
      const r = await run("make", ["docker-up"], env({ DASHBOARD_PORT: String(port) }), 120_000);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain(`make docker-up: port ${port} on 127.0.0.1 (DASHBOARD_PORT) is already in use: stop what holds it, or pick another, e.g. make docker-up COMPOSE_PROJECT=pangea-bad-${process.pid} DASHBOARD_PORT=${port + 10000 <= 65535 ? port + 10000 : port - 10000}`);
      expect(projectContainers(`pangea-bad-${process.pid}`)).toBe("");
    } finally {
      holder.close();
    }
  });

  it("names an image that cannot be pulled", async () => {
    // A copy of the Docker entry points whose compose file names an etcd that no registry has.
    const copy = mkdtempSync(join(tmpdir(), "pangea-docker-copy-"));
    for (const p of ["Makefile", "scripts/docker-cluster.sh", "scripts/docker-choices.sh", "infra"]) cpSync(join(ROOT, p), join(copy, p), { recursive: true });
    const compose = join(copy, "infra/docker-compose.yaml");
    writeFileSync(compose, readFileSync(compose, "utf8").replace(/quay\.io\/coreos\/etcd:v[\d.]+/, "quay.io/coreos/etcd:v0.0.0-pangea-missing"));
    const r = await run("make", ["docker-up"], env({}), 120_000, copy);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/^make docker-up: cannot pull quay\.io\/coreos\/etcd:v0\.0\.0-pangea-missing \(.+\): check the engine's registry access, or 'docker load' the image, then run make docker-up again$/m);
    expect(projectContainers(`pangea-bad-${process.pid}`)).toBe("");
  });

  it("names data that is not there", async () => {
    const r = await run("make", ["docker-up"], env({ DATA: "/nonexistent/day_0.tsv" }), 60_000);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("make docker-up: DATA: /nonexistent/day_0.tsv is not a file (give data files, comma-separated, all in one directory)");
  });

  it("names data the containers' user cannot read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-docker-private-"));
    writeFileSync(join(dir, "day_0.tsv"), "1\t\n");
    chmodSync(join(dir, "day_0.tsv"), 0o644);
    const r = await run("make", ["docker-up"], env({ DATA: join(dir, "day_0.tsv") }), 60_000);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`make docker-up: DATA: the directory ${dir} is not readable by the containers' user (uid 1000): chmod o+rx ${dir}`);
  });

  it("a new project that a service refuses after the build leaves nothing: no container, volume or settings", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-docker-refused-"));
    chmodSync(dir, 0o755);
    // A feature_list.conf of slots only: the checks before the build read it as a feature list; compute refuses it, as
    // no model can be trained from it (no dense feature).
    writeFileSync(join(dir, "day_0.tfrecord"), "");
    writeFileSync(join(dir, "list.conf"), "feature_name=user_id slot=1\n");
    for (const f of ["day_0.tfrecord", "list.conf"]) chmodSync(join(dir, f), 0o644);
    const name = `pangea-refused-${process.pid}`;
    const ports = Object.fromEntries(await Promise.all(["ORCHESTRATOR_PORT", "DASHBOARD_PORT", "SERVING_GRPC_PORT", "SERVING_REST_PORT", "PROMETHEUS_PORT"].map(async (k) => [k, String(await closedPort())])));
    try {
      const r = await run("make", ["docker-up"], { COMPOSE_PROJECT: name, PANGEA_BIND: "127.0.0.1", DATA: join(dir, "day_0.tfrecord"), FORMAT: "example", FRAMING: "tfrecord", FEATURE_LIST: join(dir, "list.conf"), ...ports }, 600_000);
      expect(r.code).not.toBe(0);
      expect(r.out.split("\n").find((l) => l.startsWith("make docker-up: starting the containers failed")) ?? r.out.slice(-2000)).toMatch(
        /^make docker-up: starting the containers failed: (compute|orchestrator): pangea-(compute|orchestrator): .*list\.conf declares no dense feature.*; the containers and volumes this start made were removed$/,
      );
      expect(projectContainers(name)).toBe("");
      expect(projectVolumes(name)).toBe("");
      expect(existsSync(join(ROOT, ".pangea", "docker", `${name}.settings`))).toBe(false);
    } finally {
      await run("make", ["docker-down"], { COMPOSE_PROJECT: name }, 120_000);
    }
  }, 660_000);
});
