import { timingSafeEqual } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { toServiceError } from "../status.js";
import { describePeer, type ServiceRole } from "./roles.js";
import { peerIdentity } from "./transport-security.js";
import { RpcErrors } from "../errors.js";

/**
 * Who may call what, in one table. With TLS on, every call is checked
 * against it before its handler runs:
 * - a list of roles: the caller's certificate must carry one of them;
 * - "public": anyone, certificate or not (health checks);
 * - "client": serving's client-facing API: anyone, or with a bearer token
 *   when serving has one (--api-token-file); admin certificates pass too.
 * Without TLS there are no roles: every method is open, except on a server
 * with a token, where every method but "public" ones needs it.
 * A method missing from the table cannot be served at all (startServer
 * refuses it), so a new RPC is never open by accident.
 */
export type CallRule = readonly ServiceRole[] | "public" | "client";

const WORKERS: readonly ServiceRole[] = ["trainer", "compute", "shard"];

export const CALL_POLICY: Readonly<Record<string, CallRule>> = Object.freeze<Record<string, CallRule>>({
  "/grpc.health.v1.Health/Check": "public",
  "/grpc.health.v1.Health/Watch": "public",
  "/grpc.health.v1.Health/List": "public",
  // Orchestrator control plane. Which worker id a caller may act for is checked by the job (per-worker certificates).
  "/pangea.v1.Orchestrator/RegisterWorker": WORKERS,
  "/pangea.v1.Orchestrator/WorkerSession": WORKERS,
  "/pangea.v1.Orchestrator/Heartbeat": ["trainer"],
  "/pangea.v1.Orchestrator/GetWork": ["trainer"],
  "/pangea.v1.Orchestrator/ReportBackend": ["trainer"],
  "/pangea.v1.Orchestrator/ReportEval": ["trainer"],
  "/pangea.v1.Orchestrator/ReportCheckpoint": ["shard"],
  "/pangea.v1.Orchestrator/ReportFailure": ["shard"],
  // The job's state for the trainers that follow it and for operators (pangea status, run, up); it names the job's data
  // and checkpoint paths, which the other roles have no use for.
  "/pangea.v1.Orchestrator/GetJobStatus": ["trainer", "admin"],
  // Parameter server (orchestrator and shards): trainers read and train; only an operator edits tables.
  "/pangea.v1.ParameterServer/Pull": ["trainer"],
  "/pangea.v1.ParameterServer/Push": ["trainer"],
  "/pangea.v1.ParameterServer/Assign": ["admin"],
  "/pangea.v1.ParameterServer/Evict": ["admin"],
  "/pangea.v1.ParameterServer/TableStats": ["admin", "trainer"],
  // Compute.
  "/pangea.v1.BatchStream/StreamBatches": ["trainer"],
  // Serving: parameter sync comes from the parameter servers only; the prediction API is for clients.
  "/pangea.v1.ParameterSync/Push": ["orchestrator", "shard"],
  "/tensorflow.serving.PredictionService/Predict": "client",
  "/tensorflow.serving.ModelService/GetModelStatus": "client",
  "/tensorflow.serving.PredictionService/GetModelMetadata": "client",
  "/monolith.serving.agent_service.AgentService/GetReplicas": "client",
  "/monolith.serving.agent_service.AgentService/GetResource": "client",
  "/monolith.serving.agent_service.AgentService/HeartBeat": "client",
});

export function ruleFor(path: string, extra: Readonly<Record<string, CallRule>> = {}): CallRule {
  const rule = extra[path] ?? CALL_POLICY[path];
  if (!rule) throw new Error(`${path} has no entry in CALL_POLICY (packages/rpc/src/security/call-policy.ts): say who may call it`);
  return rule;
}

/** What the server checks a call against. */
export interface CallGate {
  /** Whether TLS is on (roles are checked only then). */
  tls: boolean;
  /** Serving's client token: "client" calls must carry `authorization: Bearer <token>` when set. */
  clientToken?: string;
  /**
   * Serving's sync token (--sync-token-file): in plaintext, the calls with a role rule (ParameterSync Push) must carry
   * it, and the client token then does not let a caller push. Unset: they take the client token, if any.
   */
  roleToken?: string;
  /** Rules for methods outside CALL_POLICY (tests' own services). */
  extra?: Readonly<Record<string, CallRule>>;
}

