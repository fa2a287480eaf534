import { constants as osConstants } from "node:os";
import { loadTransportSecurity } from "@pangea/rpc";
import { printable } from "@pangea/kit";
import type { JobStatus__Output } from "@pangea/schema";
import { ClusterError } from "../cluster-error.js";
import { usableTlsDir } from "../tls-dir.js";
import { LocalCluster } from "../launcher/local-cluster.js";
import { claimLogDir } from "../launcher/log-dir-claim.js";
import { addressesLine, clusterOptions, prepareTls, resumeWithoutJobId, type RunConfig } from "./run.js";
import { clearState, readState, stillRunning, writeState, type LocalState } from "./local-state.js";
import { resumeHint } from "./resume-hint.js";
import { exitReason, readLastLines } from "../launcher/log-tail.js";
import { StatusClient } from "./status-client.js";
import { formatSummary, statusJson } from "./summary.js";

/** `pangea up`: start the cluster in the background and return. */
export async function upCommand(c: RunConfig): Promise<number> {
  const existing = readState();
  const running = existing?.processes.filter((p) => stillRunning(p)) ?? [];
  if (existing && running.length) {
    // Its orchestrator gone, what is left is no cluster that is up: say so, and what down then up does.
    const orchestrator = existing.processes.find((p) => p.name === "orchestrator");
    const gone = orchestrator && !stillRunning(orchestrator);
    throw new ClusterError(
      gone
        ? `the local cluster 'pangea up' started has lost its orchestrator (pid ${orchestrator.pid} has exited; log: ${printable(orchestrator.log)}), and ${running.map((p) => printable(p.name)).join(", ")} still run; 'pangea down' stops them, then 'pangea up' (with --resume --job-id J to go on from the job's checkpoints)`
        : `a local cluster is already up (orchestrator ${existing.orchestrator}); run 'pangea down' first`,
      1,
    );
  }
  claimLogDir(c.logDir, false);
  process.stderr.write(resumeWithoutJobId(c.args.orchestrator, process.env) ?? "");
  prepareTls(c);
  const record = (cluster: LocalCluster) => writeState({ ...cluster.describe(), ...(c.tls ? { tlsDir: c.tlsDir } : {}) });
  // The processes are detached: interrupted while starting, up stops what it started (killed outright, it cannot:
  // each is recorded as it is spawned, for 'pangea down').
  const abort = new AbortController();
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    abort.abort();
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);
  let cluster: LocalCluster;
  try {
    cluster = await LocalCluster.start({ ...clusterOptions(c, true), onSpawn: record, signal: abort.signal });
  } catch (err) {
    clearState();
    if (!interrupted) throw err;
    process.stderr.write(`pangea up: interrupted by ${interrupted} while starting; stopped every process it had started\n`);
    return 128 + (osConstants.signals[interrupted as keyof typeof osConstants.signals] ?? 0);
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
  for (const p of cluster.processes) p.child.unref();
  record(cluster);
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

/**
 * Why `pangea up`'s orchestrator does not answer, when it is because its process has exited: its log's last line,
 * and, where the job wrote checkpoints, how to continue from them ("" when it still runs).
 */
function orchestratorGone(state: LocalState): string {
  const p = state.processes.find((x) => x.name === "orchestrator");
  if (!p || stillRunning(p)) return "";
  const hint = resumeHint(p.log, (job) => `'pangea down', then the same 'pangea up' with --resume --job-id ${job}, continues from the newest intact one`);
  return `; the orchestrator 'pangea up' started (pid ${p.pid}) has exited${whyExited(p.log)}${hint ? `; ${hint}` : ""}`;
}

/** ", its log L ending: REASON" for a process that exited with an error, " (log: L)" for one killed mid-job. */
function whyExited(log: string): string {
  // An error it exited with is its last line; a JSON log line there says only that it was killed mid-job.
  const tail = readLastLines(log, 1)[0];
  const last = tail && !tail.startsWith("{") ? exitReason(log) : "";
  return last ? `, its log ${printable(log)} ending: ${printable(last, 300)}` : ` (log: ${printable(log)})`;
}

/**
 * The processes of up's cluster other than the orchestrator that have exited while its job has not ended (a finished
 * job's trainers exit by themselves): one line each, so a job that waits for a compute that died says why it waits.
 */
function exitedDuringJob(state: LocalState, s: JobStatus__Output): string[] {
  if (s.state !== "JOB_STATE_RUNNING" && s.state !== "JOB_STATE_WAITING" && s.state !== "JOB_STATE_EVALUATING") return [];
  // A compute started by hand in its place (up's own is the only one it starts): the job is not waiting for one.
  const compute = s.workers.find((w) => w.kind === "WORKER_KIND_COMPUTE" && w.alive);
  return state.processes
    .filter((p) => p.name !== "orchestrator" && !stillRunning(p))
    .map((p) => {
      const replaced = p.name === "compute" && compute ? `; the job reads from compute ${printable(compute.workerId)} at ${printable(compute.address)} now` : "";
      return `${printable(p.name)} (pid ${p.pid}), which 'pangea up' started, has exited${whyExited(p.log)}${replaced}`;
    });
}

/** `pangea status [--orchestrator host:port] [--json]`. */
export async function statusCommand(address: string | undefined, json: boolean, tlsDir?: string): Promise<number> {
  const state = readState();
  const target = address ?? state?.orchestrator;
  if (!target && state) throw new ClusterError(`the cluster 'pangea up' started has no orchestrator address yet: it is still starting, or up was killed while starting; 'pangea down' stops what it started`, 1);
  if (!target) throw new ClusterError("no orchestrator address: pass --orchestrator host:port or start a cluster with 'pangea up'", 2);
  const dir = tlsDir ?? (address ? undefined : state?.tlsDir);
  const client = new StatusClient(target, dir ? usableTlsDir(() => loadTransportSecurity(dir, "admin")) : null);
  try {
    await client.connect(5_000).catch((err: ClusterError) => {
      throw address || !state ? err : new ClusterError(`${err.message}${orchestratorGone(state)}`, err.exitCode);
    });
    const s = await client.get();
    const trainers = s.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER").length;
    const exited = json || address || !state ? [] : exitedDuringJob(state, s);
    process.stdout.write(json ? `${statusJson(s)}\n` : `${formatSummary(s, trainers)}\n${exited.map((l) => `${l}\n`).join("")}`);
    return s.state === "JOB_STATE_FAILED" ? 1 : 0;
  } finally {
    client.close();
  }
}
