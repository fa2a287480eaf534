import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { MAX_MANIFEST_BYTES, readRegularFile } from "@pangea/kit";
import { CHECKPOINT_FORMAT } from "./export-format.js";

/**
 * What a directory is, told by what the orchestrator writes there: a
 * checkpoint (its manifest.json names CHECKPOINT_FORMAT), a job's checkpoint
 * directory (the orchestrator's lock, or step-N checkpoints), or a
 * --checkpoint-dir (it holds jobs' directories). The orchestrator keeps model
 * versions out of them; serving refuses them as a model base path.
 */

/** The file an orchestrator holds in its job's checkpoint directory while it runs. */
export const JOB_LOCK_FILE = "orchestrator.lock";

/** A directory of jobs (or a model base path) is looked at in part: its first entries only. */
const MAX_LOOKED = 1000;

/** The format a directory's manifest.json names (a checkpoint's or an export's), or undefined without a readable one (a FIFO, a device, a file above the manifests' size limit are none). */
export function manifestFormatOf(dir: string): unknown {
  if (!existsSync(join(dir, "manifest.json"))) return undefined;
  try {
    const text = readRegularFile(join(dir, "manifest.json"), "manifest.json", (msg) => new Error(msg), { maxBytes: MAX_MANIFEST_BYTES }).toString("utf8");
    return (JSON.parse(text) as { format?: unknown } | null)?.format;
  } catch {
    return undefined;
  }
}

export function isCheckpoint(dir: string): boolean {
  return manifestFormatOf(dir) === CHECKPOINT_FORMAT;
}

/** The step-N names among a directory's first entries (none when it cannot be listed). */
function stepNames(dir: string): string[] {
  try {
    return readdirSync(dir).slice(0, MAX_LOOKED).filter((name) => /^step-\d+$/.test(name));
  } catch {
    return [];
  }
}

/** The step-N checkpoints a directory holds, oldest first. */
export function checkpointsIn(dir: string): string[] {
  return stepNames(dir).filter((name) => isCheckpoint(join(dir, name))).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
}

/** A job's checkpoint directory: the orchestrator's lock, or a step-N checkpoint in it (the first found will do). */
export function isJobDirectory(dir: string): boolean {
  return existsSync(join(dir, JOB_LOCK_FILE)) || stepNames(dir).some((name) => isCheckpoint(join(dir, name)));
}

/** The first job whose checkpoint directory `dir` holds (a --checkpoint-dir), or null. */
export function jobDirectoryIn(dir: string): string | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  return names.slice(0, MAX_LOOKED).find((name) => isJobDirectory(join(dir, name))) ?? null;
}
