import { constants as osConstants } from "node:os";
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { STALE_LOCK_MS, printable, holdLauncherPipe, launcherPipeEnv, SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS, makeDirs, mallocEnvForBudget, processStartTime } from "@pangea/kit";
import { ClusterError } from "../cluster-error.js";
import { REPO_ROOT } from "../repo-root.js";
import { exitReason, lastLogMessage } from "./log-tail.js";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";

export function serviceEntry(service: "orchestrator" | "compute" | "trainer"): string {
  return join(REPO_ROOT, "services", service, "dist", "main.js");
}

/** The flags every process of a cluster that finds the orchestrator through discovery is given. */
function discoveryArgs(opts: Pick<ClusterOptions, "discovery" | "clusterName">): string[] {
  return opts.discovery ? ["--discovery", opts.discovery, "--cluster-name", opts.clusterName ?? "pangea"] : [];
}

/**
 * The orchestrator's command line in a cluster: the cluster's own flags (where it listens, the trainers and shards it
 * waits for, discovery) and the caller's. `pangea run` checks the same line before it starts anything.
 */
export function orchestratorCommandLine(opts: Pick<ClusterOptions, "host" | "orchestratorPort" | "trainers" | "psShards" | "discovery" | "clusterName" | "orchestratorArgs" | "metricsPort">): string[] {
  return [
    "--host", opts.host ?? "127.0.0.1", "--port", String(opts.orchestratorPort ?? 0), "--trainers", String(opts.trainers), "--ps-shards", String(opts.psShards ?? 1), ...discoveryArgs(opts), ...opts.orchestratorArgs,
    ...(opts.metricsPort ? ["--metrics-port", String(opts.metricsPort)] : []),
  ];
}

/** How long the orchestrator may take to serve before its log's last message is passed on (it takes about a second). */
const SLOW_START_MS = 5_000;

export interface ClusterOptions {
  trainers: number;
  logDir: string;
  /** Flags passed through to each service. */
  orchestratorArgs: string[];
  computeArgs: string[];
  trainerArgs: string[];
  orchestratorPort?: number;
  computePort?: number;
  /** The orchestrator's /metrics and dashboard port (0 = any free port); the other processes take any free port. */
  metricsPort?: number;
  host?: string;
  /** How long a service may take to print its ready line (compute: none while it runs, as its first pass reads all the data). */
  startTimeoutMs?: number;
  /** Told every 30 s while compute, still running, reads its data before it is ready. */
  onComputeReading?: (seconds: number, logPath: string) => void;
  /** Told once when the orchestrator is not ready after SLOW_START_MS, with its log's last message (a lock it waits out). */
  onSlowStart?: (name: string, seconds: number, said: string, logPath: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Detach children so they outlive this process (`pangea up`). */
  detached?: boolean;
  /** Parameter-server shards in all (the orchestrator is shard 0); the others run as their own processes. */
  psShards?: number;
  /** Find the orchestrator through this (tf-config, etcd://...) instead of passing its address to every process. */
  discovery?: string;
  clusterName?: string;
  /** Mutual TLS: every process gets the directory (--tls-dir), each trainer its per-worker certificate trainer-i. */
  tlsDir?: string;
  /** Told after each process is spawned (`pangea up` records them at once: a detached process outlives a launcher killed while starting). */
  onSpawn?: (cluster: LocalCluster) => void;
  /** Aborted while starting: every process started is stopped, and start rejects. */
  signal?: AbortSignal;
}

export interface ClusterProcess {
  name: string;
  entry: string;
  args: string[];
  child: ChildProcess;
  logPath: string;
  /** Last line the process wrote to stderr: its one-line error when it fails. */
  lastLine: string;
  exitCode: number | null;
  exited: Promise<number>;
}

/**
 * Runs a cluster as local processes: one orchestrator, one compute service
 * and N trainers, each logging to its own file under logDir. The
 * orchestrator starts first and must print its ready line (with the address
 * it really bound); then the shards, compute and trainers start together,
 * each waited for until it prints its own.
 */
export class LocalCluster {
  readonly processes: ClusterProcess[] = [];
  orchestratorAddress = "";
  /** The orchestrator's HTTP side: /metrics and the live dashboard at /. */
  dashboardAddress = "";
  computeAddress = "";
  /** Each trainer's grpc.health.v1 endpoint. */
  trainerAddresses: string[] = [];
  /** Parameter-server shards 1.. (shard 0 is the orchestrator). */
  shardAddresses: string[] = [];
  private stopping = false;

  private constructor(private readonly opts: ClusterOptions) {}

