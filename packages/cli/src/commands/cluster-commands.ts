import { spawn } from "node:child_process";
import { constants } from "node:os";
import { join } from "node:path";
import { SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS } from "@pangea/kit";
import { loadTransportSecurity } from "@pangea/rpc";
import { ClusterError, LocalCluster, REPO_ROOT } from "../launcher/local-cluster.js";
import { addressesLine, clusterOptions, prepareTls, resumeWithoutJobId, type RunConfig } from "./run.js";
import { clearState, readState, stillRunning, writeState } from "./local-state.js";
import { StatusClient } from "./status-client.js";
import { formatSummary, statusJson } from "./summary.js";

/** `pangea up`: start the cluster in the background and return. */
export async function upCommand(c: RunConfig): Promise<number> {
  const existing = readState();
  if (existing && existing.processes.some((p) => stillRunning(p))) {
    throw new ClusterError(`a local cluster is already up (orchestrator ${existing.orchestrator}); run 'pangea down' first`, 1);
  }
  process.stderr.write(resumeWithoutJobId(c.args.orchestrator, process.env) ?? "");
  prepareTls(c);
  const cluster = await LocalCluster.start(clusterOptions(c, true));
  for (const p of cluster.processes) p.child.unref();
  writeState({ ...cluster.describe(), ...(c.tls ? { tlsDir: c.tlsDir } : {}) });
  process.stdout.write(`cluster up: ${addressesLine(cluster)}, ${c.trainers} trainer${c.trainers === 1 ? "" : "s"}${c.tls ? `; mutual TLS, certificates in ${c.tlsDir}` : ""}\n`);
  process.stdout.write(`follow with 'pangea status', stop with 'pangea down'; logs in ${c.logDir}\n`);
  return 0;
}


/** `pangea down`: stop what `pangea up` started. */
export async function downCommand(): Promise<number> {
  const state = readState();
  if (!state) {
    process.stdout.write("no local cluster is up\n");
    return 0;
  }
  // Only the processes up started: a pid reused since (after a crash or a reboot) belongs to something else.
  const running = state.processes.filter((p) => stillRunning(p));
  const exited = state.processes.filter((p) => !running.includes(p));
  for (const p of running) process.kill(p.pid, "SIGTERM");
  const deadline = Date.now() + 5_000;
  while (running.some((p) => stillRunning(p)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const p of running.filter((x) => stillRunning(x))) process.kill(p.pid, "SIGKILL");
  clearState();
  process.stdout.write(`${downReport(running.map((p) => p.name), exited.map((p) => p.name))}\n`);
  return 0;
}

/** What `pangea down` found: the processes it stopped, and those that had exited on their own (a finished job's trainers). */
function downReport(stopped: string[], exited: string[]): string {
  const parts = [stopped.length ? `stopped ${stopped.join(", ")}` : "nothing was running"];
  if (exited.length) parts.push(`${exited.join(", ")} had already exited`);
  return parts.join("; ");
}

/** `pangea status [--orchestrator host:port] [--json]`. */
export async function statusCommand(address: string | undefined, json: boolean, tlsDir?: string): Promise<number> {
  const state = readState();
  const target = address ?? state?.orchestrator;
  if (!target) throw new ClusterError("no orchestrator address: pass --orchestrator host:port or start a cluster with 'pangea up'", 2);
  const dir = tlsDir ?? (address ? undefined : state?.tlsDir);
  const client = new StatusClient(target, dir ? loadTransportSecurity(dir, "admin") : null);
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

/**
 * Runs one of the services' entry points as this command, in the foreground:
 * the child's process group gets the signals the CLI gets (it is a group of
 * its own, so a terminal's Ctrl-C reaches it once, through us), and the CLI exits with
 * the child's code, or 128 + the signal that ended it.
 */
function runChild(args: string[], program?: string, serviceEnv: Readonly<Record<string, string>> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: "inherit",
      detached: true,
      env: { ...serviceEnv, ...process.env, ...(program ? { PANGEA_CLI_PROGRAM: program } : {}) },
    });
    // To the child's whole group, as a terminal would: a benchmark script's own children stop too.
    const forward = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // The group is gone already; its exit event is on the way.
      }
    };
    const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
    for (const sig of signals) process.on(sig, forward);
    const done = () => {
      for (const sig of signals) process.off(sig, forward);
    };
    child.once("error", (err) => {
      done();
      reject(new ClusterError(`cannot start ${args.at(-1) ?? "child"}: ${err.message}`));
    });
    child.once("exit", (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

/** `pangea gen-data`: runs the compute service's data writer. */
export function genDataCommand(argv: string[]): Promise<number> {
  return runChild([join(REPO_ROOT, "services/compute/dist/gen-data.js"), ...argv]);
}

/** `pangea export`: a servable model version from a checkpoint (services/orchestrator/dist/export.js). */
export function exportCommand(argv: string[]): Promise<number> {
  return runChild([join(REPO_ROOT, "services/orchestrator/dist/export.js"), ...argv], "pangea export");
}

/** `pangea serve`: runs the serving service in the foreground (services/serving/dist/main.js). */
export function serveCommand(argv: string[]): Promise<number> {
  // The services' heap settings (packages/kit: V8 flags for fewer collections mid-request, malloc thresholds for large buffers).
  return runChild([...SERVICE_V8_FLAGS, join(REPO_ROOT, "services/serving/dist/main.js"), ...argv], "pangea serve", SERVICE_MALLOC_ENV);
}

/** `pangea bench [RECORDS]`: the benchmark scripts `make bench` runs (scripts/bench.mjs, then the table benchmark). */
export async function benchCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write("Usage: pangea bench [records]\n\nRuns the benchmarks make bench runs (data pipeline, trainer step rate, serving latency; then embedding tables) and prints figures and ratios from one invocation.\n");
    return 0;
  }
  if (argv.some((a) => !/^\d+$/.test(a)) || argv.length > 1) {
    process.stderr.write(`pangea bench: expected at most one argument, a number of records; got ${argv.join(" ")}\nRun 'pangea bench --help' for usage.\n`);
    return 2;
  }
  for (const script of ["scripts/bench.mjs", "scripts/bench-tables.mjs"]) {
    const code = await runChild([join(REPO_ROOT, script), ...argv]);
    if (code !== 0) return code;
  }
  return 0;
}
