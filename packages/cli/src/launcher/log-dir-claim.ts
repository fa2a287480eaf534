import { join, resolve } from "node:path";
import { makeDirs, ProcessLock, unwritableDirReason, UsageError } from "@pangea/kit";
import { ClusterError } from "../cluster-error.js";
import { readState, stillRunning } from "../commands/local-state.js";

/** In the log directory, while a `pangea run` writes its processes' logs there. */
export const RUN_LOCK_FILE = "run.lock";

/**
 * A local cluster's processes truncate their log files when they start: a
 * second cluster logging to the same directory would cut the first's logs
 * mid-run (and leave the two interleaved). `pangea run` holds the directory
 * until it exits; `pangea up` checks it is free (its cluster.json then says
 * whose logs are there).
 */
export function claimLogDir(logDir: string, hold: boolean): ProcessLock | null {
  const up = readState();
  const dir = resolve(logDir);
  if (up && up.processes.some((p) => stillRunning(p) && resolve(p.log).startsWith(`${dir}/`))) {
    throw new ClusterError(`the local cluster 'pangea up' started (orchestrator ${up.orchestrator}) writes its logs to ${logDir}; run 'pangea down' first, or give this one another --log-dir`, 1);
  }
  const problem = unwritableDirReason(logDir);
  // A flag's value that cannot work: worded, and pointed to --help, as every other bad flag is.
  if (problem) throw new UsageError(`invalid --log-dir: ${problem}`);
  makeDirs(logDir);
  const taken = ProcessLock.acquire(join(logDir, RUN_LOCK_FILE));
  if (taken.heldBy !== undefined) throw new ClusterError(`another pangea run (${taken.heldBy}) writes its logs to ${logDir}; wait for it to end, or give this one another --log-dir`, 1);
  if (hold) return taken.lock;
  taken.lock.release();
  return null;
}
