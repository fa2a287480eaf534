import * as grpc from "@grpc/grpc-js";
import { PangeaError, TokenBucket, printable, type Logger } from "@pangea/kit";

// Details echo what peers sent (ids, names, record bytes); escape them once here.
const DETAILS_MAX = 2048;

/** Where errors answered INTERNAL are logged, and how often (a client that can cause one can cause thousands). */
let internalSink: { log: Logger; bucket: TokenBucket; suppressed: number } | null = null;

/**
 * Logs every error answered INTERNAL (no PangeaError: a defect of ours, or a library's error we did not map; or a
 * PangeaError of status INTERNAL, a bug we detected) with its stack, and how many were not logged since the last (at
 * most 5 at once, then 1 a second); each service's main passes its logger. The caller sees only the message.
 */
export function reportInternalErrors(log: Logger): void {
  internalSink = { log, bucket: new TokenBucket(5, 1), suppressed: 0 };
}

/** An error about to be answered: logged (see reportInternalErrors) if it is an internal one. */
export function noteIfInternal(err: unknown): void {
  if (!internalSink || (err instanceof PangeaError && err.status !== "INTERNAL")) return;
  if (!internalSink.bucket.take()) {
    internalSink.suppressed++;
    return;
  }
  const notLogged = internalSink.suppressed ? { notLoggedBefore: internalSink.suppressed } : {};
  internalSink.log.error({ err: (err as Error)?.stack ?? String(err), ...notLogged }, "a call was answered INTERNAL (an error of ours, not the caller's)");
  internalSink.suppressed = 0;
}

/** Turns any thrown value into a gRPC error for a handler's callback: the edge where codes become statuses. */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  noteIfInternal(err);
  if (err instanceof PangeaError) {
    return { code: grpc.status[err.status], details: `${err.code}: ${printable(err.message, DETAILS_MAX)}` };
  }
  return { code: grpc.status.INTERNAL, details: `internal error: ${printable((err as Error)?.message ?? String(err), DETAILS_MAX)}` };
}

/** A one-line description of a failed call, naming the peer; the peer's text is escaped (it may hold anything). */
export function describeCallError(err: unknown, peer: string): string {
  const e = err as grpc.ServiceError;
  if (typeof e?.code === "number") return `${peer}: ${grpc.status[e.code]}: ${printable(oneLineDetails(e.details || e.message), DETAILS_MAX)}`;
  return `${peer}: ${printable((err as Error)?.message ?? String(err), DETAILS_MAX)}`;
}

/** A call's status details on one line: grpc-js ends a connection failure's with an empty "Resolution note: ", and OpenSSL's reasons hold line breaks. */
export function oneLineDetails(details: string): string {
  return details.replace(/\s*Resolution note:\s*$/, "").replace(/\s*\n\s*/g, " ").replace(/ \./g, ".");
}

export function isStatus(err: unknown, code: grpc.status): boolean {
  return (err as grpc.ServiceError)?.code === code;
}

/** The error code a peer's status details start with (toServiceError writes them so: "CODE: message"), or null. */
export function remoteCode(err: unknown): string | null {
  const details = (err as grpc.ServiceError)?.details;
  return (typeof details === "string" && /^([A-Z][A-Z0-9]*_ERR_[A-Z0-9_]+): /.exec(details)?.[1]) || null;
}
