import Fastify, { type FastifyInstance } from "fastify";
import { Registry, collectDefaultMetrics } from "prom-client";

/**
 * A service's HTTP side for operators: GET /metrics in Prometheus' text
 * format (process metrics plus whatever the service registers), and any
 * extra routes (the orchestrator adds its dashboard).
 */
export interface MetricsServer {
  registry: Registry;
  app: FastifyInstance;
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

/** GET /metrics on an existing fastify app (serving puts it on its REST port). */
export function addMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", registry.contentType);
    return registry.metrics();
  });
}

export async function startMetricsServer(host: string, port: number, registry: Registry, routes?: (app: FastifyInstance) => void): Promise<MetricsServer> {
  const app = Fastify();
  addMetricsRoute(app, registry);
  routes?.(app);
  const url = new URL(await app.listen({ host, port }));
  return { registry, app, address: `${url.hostname}:${url.port}`, close: () => app.close() };
}
