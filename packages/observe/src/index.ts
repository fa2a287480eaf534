export { addMetricsRoute, carriesToken, newRegistry, startMetricsServer } from "./metrics-server.js";
export type { MetricsServer } from "./metrics-server.js";
export { Counter, Gauge, Histogram, Registry } from "prom-client";
export { CounterFrom } from "./counter-from.js";
export { grpcServerMetrics } from "./grpc-metrics.js";
export type { FastifyInstance } from "fastify";
export { timedServerFactory } from "./http-server-factory.js";
export { ObserveErrors } from "./errors.js";
