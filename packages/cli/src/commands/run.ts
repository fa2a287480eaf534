import { availableParallelism } from "node:os";
import { z } from "zod";
import { deepFreeze, envFlagOn, envGiven, nonNegativeInt, parseConfig, port, printable, usageText, UsageError, type FlagTable } from "@pangea/kit";
import type { JobStatus__Output } from "@pangea/schema";
import { ORCHESTRATOR_FLAGS, SlotConfigErrors, checkSlotDims, isMultiTaskModel, orchestratorConfigSchema, readSlotConfig, discoveredSyncModel } from "@pangea/service-flags";
import { ModelErrors, architectureFromFlags, type ModelFlags } from "@pangea/model";
import { loadTransportSecurity, readBearerToken, writeClusterCerts, type TransportSecurity } from "@pangea/rpc";
import { LocalCluster, orchestratorCommandLine, type ClusterOptions } from "../launcher/local-cluster.js";
import { claimLogDir } from "../launcher/log-dir-claim.js";
import { StatusClient } from "./status-client.js";
import { ClusterError } from "../cluster-error.js";
import { ProgressPrinter } from "./progress.js";
import { builtInTaskArgs, passThroughFlags, serviceArgs, type Service } from "./pass-through.js";
import { resumeHint } from "./resume-hint.js";
import { fetchSyncSummary, formatSummary, statusJson, type SyncSummary } from "./summary.js";

/** The flags `pangea run` has for the cluster as a whole; every other flag is a service's (see pass-through.ts). */
const CLUSTER_FLAGS: FlagTable = {
  host: { description: "interface the services bind", default: "127.0.0.1" },
  "orchestrator-port": { description: "orchestrator port (0 = any free port)", default: "0" },
  "compute-port": { description: "compute port (0 = any free port)", default: "0" },
  "metrics-port": { description: "orchestrator's HTTP port: /metrics and the dashboard at / (0 = any free port)", default: "0" },
  "blas-threads": { description: "threads of each trainer's native BLAS matmuls (0 = cores / trainers)", default: "0" },
  "log-dir": { description: "where each process writes its log", default: ".pangea/logs" },
  tls: { description: "mutual TLS between the cluster's processes, with certificates made for the run in --tls-dir (a per-worker one for each trainer)", boolean: true },
  "tls-dir": { description: "with --tls: the certificates' directory (made if absent; see pangea certs)", default: ".pangea/tls" },
  json: { description: "print the final job status as JSON on stdout (stopped by a dead process or an interrupt: the newest status read, state JOB_STATE_FAILED, stoppedByRun true)", boolean: true },
};

const clusterSchema = {
  host: z.string().min(1, "expected an interface address").default("127.0.0.1"),
  orchestratorPort: port.default(0),
  computePort: port.default(0),
  metricsPort: port.default(0),
  blasThreads: nonNegativeInt("a number of threads").default(0),
  logDir: z.string().min(1, "expected a path").default(".pangea/logs"),
  tls: z.boolean().default(false),
  tlsDir: z.string().min(1, "expected a path").default(".pangea/tls"),
  json: z.boolean().default(false),
};

/** Orchestrator flags the launcher reads and passes on itself: it starts that many trainers and shards. */
const LAUNCHER_READS = ["trainers", "ps-shards"];

const PASS_THROUGH = passThroughFlags();
const passed = [...PASS_THROUGH].filter(([name]) => !LAUNCHER_READS.includes(name));

export const RUN_FLAGS: FlagTable = {
  ...Object.fromEntries(LAUNCHER_READS.map((name) => [name, PASS_THROUGH.get(name)!.spec])),
  ...Object.fromEntries(passed.map(([name, f]) => [name, f.spec])),
  ...CLUSTER_FLAGS,
};

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

