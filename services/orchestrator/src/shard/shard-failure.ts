import type { PangeaError } from "@pangea/kit";
import { OrchestratorErrors } from "../errors.js";

/**
 * The conditions a parameter-server shard cannot train past: it ends its
 * process, and says why first (ReportFailure) so the job fails with the
 * reason, not with "disconnected". A report of any other code is refused:
 * a shard's word may end the job only for what a shard ends itself for.
 */
export const SHARD_FATAL_CODES: ReadonlySet<string> = new Set(["ORCH_ERR_MEMORY_LIMIT", "ORCH_ERR_BAD_JOB_CONFIG"]);

/** A reason longer than this is cut: it becomes the job's error, which every status call carries. */
const MAX_REASON_CHARS = 1_000;

export function isShardFatal(err: PangeaError): boolean {
  return SHARD_FATAL_CODES.has(err.code);
}

/**
 * The job's error for a shard's report: the shard's own code (its exit code
 * too: a flag the job contradicts is a usage error), its message on one line.
 */
export function shardFailure(code: string, message: string, where: string): PangeaError {
  if (!SHARD_FATAL_CODES.has(code)) {
    throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `failure report from ${where} with code ${JSON.stringify(code.slice(0, 60))}: expected one of ${[...SHARD_FATAL_CODES].join(", ")}`);
  }
  // Only the head of a long message is read: a report may be as large as a gRPC message.
  const long = message.length > 8 * MAX_REASON_CHARS;
  const line = (long ? message.slice(0, 8 * MAX_REASON_CHARS) : message).replace(/\s+/g, " ").trim();
  if (!line) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `failure report from ${where} without a message`);
  const cut = long || line.length > MAX_REASON_CHARS ? `${cutAt(line, Math.min(line.length, MAX_REASON_CHARS))}... (cut)` : line;
  return OrchestratorErrors.create(code as keyof typeof OrchestratorErrors.registry, `${where} failed: ${cut}`);
}

/** The first `n` UTF-16 units of `text`, one fewer where the n-th would split a surrogate pair (a character beyond the BMP). */
function cutAt(text: string, n: number): string {
  const last = text.charCodeAt(n - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? n - 1 : n);
}