  static async start(opts: ClusterOptions): Promise<LocalCluster> {
    makeDirs(opts.logDir);
    const c = new LocalCluster(opts);
    const abort = () => void c.stop();
    opts.signal?.addEventListener("abort", abort, { once: true });
    try {
      const host = opts.host ?? "127.0.0.1";
      const shards = opts.psShards ?? 1;
      const disc = discoveryArgs(opts);
      c.orchestratorAddress = await c.startService("orchestrator", serviceEntry("orchestrator"), orchestratorCommandLine(opts));
      c.dashboardAddress = readyLine(c.process("orchestrator")!.logPath)?.metrics ?? "";
      // With discovery, nobody is told where the orchestrator is: they look it up.
      const where = (flag: string) => (opts.discovery ? disc : [flag, c.orchestratorAddress]);
      // Shards, compute and trainers need only the orchestrator: they start
      // together (a job starts once all have registered), so their boots
      // overlap instead of adding up. Spawned in this order, so `processes`
      // (and `pangea up`'s cluster.json) list them in it.
      const shardsReady = Promise.all(
        Array.from({ length: shards - 1 }, (_, k) =>
          c.startService(`shard-${k + 1}`, serviceEntry("orchestrator"), [
            "--role", "shard", "--shard-index", String(k + 1), "--ps-shards", String(shards), ...where("--coordinator"),
            "--host", host, "--port", "0", "--worker-id", `shard-${k + 1}`, ...opts.orchestratorArgs,
          ]),
        ),
      );
      const computeReady = c.startService("compute", serviceEntry("compute"), [
        "--host", host, "--port", String(opts.computePort ?? 0), ...where("--orchestrator"), ...opts.computeArgs,
      ]);
      const trainersReady = Promise.all(
        Array.from({ length: opts.trainers }, (_, i) =>
          c.startService(`trainer-${i}`, serviceEntry("trainer"), [
            "--host", host, "--port", "0", ...where("--orchestrator"), "--worker-id", `trainer-${i}`, ...(opts.tlsDir ? ["--tls-name", `trainer-${i}`] : []), ...opts.trainerArgs,
          ]),
        ),
      );
      // The first failure names its process; the others are stopped below.
      [c.shardAddresses, c.computeAddress, c.trainerAddresses] = await Promise.all([shardsReady, computeReady, trainersReady]);
    } catch (err) {
      await c.stop();
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", abort);
    }
    return c;
  }

  /**
   * Every service runs with SERVICE_V8_FLAGS and SERVICE_MALLOC_ENV (the heap settings measured for them; the caller's
   * environment wins over the latter). Both output streams go straight to the log file (a file descriptor, not a
   * pipe), so a process keeps logging after a detached launcher has exited.
   */
  private spawnProcess(name: string, entry: string, args: string[]): ClusterProcess {
    // Stopped while starting (start's signal): nothing more is started.
    if (this.stopping) throw new ClusterError(`${name} not started: the cluster was stopped while starting`);
    // A restarted process logs to a new file (name.1.log, ...), keeping the earlier life's log.
    const lives = this.processes.filter((p) => p.name === name).length;
    const logPath = resolve(this.opts.logDir, lives ? `${name}.${lives}.log` : `${name}.log`);
    const fd = openSync(logPath, "w");
    // The processes' placement is the launcher's: PANGEA_METRICS_PORT, one port, would be every service's at once.
    const { PANGEA_METRICS_PORT: _placement, ...inherited } = process.env;
    const env = { ...inherited, ...this.opts.env };
    const flags = name === "compute" ? computeV8Flags(args, env) : SERVICE_V8_FLAGS;
    const malloc = name === "compute" ? computeMallocEnv(args, env) : SERVICE_MALLOC_ENV;
    const detached = this.opts.detached ?? false;
    // The TLS directory as the flag the user gave (a service names the flag, not a variable they never set, in its errors).
    const tls = this.opts.tlsDir ? ["--tls-dir", resolve(this.opts.tlsDir)] : [];
    const child = spawn(process.execPath, [...flags, entry, ...args, ...tls], {
      // Attached: stdin is a pipe this process holds open, so the service stops when this process dies (runMain).
      stdio: [detached ? "ignore" : "pipe", fd, fd],
      env: { ...malloc, ...env, ...(detached ? {} : launcherPipeEnv()) },
      detached,
    });
    closeSync(fd);
    holdLauncherPipe(child);
    let resolveExit!: (code: number) => void;
    const proc: ClusterProcess = { name, entry, args, child, logPath, lastLine: "", exitCode: null, exited: new Promise((r) => (resolveExit = r)) };
    child.on("exit", (code, signal) => {
      // Killed by a signal: the shell's convention, 128 + its number (SIGKILL: 137), and the signal named as the reason.
      proc.exitCode = code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1);
      proc.lastLine = signal ? `killed by ${signal}` : exitReason(logPath);
      resolveExit(proc.exitCode);
    });
    this.processes.push(proc);
    this.opts.onSpawn?.(this);
    return proc;
  }

