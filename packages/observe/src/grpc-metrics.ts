import { Histogram, type Registry } from "prom-client";

const CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

/** Latency of every unary gRPC call a server answers, by method and status: pass the result to startServer. */
export function grpcServerMetrics(registry: Registry): (method: string, seconds: number, code: number) => void {
  const h = new Histogram({
    name: "pangea_grpc_server_handling_seconds",
    help: "Time to answer a unary gRPC call, by method and status code.",
    labelNames: ["method", "code"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  return (method, seconds, code) => h.observe({ method, code: CODES[code] ?? String(code) }, seconds);
}
