import type * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { checkPolicyCovers, policyInterceptor, type CallGate, type CallRule } from "./security/call-policy.js";
import { TLS_SERVER_NAME } from "./security/cluster-certs.js";
import { serverCredentials, transportSecurity, type TransportSecurity } from "./security/transport-security.js";
import { RpcErrors } from "./errors.js";
import { decodingChecked } from "./request-decoding.js";
import { wrapHandlers } from "./handler-wrapping.js";
import { limitConnections, listenFailureReason } from "@pangea/kit";

export interface RunningServer {
  server: grpc.Server;
  /** host:port actually bound (the port is real even when 0 was asked for). */
  address: string;
  port: number;
  health: HealthImplementation;
  /** Whether sessions get the wide receive window (see widenReceiveWindows). */
  wideReceiveWindow: boolean;
  /** Stops accepting calls, waits up to graceMs for running ones, then cancels the rest. */
  shutdown(graceMs?: number): Promise<void>;
}

// Hot-path messages (dense parameters, batches) exceed gRPC's 4 MiB default.
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** How often a server pings each client connection, and how long it waits for the answer. */
const SERVER_KEEPALIVE_MS = 10_000;

/** The HTTP/2 flow-control window of both ends of every hot-path connection. */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  // Detect a peer that vanished without closing its socket.
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
  // HTTP/2's default 64 KiB window makes a multi-megabyte response (dense
  // parameters, batches) wait for a window update every 64 KiB, i.e. on the
  // receiver's busy event loop; a 16 MiB window lets it stream through.
  "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW,
  // With TLS, peers are checked by their certificate's role, not by host name
  // (see channelCredentials); a fixed name also keeps Node from warning about
  // IP addresses as TLS server names. Plaintext channels ignore it.
  "grpc.ssl_target_name_override": TLS_SERVER_NAME,
};

/**
 * The server's side of the same window. grpc-js has no server option for it,
 * so a multi-megabyte request (a trainer's gradients, 3.5 MB per DLRM Kaggle
 * step) crept through 64 KiB windows, each update waiting for the busy
 * server's event loop: measured on a 3.5 MB round trip, 10.5 -> 7-8 ms and a
 * quarter less CPU. Each new session advertises FLOW_CONTROL_WINDOW for its
 * streams and opens its connection window as wide. Reaches the http2 servers
 * grpc-js keeps in a private field of the pinned version; false if that is
 * gone (a test checks it is not).
 */
export function widenReceiveWindows(server: grpc.Server): boolean {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  for (const h of servers.keys() as IterableIterator<http2.Http2Server>) {
    h.on("session", (session: http2.ServerHttp2Session) => {
      try {
        session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW });
        session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
      } catch {
        // A session closed before its settings went out: nothing to widen.
      }
    });
  }
  return true;
}

/** limitConnections on each of the http2 servers grpc-js keeps (the same private field as widenReceiveWindows). */
function limitServerConnections(server: grpc.Server): void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return;
  for (const h of servers.keys() as IterableIterator<http2.Http2Server>) limitConnections(h);
}

/**
 * Starts a gRPC server with the standard health service (grpc.health.v1)
 * and the given services attached. `serviceNames` are reported SERVING.
 */
/** Told of every finished unary call: its method path, seconds taken, and gRPC status code. */
export type CallObserver = (method: string, seconds: number, code: number) => void;

/**
 * Wraps a service's unary handlers so each finished call is reported to
 * `observe` (streaming handlers are left as they are: their duration is the
 * stream's life, not a latency).
 */
function observed(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation, observe: CallObserver): grpc.UntypedServiceImplementation {
  return wrapHandlers(def, impl, (method, handler) => {
    if (method.requestStream || method.responseStream) return null;
    return ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const started = performance.now();
      (handler as grpc.handleUnaryCall<unknown, unknown>)(call, (err, value, trailer, flags) => {
        observe(method.path, (performance.now() - started) / 1000, err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK);
        cb(err, value, trailer, flags);
      });
    }) as grpc.UntypedHandleCall;
  });
}