// The services' own field schemas check the pass-through flags (each service checks them again at start).
const schema = z
  .object({ ...Object.fromEntries([...PASS_THROUGH].map(([name, f]) => [camel(name), f.schema])), ...clusterSchema })
  .refine((c) => ((c as Record<string, unknown>).trainers as number) <= 64, { message: "expected at most 64 local trainers", path: ["trainers"] })
  .refine((c) => ((c as Record<string, unknown>).psShards as number) <= 16, { message: "expected at most 16 local shards", path: ["psShards"] })
  .superRefine((c, ctx) => {
    // Two services given one port: the second's bind would fail after the first started (EADDRINUSE).
    const ports = [["orchestratorPort", "--orchestrator-port"], ["computePort", "--compute-port"], ["metricsPort", "--metrics-port"]] as const;
    const given = c as Record<string, unknown>;
    for (let i = 1; i < ports.length; i++) {
      for (let j = 0; j < i; j++) {
        const p = given[ports[i]![0]] as number;
        if (p !== 0 && p === given[ports[j]![0]]) {
          ctx.addIssue({ code: "custom", message: `expected a port other than ${ports[j]![1]}'s (${p}): each service binds its own`, path: [ports[i]![0]] });
          return;
        }
      }
    }
  });

/** What `pangea run`/`up` use themselves, and the service flags given, per service. */
export interface RunConfig {
  trainers: number;
  psShards: number;
  host: string;
  orchestratorPort: number;
  computePort: number;
  metricsPort: number;
  blasThreads: number;
  logDir: string;
  tls: boolean;
  tlsDir: string;
  json: boolean;
  servingSync?: readonly string[];
  /** The token of --metrics-token-file (the flag, else PANGEA_METRICS_TOKEN_FILE as the services read it), read before anything starts: the run asks the dashboard's /status.json with it. */
  metricsToken?: string;
  /** --on-trainer-loss (the flag, else PANGEA_ON_TRAINER_LOSS as the orchestrator reads it): with fail, a lost trainer ends the job. */
  onTrainerLoss: "reassign" | "fail";
  /** The pass-through flags given, as typed, for each service that declares them. */
  args: Record<Service, string[]>;
}

export const runUsage = () => usageText("pangea run", "Start a local cluster (orchestrator, compute, trainers), train, evaluate, print the results and stop every process.", RUN_FLAGS);
export const trainUsage = () => usageText("pangea train", "The same as 'pangea run': start a local cluster, train, evaluate, print the results and stop every process.", RUN_FLAGS);

const { json: _finalStatusOnly, ...UP_FLAGS } = RUN_FLAGS;
export const upUsage = () =>
  usageText("pangea up", "Start a local cluster (orchestrator, compute, trainers) in the background and return once every process is ready; the job trains on. Follow it with 'pangea status', stop it with 'pangea down'.", UP_FLAGS);

/** The line naming where the cluster listens, as `run` and `up` print it. */
export function addressesLine(cluster: LocalCluster): string {
  const http = cluster.dashboardAddress ? `, dashboard http://${cluster.dashboardAddress}/, metrics http://${cluster.dashboardAddress}/metrics` : "";
  return `orchestrator ${cluster.orchestratorAddress}, compute ${cluster.computeAddress}${http}`;
}

/**
 * With --tls, the run's certificates: the CA and one per role (kept if
 * already there), a per-worker one for each trainer; the CLI itself calls
 * as admin.
 */
export function prepareTls(c: RunConfig): TransportSecurity | null {
  if (!c.tls) return null;
  writeClusterCerts(c.tlsDir, { flag: "--tls-dir", workers: Array.from({ length: c.trainers }, (_, i) => ({ role: "trainer" as const, name: `trainer-${i}` })) });
  return loadTransportSecurity(c.tlsDir, "admin");
}

