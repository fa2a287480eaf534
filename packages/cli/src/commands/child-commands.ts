import { spawn } from "node:child_process";
import { constants } from "node:os";
import { join } from "node:path";
import { holdLauncherPipe, launcherPipeEnv, printable, SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS } from "@pangea/kit";
import { ClusterError } from "../cluster-error.js";
import { REPO_ROOT } from "../repo-root.js";

/**
 * Runs one of the services' entry points as this command, in the foreground:
 * the child's process group gets the signals the CLI gets (it is a group of
 * its own, so a terminal's Ctrl-C reaches it once, through us), and the CLI exits with
 * the child's code, or 128 + the signal that ended it.
 */
function runChild(args: string[], program?: string, serviceEnv: Readonly<Record<string, string>> = {}, exitWithCli = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      // A service holds a pipe from this process on its stdin: if this process dies in any way (kill -9), the service
      // reads end-of-file and stops as on SIGTERM (runMain), instead of running on holding its ports.
      stdio: [exitWithCli ? "pipe" : "inherit", "inherit", "inherit"],
      detached: true,
      env: { ...serviceEnv, ...process.env, ...(program ? { PANGEA_CLI_PROGRAM: program } : {}), ...(exitWithCli ? launcherPipeEnv() : {}) },
    });
    holdLauncherPipe(child);
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

/**
 * `pangea gen-data`: runs the compute service's data writer. It holds one chunk at a time (a Parquet row group: about
 * 250 MiB while it is encoded) and, allowed to, asks for a collection as it goes (gen-data's collectGarbage): V8 alone
 * lets the written chunks' garbage grow the heap towards its limit.
 */
export function genDataCommand(argv: string[]): Promise<number> {
  // Held by the launcher pipe, as a service: a CLI killed with -9 does not leave the writer running on to rename its file.
  return runChild(["--expose-gc", join(REPO_ROOT, "services/compute/dist/gen-data.js"), ...argv], undefined, {}, true);
}

/** `pangea export`: a servable model version from a checkpoint (services/orchestrator/dist/export.js). */
export function exportCommand(argv: string[]): Promise<number> {
  return runChild([join(REPO_ROOT, "services/orchestrator/dist/export.js"), ...argv], "pangea export", {}, true);
}

/** `pangea serve`: runs the serving service in the foreground (services/serving/dist/main.js). */
export function serveCommand(argv: string[]): Promise<number> {
  // The services' heap settings (packages/kit: V8 flags for fewer collections mid-request, malloc thresholds for large buffers).
  return runChild([...SERVICE_V8_FLAGS, join(REPO_ROOT, "services/serving/dist/main.js"), ...argv], "pangea serve", SERVICE_MALLOC_ENV, true);
}

/** `pangea bench [RECORDS]`: the first two of `make bench`'s benchmarks (scripts/bench.mjs on RECORDS records, then the table benchmark at its default size). */
export async function benchCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write("Usage: pangea bench [records]\n\nRuns the first two of make bench's benchmarks: data pipeline, trainer step rate and serving latency on [records] records (default 100000), then the embedding tables (10,000,000 rows); prints figures and ratios from one invocation. make bench also runs the streamed-data, parsing and training-vs-PyTorch benchmarks.\n");
    return 0;
  }
  const problem =
    argv.length > 1 ? `expected at most one argument, a number of records; got ${argv.length}: ${printable(argv.join(" "), 120)}` : argv.length === 1 && !/^[1-9]\d{0,8}$/.test(argv[0]!) ? `expected a number of records, a whole number from 1 to 999999999; got ${printable(JSON.stringify(argv[0]), 60)}` : null;
  if (problem) {
    process.stderr.write(`pangea bench: ${problem}\nRun 'pangea bench --help' for usage.\n`);
    return 2;
  }
  // The records are bench.mjs's; the table benchmark's first argument is a number of rows, left at its default.
  const code = await runChild([join(REPO_ROOT, "scripts/bench.mjs"), ...argv]);
  return code !== 0 ? code : runChild([join(REPO_ROOT, "scripts/bench-tables.mjs")]);
}
