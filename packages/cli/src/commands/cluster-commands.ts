import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { SERVICE_V8_FLAGS } from "@pangea/kit";
import { ClusterError, LocalCluster, REPO_ROOT } from "../launcher/local-cluster.js";
import { clusterOptions, type RunConfig } from "./run.js";
import { clearState, readState, writeState } from "./local-state.js";
import { StatusClient } from "./status-client.js";
import { formatSummary, statusJson } from "./summary.js";

/** `pangea up`: start the cluster in the background and return. */
export async function upCommand(c: RunConfig): Promise<number> {
  const existing = readState();
  if (existing && existing.processes.some((p) => alive(p.pid))) {
    throw new ClusterError(`a local cluster is already up (orchestrator ${existing.orchestrator}); run 'pangea down' first`, 1);
  }
  const cluster = await LocalCluster.start(clusterOptions(c, true));
  for (const p of cluster.processes) p.child.unref();
  writeState(cluster.describe());
  process.stdout.write(`cluster up: orchestrator ${cluster.orchestratorAddress}, compute ${cluster.computeAddress}, ${c.trainers} trainer${c.trainers === 1 ? "" : "s"}\n`);
  process.stdout.write(`follow with 'pangea status', stop with 'pangea down'; logs in ${c.logDir}\n`);
  return 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `pangea down`: stop what `pangea up` started. */
export async function downCommand(): Promise<number> {
  const state = readState();
  if (!state) {
    process.stdout.write("no local cluster is up\n");
    return 0;
  }
  const running = state.processes.filter((p) => alive(p.pid));
  for (const p of running) process.kill(p.pid, "SIGTERM");
  const deadline = Date.now() + 5_000;
  while (running.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const p of running.filter((x) => alive(x.pid))) process.kill(p.pid, "SIGKILL");
  clearState();
  process.stdout.write(`stopped ${running.length} process${running.length === 1 ? "" : "es"}\n`);
  return 0;
}

/** `pangea status [--orchestrator host:port] [--json]`. */
export async function statusCommand(address: string | undefined, json: boolean): Promise<number> {
  const target = address ?? readState()?.orchestrator;
  if (!target) throw new ClusterError("no orchestrator address: pass --orchestrator host:port or start a cluster with 'pangea up'", 2);
  const client = new StatusClient(target);
  try {
    await client.connect(5_000);
    const s = await client.get();
    const trainers = s.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER").length;
    process.stdout.write(json ? `${statusJson(s)}\n` : `${formatSummary(s, trainers)}\n`);
    return s.state === "JOB_STATE_FAILED" ? 1 : 0;
  } finally {
    client.close();
  }
}

/** `pangea gen-data`: runs the compute service's data writer. */
export function genDataCommand(argv: string[]): number {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, "services/compute/dist/gen-data.js"), ...argv], { stdio: "inherit" });
  return r.status ?? 1;
}

/** `pangea export`: a servable model version from a checkpoint (services/orchestrator/dist/export.js). */
export function exportCommand(argv: string[]): number {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, "services/orchestrator/dist/export.js"), ...argv], { stdio: "inherit" });
  return r.status ?? 1;
}

/** `pangea serve`: runs the serving service in the foreground (services/serving/dist/main.js). */
export function serveCommand(argv: string[]): number {
  // The services' heap flags: fewer garbage-collection pauses in the middle of requests.
  const r = spawnSync(process.execPath, [...SERVICE_V8_FLAGS, join(REPO_ROOT, "services/serving/dist/main.js"), ...argv], { stdio: "inherit" });
  return r.status ?? 1;
}

/** `pangea bench [RECORDS]`: the benchmark scripts `make bench` runs (scripts/bench.mjs, then the table benchmark). */
export function benchCommand(argv: string[]): number {
  if (argv.includes("--help")) {
    process.stdout.write("Usage: pangea bench [records]\n\nRuns the benchmarks make bench runs (data pipeline, trainer step rate, serving latency; then embedding tables) and prints figures and ratios from one invocation.\n");
    return 0;
  }
  if (argv.some((a) => !/^\d+$/.test(a)) || argv.length > 1) {
    process.stderr.write(`pangea bench: expected at most one argument, a number of records; got ${argv.join(" ")}\nRun 'pangea bench --help' for usage.\n`);
    return 2;
  }
  for (const script of ["scripts/bench.mjs", "scripts/bench-tables.mjs"]) {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, script), ...argv], { stdio: "inherit" });
    if (r.status !== 0) return r.status ?? 1;
  }
  return 0;
}
