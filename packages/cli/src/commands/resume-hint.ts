import { existsSync } from "node:fs";
import { basename, dirname } from "node:path";
import { printable } from "@pangea/kit";
import { readTail } from "../launcher/log-tail.js";

/** The orchestrator logs a checkpoint once its part is written; its log's tail is enough to find the newest. */
const TAIL_BYTES = 4 << 20;

/**
 * Where a job's checkpoints are, said after a process it needed died (the
 * orchestrator killed, compute gone with no trainer left): the job, its
 * checkpoint directory and the newest written, then `next(job)`, how to go
 * on. Found from the orchestrator's log ("checkpoint saved" names the path
 * and the job; a resumed run's "resuming" the checkpoint it resumed from),
 * so it holds whatever --checkpoint-dir and --job-id the services resolved,
 * defaults and environment included. Null when no checkpoint was written or
 * resumed from (or it is gone).
 */
export function resumeHint(orchestratorLog: string, next: (job: string) => string): string | null {
  let newest: { path: string; job: string } | null = null;
  for (const line of readTail(orchestratorLog, TAIL_BYTES).split("\n")) {
    if (!line.includes('"checkpoint saved"') && !line.includes('"resuming"')) continue;
    try {
      const r = JSON.parse(line) as { msg?: string; path?: unknown; step?: unknown; job?: unknown };
      // A resumed run's checkpoint to go on from is the one it resumed from until it writes one.
      const saved = r.msg === "checkpoint saved" && typeof r.step === "number";
      if ((saved || r.msg === "resuming") && typeof r.path === "string" && typeof r.job === "string") newest = { path: r.path, job: r.job };
    } catch {
      // A line cut by the tail's start, or by the process dying mid-write.
    }
  }
  if (!newest || !existsSync(newest.path)) return null;
  const jobDir = printable(dirname(newest.path));
  const job = printable(newest.job);
  // Another shard's part may be missing: --resume takes the newest checkpoint that is whole, which may be an older one.
  return `checkpoints of job ${job} are in ${jobDir} (newest written: ${printable(basename(newest.path))}); ${next(job)}`;
}
