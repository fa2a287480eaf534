import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
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

/** GET /metrics on an existing fastify app (serving puts it on its REST port). */
export function addMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get("/metrics", async (_req, reply) => {
    const { contentType, body } = await metricsReply(registry);
    return reply.header("content-type", contentType).send(body);
  });
}

/**
 * /metrics, with `routes` on a fastify app; without, on Node's own HTTP
 * server: fastify is loaded only where routes need it (about 100 ms of a
 * trainer's or compute's start).
 */
export async function startMetricsServer(host: string, port: number, registry: Registry, routes?: (app: FastifyInstance) => void): Promise<MetricsServer> {
  if (routes) {
    const { default: Fastify } = await import("fastify");
    const app = Fastify({ serverFactory: timedServerFactory() });
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
