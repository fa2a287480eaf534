import * as grpc from "@grpc/grpc-js";
import { diagnoseConnection, isWrongPort } from "./security/tls-diagnosis.js";
import type { ServiceRole } from "./security/roles.js";
import { transportSecurity, type TransportSecurity } from "./security/transport-security.js";
import { RpcErrors } from "./errors.js";
import { describeCallError, isStatus, remoteCode } from "./status.js";
import type { Logger } from "@pangea/kit";

/**
 * Waits until a client's channel is connected, or fails with one clear error
 * naming the peer and its address; gRPC would otherwise retry silently forever.
 * `wrongPortHint` (e.g. " (--orchestrator takes ...)") follows the message
 * when what answers there is another kind of port: an HTTP/1 one, or a
 * server of another role.
 */
export function waitReady(client: grpc.Client, peer: string, address: string, timeoutMs: number, security: TransportSecurity | null = transportSecurity(), expected: readonly ServiceRole[] = [], wrongPortHint = ""): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => {
      if (!err) return resolve();
      // A TLS mismatch, an HTTP/1 port or a server of another role looks like an unreachable peer to gRPC: say which it is.
      void diagnoseConnection(address, security, expected).then((d) => {
        const hint = isWrongPort(d) ? wrongPortHint : "";
        reject(RpcErrors.create(d.kind === "role" ? "RPC_ERR_WRONG_PEER" : "RPC_ERR_UNREACHABLE", `cannot reach ${peer} at ${address} within ${(timeoutMs / 1000).toFixed(1)}s${d.reason}${hint}`, { cause: err }));
      });
    });
  });
}

/** Calls a unary method as a promise, turning a failure into an error that names the peer. */
export function unary<Req, Res>(
  peer: string,
  call: (req: Req, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req,
  deadlineMs?: number,
  /** Cancels the call (it then fails with CANCELLED). */
  signal?: AbortSignal,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const opts: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
    const pending = call(req, new grpc.Metadata(), opts, (err, res) => {
      signal?.removeEventListener("abort", cancel);
      if (err) reject(err);
      else resolve(res as Res);
    }) as grpc.ClientUnaryCall | undefined;
    function cancel() {
      pending?.cancel();
    }
    if (signal?.aborted) cancel();
    else signal?.addEventListener("abort", cancel, { once: true });
  });
}

/** How often a registration refused because the caller's place is held, or for the rate of registrations, asks again. */
export const PLACE_HELD_RETRY_MS = 1_000;

/**
 * Runs `attempt` (a registration with the orchestrator at `orchestrator`) until it is refused neither with
 * ALREADY_EXISTS, which the orchestrator answers while another process holds the caller's place with an open session
 * (the caller's own former connection not yet seen closed, or one that took its id while it was stopped), nor with
 * ORCH_ERR_RATE_LIMITED, which it answers while trainers register faster than its limit (a burst of restarts, or a
 * client cycling registrations): asks again every PLACE_HELD_RETRY_MS until `deadline`, logging the first refusal of
 * each kind (a held place as `held`, e.g. "another process holds trainer t-0's place"). Any other failure, or one past
 * the deadline, is thrown.
 */
export async function whilePlaceHeld<T>(attempt: (timeoutMs: number) => Promise<T>, deadline: number, log: Logger, orchestrator: string, held: string): Promise<T> {
  const told = new Set<string>();
  for (;;) {
    try {
      return await attempt(Math.max(1, deadline - Date.now()));
    } catch (err) {
      const kind = isStatus(err, grpc.status.ALREADY_EXISTS) ? `${held}; asking again every ${PLACE_HELD_RETRY_MS} ms until it is gone`
        : remoteCode(err) === "ORCH_ERR_RATE_LIMITED" ? `the orchestrator refused the registration for the rate of registrations; asking again every ${PLACE_HELD_RETRY_MS} ms`
        : null;
      if (!kind || Date.now() + PLACE_HELD_RETRY_MS >= deadline) throw err;
      if (!told.has(kind)) log.warn({ orchestrator, why: describeCallError(err, `orchestrator at ${orchestrator}`) }, kind);
      told.add(kind);
      await new Promise((wait) => setTimeout(wait, PLACE_HELD_RETRY_MS));
    }
  }
}
