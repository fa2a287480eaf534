import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FastifyInstance, onRequestAsyncHookHandler } from "fastify";
import { Registry, collectDefaultMetrics } from "prom-client";
import { listenFailureReason, printable } from "@pangea/kit";
import { ObserveErrors } from "./errors.js";
import { timedServerFactory } from "./http-server-factory.js";

/**
 * A service's HTTP side for operators: GET /metrics in Prometheus' text
 * format (process metrics plus whatever the service registers), and any
 * extra routes (the orchestrator adds its dashboard).
 */
export interface MetricsServer {
  registry: Registry;
  /** host:port it listens on. */
  address: string;
  close(): Promise<void>;
}

export function newRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: "pangea_" });
  return registry;
}

/** What GET /metrics answers, whichever server carries it. */
async function metricsReply(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * Whether a request's `authorization` header carries `token`: as a bearer token (what Prometheus sends from
 * authorization.credentials_file) or as HTTP Basic's password under any user name (what a browser sends once its user
 * answered the prompt a 401 brings up). Compared in constant time.
 */
export function carriesToken(authorization: string | undefined, token: string): boolean {
  const m = /^(Bearer|Basic) +(\S+)$/i.exec(authorization ?? "");
  if (!m) return false;
  let given = m[2]!;
  if (m[1]!.toLowerCase() === "basic") {
    // user-id ":" password (RFC 7617); without the colon there is no password.
    const pair = Buffer.from(given, "base64").toString("utf8");
    const colon = pair.indexOf(":");
    if (colon < 0) return false;
    given = pair.slice(colon + 1);
  }
  // Digests of both, so neither the comparison's time nor an early length check says how long the token is.
  const digest = (t: string) => createHash("sha256").update(t).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/** The answer to a request without the token: 401 with a Basic challenge, so a browser asks its user. */
const UNAUTHORIZED = {
  status: 401,
  headers: { "www-authenticate": 'Basic realm="pangea metrics", charset="UTF-8"', "content-type": "text/plain; charset=utf-8" },
  body: "this port asks for the metrics token (--metrics-token-file): 'authorization: Bearer <token>', or HTTP Basic with the token as the password\n",
};

function refuse(res: ServerResponse): void {
  res.writeHead(UNAUTHORIZED.status, UNAUTHORIZED.headers).end(UNAUTHORIZED.body);
}

/** A fastify onRequest hook answering UNAUTHORIZED to a request without `token`. */
function tokenGuard(token: string): onRequestAsyncHookHandler {
  return async (req, reply) => {
    if (!carriesToken(req.headers.authorization, token)) return reply.code(UNAUTHORIZED.status).headers(UNAUTHORIZED.headers).send(UNAUTHORIZED.body);
  };
}

/** GET /metrics on an existing fastify app (serving puts it on its REST port); with `token`, only for requests carrying it. */
export function addMetricsRoute(app: FastifyInstance, registry: Registry, token?: string): void {
  app.get("/metrics", { onRequest: token ? tokenGuard(token) : [] }, async (_req, reply) => {
    const { contentType, body } = await metricsReply(registry);
    return reply.header("content-type", contentType).send(body);
  });
}

/**
 * /metrics, with `routes` on a fastify app; without, on Node's own HTTP
 * server: fastify is loaded only where routes need it (about 100 ms of a
 * trainer's or compute's start). With `token` (--metrics-token-file) every
 * request must carry it (carriesToken), or is answered 401.
 */
export async function startMetricsServer(host: string, port: number, registry: Registry, routes?: (app: FastifyInstance) => void, token?: string): Promise<MetricsServer> {
  if (routes) {
    const { default: Fastify } = await import("fastify");
    const app = Fastify({ serverFactory: timedServerFactory() });
    if (token) {
      // Before any route, a 404 included: without the token a caller learns nothing of what this port serves.
      app.addHook("onRequest", tokenGuard(token));
    }
    addMetricsRoute(app, registry);
    routes(app);
    // Every route here is read-only: another method on one of them is 405 naming GET, as on Node's own server below.
    app.setNotFoundHandler((req, reply) => {
      const path = req.url.split("?")[0]!;
      if (app.hasRoute({ method: "GET", url: path })) {
        return reply.code(405).header("allow", "GET, HEAD").type("text/plain; charset=utf-8").send(`${req.method} ${printable(path, 200)}: this path takes GET\n`);
      }
      return reply.code(404).type("text/plain; charset=utf-8").send(`not found: ${printable(path, 200)}\n`);
    });
    const url = new URL(await app.listen({ host, port }).catch((err: Error) => {
      throw listenError(host, port, err);
    }));
    return { registry, address: `${url.hostname}:${url.port}`, close: () => app.close() };
  }
  const server = createServer((req, res) => {
    if (token && !carriesToken(req.headers.authorization, token)) return refuse(res);
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      if (path === "/metrics") res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("GET /metrics\n");
      else res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: this port serves GET /metrics\n");
      return;
    }
    metricsReply(registry).then(
      ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(req.method === "HEAD" ? undefined : body),
      (err: Error) => res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(listenError(host, port, err)));
    server.listen(port, host, () => {
      server.removeAllListeners("error");
      resolve();
    });
  });
  const { address, port: bound } = server.address() as AddressInfo;
  return {
    registry,
    address: `${address.includes(":") ? `[${address}]` : address}:${bound}`,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function listenError(host: string, port: number, err: Error): Error {
  return ObserveErrors.create("OBSERVE_ERR_LISTEN", `cannot serve /metrics on ${host}:${port} (--metrics-port): ${listenFailureReason(err)}`);
}