/** Null when the call may go ahead, else the error it gets. */
export function refusal(path: string, rule: CallRule, call: { metadata: grpc.Metadata; getAuthContext?: () => unknown }, gate: CallGate): Partial<grpc.StatusObject> | null {
  if (rule === "public") return null;
  const peer = gate.tls ? peerIdentity(call as Parameters<typeof peerIdentity>[0]) : null;
  if (rule === "client") {
    if (!gate.clientToken || peer?.role === "admin") return null;
    return tokenRefusal(path, call.metadata, gate.clientToken, "");
  }
  if (!gate.tls) {
    // Plaintext has no roles; a server with a token (serving's --api-token-file) asks for it on every call, so
    // whoever reaches the port cannot push parameters into the model it guards (the parameter servers present it
    // with --serving-sync-token-file).
    const token = gate.roleToken ?? gate.clientToken;
    if (!token) return null;
    return tokenRefusal(path, call.metadata, token, ` (the parameter servers' --serving-sync-token-file) or, under TLS, a certificate with role ${rule.join(" or ")}`, gate.roleToken ? "sync token (--sync-token-file)" : "API token");
  }
  if (!peer) {
    return toServiceError(RpcErrors.create("RPC_ERR_UNAUTHENTICATED", `${path} needs a client certificate of the cluster CA with role ${rule.join(" or ")}`));
  }
  if (!rule.includes(peer.role)) {
    return toServiceError(RpcErrors.create("RPC_ERR_PERMISSION_DENIED", `${path} is for ${rule.join(" or ")}; the caller has ${describePeer(peer)}`));
  }
  return null;
}

/** Null when the call's metadata carries the token, else UNAUTHENTICATED saying what is missing (`how`: other ways in). */
function tokenRefusal(path: string, metadata: grpc.Metadata, token: string, how: string, which = "API token"): Partial<grpc.StatusObject> | null {
  const sent = metadata.get("authorization");
  if (bearerMatches(sent, token)) return null;
  return toServiceError(
    RpcErrors.create(
      "RPC_ERR_UNAUTHENTICATED",
      sent.length ? `${path}: the authorization metadata does not carry serving's ${which}` : `${path} needs "authorization: Bearer <token>" metadata with serving's ${which}${how}`,
    ),
  );
}

/**
 * Whether an authorization value is "Bearer <token>" (the scheme in any
 * case, as HTTP's are); the token is compared in constant time, so it cannot
 * be guessed byte by byte from response timings.
 */
export function bearerMatches(values: readonly grpc.MetadataValue[] | readonly string[] | string | undefined, token: string): boolean {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  const want = Buffer.from(token);
  let ok = false;
  for (const v of list) {
    const m = /^bearer\s+(\S+)\s*$/i.exec(String(v));
    const got = Buffer.from(m?.[1] ?? "");
    if (got.length === want.length && timingSafeEqual(got, want)) ok = true;
  }
  return ok;
}

/** Throws unless every method of a service has an entry in the policy: a new RPC is never open by accident. */
export function checkPolicyCovers(def: grpc.ServiceDefinition, gate: CallGate): void {
  for (const method of Object.values(def)) ruleFor(method.path, gate.extra);
}

/**
 * Checks each call against the policy on its metadata, before its request
 * is read: a refused caller's message is never taken in (a flood of large
 * anonymous requests to a server with a token was read whole, each up to
 * the 256 MiB message limit, before the handler refused it: 1.9 GB of
 * serving's memory for 1,500 requests of 1.2 MB). Methods no service
 * serves are left to gRPC (UNIMPLEMENTED).
 */
export function policyInterceptor(gate: CallGate, onRefused?: (method: string, code: grpc.status) => void): grpc.ServerInterceptor {
  return (method, call) => {
    const rule = gate.extra?.[method.path] ?? CALL_POLICY[method.path];
    if (!rule || rule === "public" || (!gate.tls && !gate.clientToken && !gate.roleToken) || (rule === "client" && !gate.clientToken)) return new grpc.ServerInterceptingCall(call);
    const checked: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, go) => {
            const no = refusal(method.path, rule, { metadata, getAuthContext: () => call.getAuthContext() }, gate);
            if (!no) return go(metadata);
            const code = no.code ?? grpc.status.PERMISSION_DENIED;
            checked.sendStatus({ code, details: no.details ?? "", metadata: no.metadata ?? new grpc.Metadata() });
            onRefused?.(method.path, code);
          },
        }),
    });
    return checked;
  };
}
