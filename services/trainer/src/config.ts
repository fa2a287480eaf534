import { hostname } from "node:os";
import { z } from "zod";
import { DISCOVERY_FLAGS, TLS_FLAGS, tlsFields, METRICS_HOST_FLAG, metricsHostField, discoveryFields, workerId, address, parseConfig, port, positiveInt, type FlagTable } from "@pangea/kit";

export const FLAGS: FlagTable = {
  ...DISCOVERY_FLAGS,
  ...TLS_FLAGS,
  ...METRICS_HOST_FLAG,
  orchestrator: { env: "PANGEA_ORCHESTRATOR", description: "orchestrator address", default: "127.0.0.1:50051" },
  host: { env: "PANGEA_TRAINER_HOST", description: "interface of the trainer's health endpoint", default: "127.0.0.1" },
  port: { env: "PANGEA_TRAINER_PORT", description: "port of the trainer's grpc.health.v1 endpoint (0 = any free port)", default: "0" },
  "metrics-port": { env: "PANGEA_METRICS_PORT", description: "HTTP port of /metrics (Prometheus; 0 = any free port, printed at start)", default: "0" },
  backend: { env: "PANGEA_BACKEND", description: "TensorFlow.js backend: auto, tensorflow, wasm or cpu", default: "auto" },
  "blas-threads": { env: "PANGEA_BLAS_THREADS", description: "threads of the native BLAS matmuls (one trainer per core: 1)", default: "1" },
  "worker-id": { env: "PANGEA_WORKER_ID", description: "name of this trainer in the cluster", default: "trainer-<host>-<pid>" },
  "connect-timeout-ms": { env: "PANGEA_CONNECT_TIMEOUT_MS", description: "how long to wait for the orchestrator and compute", default: "15000" },
  "rejoin-timeout-ms": { env: "PANGEA_REJOIN_TIMEOUT_MS", description: "how long to wait for a lost orchestrator or compute to come back", default: "60000" },
  "log-every": { env: "PANGEA_LOG_EVERY", description: "log progress every N steps", default: "50" },
};

const schema = z.object({
  ...discoveryFields,
  ...tlsFields,
  ...metricsHostField,
  orchestrator: address.default("127.0.0.1:50051"),
  host: z.string().min(1).default("127.0.0.1"),
  port: port.default(0),
  metricsPort: port.default(0),
  backend: z.enum(["auto", "tensorflow", "wasm", "cpu"], { message: "expected auto, tensorflow, wasm or cpu" }).default("auto"),
  blasThreads: positiveInt("a positive number of threads").max(256, "expected at most 256 threads").default(1),
  workerId: workerId(`trainer-${hostname()}-${process.pid}`),
  connectTimeoutMs: positiveInt("milliseconds").default(15_000),
  rejoinTimeoutMs: positiveInt("milliseconds").default(60_000),
  logEvery: positiveInt("a positive number of steps").default(50),
});

export type TrainerConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<TrainerConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
