import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { makeDirs, printable, processExists, processStartTime } from "@pangea/kit";
import { ClusterError } from "../cluster-error.js";

/** What `pangea up` leaves behind for `pangea down` and `pangea status`. */
export interface LocalState {
  orchestrator: string;
  compute: string;
  /** `started`: the process's start time (processStartTime) when it was recorded, so a pid reused since is not taken for it. */
  processes: { name: string; pid: number; log: string; started?: string | null }[];
  /** The certificates the cluster runs with (pangea up --tls); status and down call with its admin certificate. */
  tlsDir?: string;
}

export const STATE_FILE = ".pangea/run/cluster.json";

export function writeState(state: LocalState, path = STATE_FILE): void {
  makeDirs(dirname(path));
  // Whole or not at all: up rewrites it as each process is spawned, and status or down may read it meanwhile.
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, path);
}

/** The state up wrote, or null without one; a file that is not one is an error naming it (nothing can be known of its processes). */
export function readState(path = STATE_FILE): LocalState | null {
  if (!existsSync(path)) return null;
  let state: unknown;
  let why = "";
  try {
    state = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    why = (err as Error).message;
  }
  const p = state as Partial<LocalState> | null;
  const processes = p && typeof p === "object" && Array.isArray(p.processes) ? p.processes : null;
  if (!why && (!processes || typeof p!.orchestrator !== "string" || !processes.every((x) => x && typeof x.name === "string" && Number.isSafeInteger(x.pid) && x.pid > 0 && typeof x.log === "string"))) {
    why = "expected the orchestrator's address and the processes 'pangea up' started (name, pid, log)";
  }
  if (why) {
    throw new ClusterError(`${path} is not the state 'pangea up' writes (${printable(why, 200)}): the processes it named cannot be known; stop any left by hand (ps) and delete ${path}`, 1);
  }
  return state as LocalState;
}

export function clearState(path = STATE_FILE): void {
  rmSync(path, { force: true });
}

/** Whether the recorded process still runs: its pid exists and, where its start time was recorded, started then (not a reused pid). */
export function stillRunning(p: { pid: number; started?: string | null }): boolean {
  if (!processExists(p.pid)) return false;
  if (!p.started) return true;
  const now = processStartTime(p.pid);
  return now === null || now === p.started;
}