export function parseRun(argv: readonly string[]): Readonly<RunConfig> | null {
  const c = parseConfig(schema, RUN_FLAGS, argv, {}) as Record<string, unknown> | null;
  if (!c) return null;
  const pick = <K extends keyof RunConfig>(k: K) => c[k] as RunConfig[K];
  // It has a default, so the schema cannot tell it was given: without --tls it would be ignored.
  if (!c.tls && argv.some((a) => a === "--tls-dir" || a.startsWith("--tls-dir="))) throw new UsageError("invalid --tls-dir: names --tls's certificates; give --tls too");
  // The local cluster finds its services without a registry: there is no etcd to list serving replicas from.
  if (discoveredSyncModel(c.servingSync as string[] | undefined) !== null) throw new UsageError("invalid --serving-sync: discovery:<model> lists the serving replicas in etcd, which the local cluster does not use; name the replicas (host:port[,...])");
  const args = builtInTaskArgs(serviceArgs(argv, RUN_FLAGS, new Map(passed)), isMultiTaskModel(c.model as string), process.env);
  // As the cluster will start it: with the trainers and shards run counts itself (its flags, not the orchestrator's).
  checkOrchestratorFlags(orchestratorCommandLine({ host: pick("host"), orchestratorPort: pick("orchestratorPort"), trainers: pick("trainers"), psShards: pick("psShards"), orchestratorArgs: args.orchestrator, metricsPort: pick("metricsPort") }));
  const metricsTokenFile = (c.metricsTokenFile as string | undefined) ?? (envGiven(process.env.PANGEA_METRICS_TOKEN_FILE) ? process.env.PANGEA_METRICS_TOKEN_FILE : undefined);
  return deepFreeze({
    trainers: pick("trainers"),
    psShards: pick("psShards"),
    host: pick("host"),
    orchestratorPort: pick("orchestratorPort"),
    computePort: pick("computePort"),
    metricsPort: pick("metricsPort"),
    blasThreads: pick("blasThreads"),
    logDir: pick("logDir"),
    tls: pick("tls"),
    tlsDir: pick("tlsDir"),
    json: pick("json"),
    ...(c.servingSync ? { servingSync: pick("servingSync") } : {}),
    ...(metricsTokenFile ? { metricsToken: readBearerToken("--metrics-token-file", metricsTokenFile) } : {}),
    onTrainerLoss: argv.some((a) => a === "--on-trainer-loss" || a.startsWith("--on-trainer-loss=")) ? pick("onTrainerLoss") : process.env.PANGEA_ON_TRAINER_LOSS === "fail" ? "fail" : "reassign",
    args,
  });
}

/**
 * The orchestrator's flags as it reads them (its flags, then the environment), with what they require of each other,
 * and the model they give (--model, --model-config, --embedding-dim, dlrm's widths, --slot-config's dims), checked
 * before anything starts: `--keep-best` without `--eval-every-steps`, a bad hyper-parameter, an unreadable
 * --model-config or --slot-config, or a slot dim the model cannot take is one line and exit 2 with no process
 * started. What needs the data or the checkpoint is left for the orchestrator.
 */
function checkOrchestratorFlags(orchestratorArgs: readonly string[]): void {
  const flags: Readonly<ModelFlags & { slotConfig?: string }> | null = parseConfig(orchestratorConfigSchema, ORCHESTRATOR_FLAGS, orchestratorArgs, process.env);
  if (!flags) return;
  try {
    const architecture = architectureFromFlags(flags);
    checkSlotDims(flags.slotConfig ? readSlotConfig(flags.slotConfig) : null, flags.embeddingDim, architecture);
  } catch (err) {
    // The orchestrator's own line would say the same, with its code: pangea run says it before starting anything.
    if (ModelErrors.is(err) || SlotConfigErrors.is(err)) throw new UsageError(`${(err as { code: string }).code}: ${(err as Error).message}`);
    throw err;
  }
}

/** The cluster a run config describes; the services validate the flags again themselves. */
export function clusterOptions(c: RunConfig, detached: boolean): ClusterOptions {
  return {
    trainers: c.trainers,
    logDir: c.logDir,
    host: c.host,
    orchestratorPort: c.orchestratorPort,
    computePort: c.computePort,
    metricsPort: c.metricsPort,
    detached,
    ...(c.tls ? { tlsDir: c.tlsDir } : {}),
    psShards: c.psShards,
    // stderr: `run --json` keeps stdout for the status.
    onComputeReading: (seconds, logPath) => process.stderr.write(`compute is still reading its data into the record cache (${seconds} s; log: ${logPath})\n`),
    onSlowStart: (name, seconds, said, logPath) => process.stderr.write(`${name} is not serving yet after ${seconds} s${said ? `: ${printable(said, 300)}` : ""} (log: ${logPath})\n`),
    orchestratorArgs: [...c.args.orchestrator],
    computeArgs: [...c.args.compute],
    // One core's worth of BLAS threads per trainer by default: more would oversubscribe the cores.
    trainerArgs: [...c.args.trainer, "--blas-threads", String(c.blasThreads || Math.max(1, Math.floor(availableParallelism() / c.trainers)))],
  };
}

