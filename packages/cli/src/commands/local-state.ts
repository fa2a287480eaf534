import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** What `pangea up` leaves behind for `pangea down` and `pangea status`. */
export interface LocalState {
  orchestrator: string;
  compute: string;
  processes: { name: string; pid: number; log: string }[];
  /** The certificates the cluster runs with (pangea up --tls); status and down call with its admin certificate. */
  tlsDir?: string;
}

export const STATE_FILE = ".pangea/run/cluster.json";

export function writeState(state: LocalState, path = STATE_FILE): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(state, null, 2)}\n`);
}

export function readState(path = STATE_FILE): LocalState | null {
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, "utf8")) as LocalState;
}

export function clearState(path = STATE_FILE): void {
  rmSync(path, { force: true });
}
