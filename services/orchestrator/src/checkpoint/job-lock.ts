import { existsSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { makeDirs, ProcessLock, type LockLost, type LockSeen, type Logger } from "@pangea/kit";
import { JOB_LOCK_FILE } from "@pangea/model";
import { OrchestratorErrors } from "../errors.js";
import { jobCheckpointDir } from "./checkpoint.js";

/** The lock's file, in the job's checkpoint directory (checkpoint listings only read step-N names). */
export { JOB_LOCK_FILE };

/**
 * One orchestrator at a time per job's checkpoints: two runs of one --job-id
 * would write and prune each other's step directories (a commit removes the
 * half-written ones it finds), so the second refuses to start. Returns the
 * lock, or throws ORCH_ERR_JOB_IN_USE naming the process that holds it.
 */
export async function lockJob(checkpointDir: string, jobId: string, log: Logger, onLost: LockLost): Promise<ProcessLock> {
  const dir = jobCheckpointDir(checkpointDir, jobId);
  const path = join(dir, JOB_LOCK_FILE);
  // Only a directory this run made is removed when it ends empty (one the user made stays).
  const made = !existsSync(dir);
  const take = (seen?: LockSeen) => {
    try {
      makeDirs(dir);
      try {
        return ProcessLock.acquire(path, onLost, seen);
      } catch (err) {
        // The run before, ending, removed its empty directory between the two: made again, once.
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        makeDirs(dir);
        return ProcessLock.acquire(path, onLost, seen);
      }
    } catch (err) {
      throw OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_IO", `cannot create the job's lock ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  let taken = take();
  // A holder on another machine is known only by the file's age: a container or pod recreated after a kill -9 (another host
  // name) waits the stale time out once rather than exit into a restart loop. A holder that goes on touching the file is live.
  if (taken.goneInMs !== undefined) {
    const waitMs = taken.goneInMs + 1_000;
    // The holder and the wait in the message itself: pangea run passes on only a log line's message.
    const wait = `waiting ${Math.ceil(waitMs / 1000)} s`;
    log.warn(
      { lock: path, holder: taken.heldBy, waitMs: taken.goneInMs },
      taken.unwritten
        ? `the job's lock ${path} names no holder yet; ${wait} for a process writing it now`
        : `the job's lock is held from another machine, by ${taken.heldBy}; ${wait} to see whether that process still touches it`,
    );
    await new Promise((r) => setTimeout(r, waitMs));
    // A file left as it was for the wait is taken, whatever its time says (a clock ahead on the holder's machine).
    taken = take(taken.seen);
  }
  if (taken.lock) {
    // A run refused or failed before its first checkpoint leaves no empty job directory behind (after the lock's own
    // exit handler removed the lock file; rmdir removes only an empty directory).
    if (made) {
      process.on("exit", () => {
        try {
          rmdirSync(dir);
        } catch {
          // it holds checkpoints (or another's lock): kept
        }
      });
    }
    return taken.lock;
  }
  throw OrchestratorErrors.create("ORCH_ERR_JOB_IN_USE", `job ${jobId}'s checkpoints are in use by ${taken.heldBy}; a second run of the same --job-id would overwrite them`, {
    hint: `wait for that run to end or stop it, or give another --job-id; ${path} goes when it ends`,
  });
}