/**
 * The warning `run` and `up` print for --resume (flag or PANGEA_RESUME) without a job id (flag or PANGEA_JOB_ID):
 * each start then names a new job-<timestamp>, which has no checkpoint, so the orchestrator starts fresh as
 * --resume allows, and a user restarting a killed job would train it again from step 0 without a word. A boolean
 * flag reaches the services as the bare `--resume` (the parser refuses a value), a valued one as `--job-id X`.
 */
export function resumeWithoutJobId(orchestratorArgs: readonly string[], env: NodeJS.ProcessEnv): string | null {
  const byFlag = orchestratorArgs.includes("--resume");
  if (!byFlag && !envFlagOn(env.PANGEA_RESUME)) return null;
  if (orchestratorArgs.includes("--job-id") || envGiven(env.PANGEA_JOB_ID)) return null;
  return `warning: ${byFlag ? "--resume" : "PANGEA_RESUME"} without --job-id: this start is a new job (job-<timestamp>) with no checkpoint to resume; give the same --job-id on every start to continue a job\n`;
}

const TERMINAL = new Set(["JOB_STATE_COMPLETED", "JOB_STATE_FAILED"]);
/** How long a run goes on with no trainer at all (its own exited, none started by hand in session) before it ends. */
const TRAINERLESS_MS = 5_000;
/** A stable error code (ORCH_ERR_MEMORY_LIMIT, TRAINER_ERR_...) in a process's last line: it said why it stopped. */
const ERROR_CODE = /\b[A-Z]+_ERR_[A-Z0-9_]+\b/;

/**
 * `run --json`'s status when the run ended without the job's own end (a process it needed died, an interrupt): the
 * newest status read (none: only these fields), its state JOB_STATE_FAILED and its error why the run stopped, and
 * `stoppedByRun` true, so a script reading `state` never takes a stopped job for a running one.
 */
function stoppedJson(s: JobStatus__Output | null, why: string, exitCode: number): string {
  return statusJson({ ...(s ?? {}), state: "JOB_STATE_FAILED", error: why, errorExitCode: exitCode, stoppedByRun: true } as unknown as JobStatus__Output);
}

