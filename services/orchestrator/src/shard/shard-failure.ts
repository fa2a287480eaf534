import { printable, type PangeaError } from "@pangea/kit";
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
 * too: a flag the job contradicts is a usage error), its message on one line
 * (line breaks and other control characters escaped, as every echo of a peer's text is).
 */
export function shardFailure(code: string, message: string, where: string): PangeaError {
  if (!SHARD_FATAL_CODES.has(code)) {
    throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `failure report from ${where} with code ${JSON.stringify(code.slice(0, 60))}: expected one of ${[...SHARD_FATAL_CODES].join(", ")}`);
  }
  const text = message.trim();
  if (!text) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `failure report from ${where} without a message`);
  // One line, cut (printable reads no further than it shows, however large the report).
  const cut = printable(text, MAX_REASON_CHARS);
  return OrchestratorErrors.create(code as keyof typeof OrchestratorErrors.registry, `${where} failed: ${cut}`);
}