  /** Starts a service and waits for the ready line it prints with the address it bound. */
  private async startService(name: string, entry: string, args: string[]): Promise<string> {
    const proc = this.spawnProcess(name, entry, args);
    // The orchestrator may wait out a job lock held from another machine (STALE_LOCK_MS) before it serves.
    const timeoutMs = (this.opts.startTimeoutMs ?? 30_000) + (name === "orchestrator" ? STALE_LOCK_MS : 0);
    const started = Date.now();
    // Compute reads and caches all of its data before it is ready: minutes for a large file. It has no
    // deadline while it runs (it exits by itself on bad data or an unreachable orchestrator).
    const reading = name === "compute";
    let told = started;
    let slowTold = name !== "orchestrator";
    for (;;) {
      const address = readyAddress(proc.logPath);
      if (address) return address;
      if (proc.exitCode !== null) {
        // Its configuration refused (2) is passed on; anything else (a crash, a kill: 137) is a process that failed, 1.
        throw new ClusterError(`${name} exited with code ${proc.exitCode} while starting: ${proc.lastLine || "(no output)"} (log: ${proc.logPath})`, proc.exitCode === 2 ? 2 : 1);
      }
      const now = Date.now();
      if (!reading && now - started > timeoutMs) {
        const said = lastLogMessage(proc.logPath);
        throw new ClusterError(`${name} did not become ready within ${timeoutMs / 1000}s${said ? `; its log's last line: ${printable(said, 300)}` : ""} (log: ${proc.logPath})`);
      }
      // It serves within a second unless it waits for something (a job lock held from another machine): said, not silent.
      if (!slowTold && now - started >= SLOW_START_MS) {
        slowTold = true;
        this.opts.onSlowStart?.(name, SLOW_START_MS / 1000, lastLogMessage(proc.logPath), proc.logPath);
      }
      if (reading && now - told >= 30_000) {
        told = now;
        this.opts.onComputeReading?.(Math.round((now - started) / 1000), proc.logPath);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  trainers(): ClusterProcess[] {
    return this.processes.filter((p) => p.name.startsWith("trainer-"));
  }

  /** Each running process's /metrics address (from its ready line), by process name. */
  metricsAddresses(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const p of this.processes) {
      const m = readyLine(p.logPath)?.metrics;
      if (m && p.exitCode === null) out[p.name] = m;
    }
    return out;
  }

  /** The newest life of a process, by name. */
  process(name: string): ClusterProcess | undefined {
    return this.processes.filter((p) => p.name === name).at(-1);
  }

  /**
   * Starts a process again with the arguments it had (plus `extraArgs`), after
   * it died or was killed; waits for its ready line. Tests use this to
   * restart a killed orchestrator, compute or trainer.
   */
  async restart(name: string, extraArgs: string[] = []): Promise<string> {
    const old = this.process(name);
    if (!old) throw new ClusterError(`no process named ${name}`);
    if (old.exitCode === null) throw new ClusterError(`${name} is still running (pid ${old.child.pid})`);
    return this.startService(name, old.entry, [...old.args, ...extraArgs]);
  }

  /** Starts one more trainer that joins the running job. */
  async addTrainer(name: string): Promise<string> {
    const host = this.opts.host ?? "127.0.0.1";
    const where = this.opts.discovery ? ["--discovery", this.opts.discovery, "--cluster-name", this.opts.clusterName ?? "pangea"] : ["--orchestrator", this.orchestratorAddress];
    return this.startService(name, serviceEntry("trainer"), ["--host", host, "--port", "0", ...where, "--worker-id", name, ...this.opts.trainerArgs]);
  }

  /** Resolves with the first process that exits with a non-zero code. */
  firstFailure(tolerated: (p: ClusterProcess) => boolean = () => false): Promise<ClusterProcess> {
    return new Promise((resolvePromise) => {
      for (const p of this.processes) void p.exited.then((code) => code !== 0 && !this.stopping && !tolerated(p) && resolvePromise(p));
    });
  }

  /** Trainers still running. */
  trainersRunning(): number {
    return this.processes.filter((p) => p.name.startsWith("trainer-") && p.exitCode === null).length;
  }

  /** SIGTERM every process still running, SIGKILL after graceMs. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    const running = this.processes.filter((p) => p.exitCode === null);
    for (const p of running) p.child.kill("SIGTERM");
    const timer = setTimeout(() => running.forEach((p) => p.exitCode === null && p.child.kill("SIGKILL")), graceMs);
    await Promise.all(running.map((p) => p.exited));
    clearTimeout(timer);
  }

  /** Pids and addresses, for `pangea down` and `pangea status` after `pangea up`. */
  describe(): { orchestrator: string; compute: string; processes: { name: string; pid: number; log: string; started: string | null }[] } {
    return {
      orchestrator: this.orchestratorAddress,
      compute: this.computeAddress,
      // A process that could not be spawned has no pid (its error event says why): nothing of it to stop.
      processes: this.processes.filter((p) => p.child.pid !== undefined).map((p) => ({ name: p.name, pid: p.child.pid!, log: p.logPath, started: processStartTime(p.child.pid!) })),
    };
  }
}

/** The ready line a service printed: its address, and any others it serves on (metrics, rest). */
function readyLine(logPath: string): { address: string; metrics?: string; rest?: string } | null {
  let text: string;
  try {
    text = readFileSync(logPath, "utf8");
  } catch {
    return null;
  }
  for (const line of text.split("\n")) {
    if (!line.startsWith('{"ready"')) continue;
    try {
      const msg = JSON.parse(line) as { ready?: string; address?: string; metrics?: string; rest?: string };
      if (msg.address) return msg as { address: string };
    } catch {
      // a partly written line; read again on the next poll
    }
  }
  return null;
}

function readyAddress(logPath: string): string | null {
  return readyLine(logPath)?.address ?? null;
}

/**
 * Compute's memory budget in MB as compute reads it (the last --max-memory-mb, else a non-empty
 * PANGEA_MAX_MEMORY_MB, else its default), or null when that is not a positive number (compute then refuses it).
 */
function computeBudgetMb(args: readonly string[], env: NodeJS.ProcessEnv): number | null {
  let given = env.PANGEA_MAX_MEMORY_MB || undefined;
  args.forEach((a, i) => {
    if (a === "--max-memory-mb") given = args[i + 1];
    else if (a.startsWith("--max-memory-mb=")) given = a.slice("--max-memory-mb=".length);
  });
  const mb = Number(given ?? DEFAULT_MAX_MEMORY_MB);
  return Number.isFinite(mb) && mb > 0 ? mb : null;
}

/**
 * Compute's heap flags: SERVICE_V8_FLAGS with its young generation inside
 * --max-memory-mb. A 64 MB semi-space alone exceeds a small budget: the pass
 * allocates garbage fast enough to grow it before a scavenge, and compute's
 * resident memory then went past a 64 MB budget by 6 MB in one of five runs
 * of test/e2e/streamed-data. A sixteenth of the budget, at most 64 MB.
 * The old generation's first limit is a quarter of the budget (at least
 * 16 MB, at most the services' 256 MB): with 256 MB, V8 let the old
 * generation's garbage grow unmarked while the machine was busy (82 and
 * 65 MB beyond the baseline in two of three runs of the same test), and the
 * batches' buffers that outlive a scavenge are freed only when the old
 * generation is marked. With an eighth and a half of a 64 MB budget the
 * test's compute peaked 51-65 MB beyond its baseline (one run past the
 * budget in a fresh-clone CI), with these 37-51 MB (seven runs each), for
 * about a tenth more CPU serving from the cache (1.30-1.45 s against
 * 1.44-1.55 s, three runs each, alternating).
 */
export function computeV8Flags(args: readonly string[], env: NodeJS.ProcessEnv): readonly string[] {
  const mb = computeBudgetMb(args, env);
  if (mb === null) return SERVICE_V8_FLAGS;
  const semiSpaceMb = Math.max(1, Math.min(64, Math.floor(mb / 16)));
  const oldSpaceMb = Math.max(16, Math.min(256, Math.floor(mb / 4)));
  return SERVICE_V8_FLAGS.map((f) => (f.startsWith("--max-semi-space-size=") ? `--max-semi-space-size=${semiSpaceMb}` : f.startsWith("--initial-old-space-size=") ? `--initial-old-space-size=${oldSpaceMb}` : f));
}

/** Compute's malloc settings: SERVICE_MALLOC_ENV within --max-memory-mb (see mallocEnvForBudget). */
export function computeMallocEnv(args: readonly string[], env: NodeJS.ProcessEnv): Readonly<Record<string, string>> {
  const mb = computeBudgetMb(args, env);
  return mb === null ? SERVICE_MALLOC_ENV : mallocEnvForBudget(mb);
}