export interface ServerSecurityOptions {
  /** Defaults to the process's (--tls-dir); null serves without TLS. */
  security?: TransportSecurity | null;
  /** Serving's API token: its client-facing calls must carry it as a bearer token. */
  clientToken?: string;
  /** Serving's sync token: in plaintext, parameter sync pushes must carry it (not the API token). */
  roleToken?: string;
  /** Who may call methods outside CALL_POLICY (a test's own service). */
  policy?: Readonly<Record<string, CallRule>>;
}

export async function startServer(
  host: string,
  port: number,
  attach: (server: grpc.Server) => void,
  serviceNames: readonly string[],
  observe?: CallObserver,
  options: ServerSecurityOptions = {},
): Promise<RunningServer> {
  const security = options.security === undefined ? transportSecurity() : options.security;
  const gate: CallGate = { tls: security !== null, ...(options.clientToken ? { clientToken: options.clientToken } : {}), ...(options.roleToken ? { roleToken: options.roleToken } : {}), ...(options.policy ? { extra: options.policy } : {}) };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    "grpc.keepalive_permit_without_calls": 1,
    // The server pings its clients too: a peer that vanished without closing its connection (a stopped process, a host
    // or network gone) is seen gone within 20 s, its sessions closed; grpc-js's default waited two hours, holding a
    // dead compute's place in the job. Trainers answer within --heartbeat-timeout-ms anyway (5 s by default).
    "grpc.keepalive_time_ms": SERVER_KEEPALIVE_MS,
    "grpc.keepalive_timeout_ms": SERVER_KEEPALIVE_MS,
    "grpc.http2.min_ping_interval_without_data_ms": 5_000,
    // No channelz: nothing here serves its admin API, and its per-call bookkeeping is on every hot-path call.
    "grpc.enable_channelz": 0,
    // Every call is checked against the call policy on its metadata, before its request is read (in plaintext without
    // a token nothing is checked: no interceptor on the hot path).
    interceptors: gate.tls || gate.clientToken || gate.roleToken ? [policyInterceptor(gate, observe && ((method, code) => observe(method, 0, code)))] : [],
  });
  // A service's methods must all be in the call policy (the interceptor checks each call against it), then the observer.
  const add = server.addService.bind(server);
  server.addService = (given, impl) => {
    checkPolicyCovers(given, gate);
    // A request that does not decode is the caller's mistake (INVALID_ARGUMENT), told after the call policy's refusals.
    const { def, impl: decoded } = decodingChecked(given, impl);
    add(def, observe ? observed(def, decoded, observe) : decoded);
  };
  const health = new HealthImplementation({ "": "SERVING", ...Object.fromEntries(serviceNames.map((n) => [n, "SERVING" as const])) });
  health.addToServer(server);
  attach(server);
  quietBindFailures();
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, serverCredentials(security), (err, p) => (err ? reject(listenError(host, port, err)) : resolve(p)));
  });
  const address = `${host.includes(":") ? `[${host}]` : host}:${bound}`;
  const wideReceiveWindow = widenReceiveWindows(server);
  limitServerConnections(server);
  return {
    server,
    address,
    port: bound,
    health,
    wideReceiveWindow,
    shutdown(graceMs = 2_000) {
      for (const name of ["", ...serviceNames]) health.setStatus(name, "NOT_SERVING");
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

const BIND_FAILURE = "No address added out of total";
let quieted = false;

/**
 * grpc-js logs its bind failure to stderr itself, before the error reaches
 * the caller, which reports it as one line (listenError): that log line is
 * dropped, every other one is printed as grpc-js prints it ("E message").
 */
function quietBindFailures(): void {
  if (quieted) return;
  quieted = true;
  const print = (tag: string) => (message?: unknown, ...rest: unknown[]) => {
    if (tag === "E" && typeof message === "string" && message.startsWith(BIND_FAILURE)) return;
    console.error(`${tag} ${String(message)}`, ...rest);
  };
  grpc.setLogger({ error: print("E"), info: print("I"), debug: print("D") } as Partial<Console> as Console);
}

/**
 * grpc-js's bind failure ("No address added out of total 1 resolved errors:
 * [listen EADDRINUSE: ...]") as one line naming the address and the reason.
 */
function listenError(host: string, port: number, err: Error): Error {
  return RpcErrors.create("RPC_ERR_LISTEN", `cannot serve gRPC on ${host}:${port}: ${listenFailureReason(err)}`);
}