export async function runCommand(c: RunConfig): Promise<number> {
  const out = c.json ? process.stderr : process.stdout;
  claimLogDir(c.logDir, true);
  // Certificates first: a --tls-dir that cannot hold them stops the run before it says it starts anything.
  const admin = prepareTls(c);
  out.write(`starting ${c.trainers} trainer${c.trainers === 1 ? "" : "s"}, 1 compute, 1 orchestrator${c.psShards > 1 ? ` + ${c.psShards - 1} parameter-server shard${c.psShards === 2 ? "" : "s"}` : ""} (logs in ${c.logDir})\n`);
  out.write(resumeWithoutJobId(c.args.orchestrator, process.env) ?? "");
  if (admin) out.write(`mutual TLS between the processes, certificates in ${c.tlsDir}\n`);
  // A signal while the processes start ends this one at once (they stop when its stdin pipe closes), and its exit releases the log directory.
  let cluster: LocalCluster | null = null;
  // The cluster while it starts too: a job resumed while its trainers boot has a checkpoint to name already.
  let starting: LocalCluster | null = null;
  /** The newest status read: with --json, what a run that ends without the job's own end prints (stoppedJson). */
  let last: JobStatus__Output | null = null;
  // Before stopAll: an interrupt ends the bar, so its line does not run into the bar's.
  const progress = new ProgressPrinter(out as NodeJS.WriteStream);
  // Interrupted mid-job: where its checkpoints are and how to go on, as after a process it needed died.
  const stopAll = (signal: NodeJS.Signals) =>
    void ((cluster ?? starting)?.stop() ?? Promise.resolve()).finally(() => {
      progress.done();
      const log = (cluster ?? starting)?.process("orchestrator")?.logPath;
      const hint = log ? resumeHint(log, (job) => `the same command with --resume --job-id ${job} continues from the newest intact one`) : null;
      if (c.json) process.stdout.write(`${stoppedJson(last, `pangea run was interrupted (${signal})`, 130)}\n`);
      if (hint) process.stderr.write(`pangea run: interrupted; ${hint}\n`);
      process.exit(130);
    });
  process.once("SIGINT", stopAll);
  process.once("SIGTERM", stopAll);
  try {
    cluster = await LocalCluster.start({ ...clusterOptions(c, false), onSpawn: (started) => (starting = started) });
  } catch (err) {
    // A process that refused to start (its configuration, or the checkpoint it read) ends the run before any status:
    // --json still prints one, so a script reading stdout learns why and the exit code to expect.
    if (c.json) process.stdout.write(`${stoppedJson(null, (err as Error).message, err instanceof ClusterError ? err.exitCode : 1)}\n`);
    throw err;
  }
  out.write(`${addressesLine(cluster)}\n`);
  const status = new StatusClient(cluster.orchestratorAddress, admin);
  let final: JobStatus__Output | null = null;
  let failed: string | null = null;
  let failedOwnReason = false;
  let sync: SyncSummary | null = null;
  // A trainer that dies is the orchestrator's to handle (its batches go to the others) while any trainer is left.
  // Trainers started by hand against this run's orchestrator train on too: those in session at the newest status (a
  // registration that never opened one trains nothing and is dropped).
  const own = new Set(cluster.trainers().map((t) => t.name));
  const byHand = (s: JobStatus__Output | null) => (s?.workers ?? []).filter((w) => w.kind === "WORKER_KIND_TRAINER" && w.alive && w.connected && !own.has(w.workerId)).length;
  const failure = cluster.firstFailure((p) => {
    const left = cluster.trainersRunning();
    const elsewhere = byHand(last);
    const goesOnWith = left + elsewhere;
    // With --on-trainer-loss fail the orchestrator fails the job: the run ends here, not "the job goes on".
    if (!p.name.startsWith("trainer-") || goesOnWith === 0 || c.onTrainerLoss === "fail") return false;
    // Ended by the job's own failure (the orchestrator told it so): the summary gives the reason; the job does not go on.
    if (p.lastLine.includes("TRAINER_ERR_JOB_FAILED")) return true;
    const others = elsewhere > 0 ? ` (${elsewhere} not started by this run)` : "";
    out.write(`${p.name} exited with code ${p.exitCode} (${p.lastLine || "no output"}; log: ${p.logPath}); the job goes on with ${goesOnWith} trainer${goesOnWith === 1 ? "" : "s"}${others}\n`);
    return true;
  }).then((p) => {
    failed = `${p.name} exited with code ${p.exitCode}: ${p.lastLine || "(no output)"} (log: ${p.logPath})`;
    failedOwnReason = ERROR_CODE.test(p.lastLine);
  });
  // Since when neither a trainer of this run's nor one started by hand is there (null: one is).
  let trainerless: number | null = null;
  try {
    await status.connect(10_000);
    while (!failed) {
      const s = await status.get();
      last = s;
      progress.update(s);
      if (TERMINAL.has(s.state)) {
        final = s;
        break;
      }
      // Its own trainers gone, the run went on for those started by hand: once they are gone too (for a few seconds: one
      // that reconnects is away a moment), it ends as when its own last trainer died.
      trainerless = cluster.trainersRunning() > 0 || byHand(s) > 0 ? null : (trainerless ?? Date.now());
      if (trainerless !== null && Date.now() - trainerless > TRAINERLESS_MS) {
        failed = `no trainer is left: this run's have exited, and none started by hand is in session with the orchestrator (for ${TRAINERLESS_MS / 1000} s)`;
        break;
      }
      // A status call is cheap: polling often ends the run within 0.2 s of the job.
      await Promise.race([new Promise((r) => setTimeout(r, 200)), failure]);
    }
    // A process that failed may have taken the job down with it: ask for the job's own reason too. One that said why (an
    // error code) is the reason; one killed without a word (kill -9, the OOM killer) is explained by the job's state, which
    // the orchestrator reaches only once it sees the process's session close: wait a moment for it.
    if (!final) final = await status.get().catch(() => null);
    for (const until = Date.now() + 1_000; final && !TERMINAL.has(final.state) && !failedOwnReason && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 50));
      final = (await status.get().catch(() => null)) ?? final;
    }
    // Parameter sync's figures are on the orchestrator's HTTP side (the dashboard's /status.json), not in JobStatus.
    if (final && c.servingSync && cluster.dashboardAddress) sync = await fetchSyncSummary(cluster.dashboardAddress, c.metricsToken);
  } catch (err) {
    // The orchestrator stopped answering; a crashed process explains why better than the failed call.
    await Promise.race([failure, new Promise((r) => setTimeout(r, 1_000))]);
    if (!failed) failed = (err as Error).message;
  } finally {
    progress.done();
    status.close();
    await cluster.stop();
  }
  if (final) {
    // A process that failed ends the run while the orchestrator still reports the job running: say it was stopped.
    const ended = final.state === "JOB_STATE_COMPLETED" || final.state === "JOB_STATE_FAILED";
    out.write(`${formatSummary(final, c.trainers, sync, Boolean(failed) && !ended)}\n`);
    if (c.json && !failed) process.stdout.write(`${statusJson(final)}\n`);
  }
  if (final?.state === "JOB_STATE_COMPLETED") {
    // Trained, but the model did not reach --export-dir: not a success to a script that serves what it exports.
    if (final.exportError) {
      process.stderr.write(`pangea run: the job completed, but ${final.exportError}\n`);
      return 1;
    }
    return 0;
  }
  // A trainer that exits because the orchestrator ended the job only repeats the job's reason.
  const echoes = final?.state === "JOB_STATE_FAILED" && Boolean(final.error) && failed?.includes("TRAINER_ERR_JOB_FAILED");
  const reasons = [final?.error, echoes ? null : failed].filter((r): r is string => Boolean(r));
  const why = reasons.join("; ") || "the job did not complete";
  // A job that failed of itself has its own status; one a dead process stopped gets the newest status read, marked.
  if (c.json && failed) process.stdout.write(`${final && TERMINAL.has(final.state) ? statusJson(final) : stoppedJson(final ?? last, why, 1)}\n`);
  // The reasons quote flags and peers as given: escaped, so none can drive the terminal.
  process.stderr.write(`pangea run: job failed: ${printable(why, 8192)}\n`);
  // A process died under a job that had not failed itself, the job was aborted for a lost worker (a shard, a trainer under
  // --on-trainer-loss fail), or a checkpoint could not be written (a full disk): its earlier checkpoints can carry it on.
  const orchestratorLog = cluster.process("orchestrator")?.logPath;
  const resumable = final?.state === "JOB_STATE_FAILED" && /^ORCH_ERR_(JOB_ABORTED|CHECKPOINT_IO):/.test(final.error);
  // A full disk fails the same way again on resume unless room is made: a checkpoint is written whole before the oldest
  // beyond --keep-checkpoints is removed, so the disk must hold one more than that.
  const full = resumable && /\bENOSPC\b|no space left/i.test(final!.error) ? "free space there first, e.g. by removing its oldest step-N directories (a new checkpoint is written whole before the oldest beyond --keep-checkpoints is removed, so the disk must hold one more than --keep-checkpoints; a lower --keep-checkpoints keeps it from filling again); then " : "";
  const hint = ((failed && final?.state !== "JOB_STATE_FAILED") || resumable) && orchestratorLog ? resumeHint(orchestratorLog, (job) => `${full}the same command with --resume --job-id ${job} continues from the newest intact one`) : null;
  if (hint) process.stderr.write(`pangea run: ${hint}\n`);
  // A job failed on its configuration (a flag its data or checkpoint contradicts) exits as a bad flag does, whichever
  // process's exit the failure caused reached this one first.
  return final?.state === "JOB_STATE_FAILED" && final.errorExitCode === 2 ? 2 : 1;
}
