import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { makeDirs, processExists, processStartTime } from "@pangea/kit";

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
  writeFileSync(path, `${JSON.stringify(state, null, 2)}\n`);
}

export function readState(path = STATE_FILE): LocalState | null {
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, "utf8")) as LocalState;
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
