import { hostname } from "node:os";
import { z } from "zod";
import { milliseconds, flag, flagTable, tlsFields, metricsHostField, metricsTokenFileField, discoveryFields, workerId, address, port, positiveInt, type FlagTable } from "@pangea/kit";

/** The trainer's flags (its --help, the README table, and `pangea run`'s pass-through flags). */
export const trainerSchema = z.object({
  ...discoveryFields,
  ...tlsFields,
  ...metricsHostField,
  ...metricsTokenFileField,
  orchestrator: flag(address.default("127.0.0.1:50051"), { env: "PANGEA_ORCHESTRATOR", description: "orchestrator address" }),
  host: flag(z.string().min(1, "expected an interface address").default("127.0.0.1"), { env: "PANGEA_TRAINER_HOST", description: "interface of the trainer's health endpoint" }),
  port: flag(port.default(0), { env: "PANGEA_TRAINER_PORT", description: "port of the trainer's grpc.health.v1 endpoint (0 = any free port)" }),
  metricsPort: flag(port.default(0), { env: "PANGEA_METRICS_PORT", description: "HTTP port of /metrics (Prometheus; 0 = any free port, printed at start)" }),
  backend: flag(z.enum(["auto", "tensorflow", "wasm", "cpu"], { message: "expected auto, tensorflow, wasm or cpu" }).default("auto"), { env: "PANGEA_BACKEND", description: "TensorFlow.js backend: tensorflow (@tensorflow/tfjs-node-gpu, then tfjs-node), wasm or cpu; auto takes the first that loads" }),
  blasThreads: flag(positiveInt("a positive number of threads", { max: 256, message: "expected at most 256 threads" }).default(1), { env: "PANGEA_BLAS_THREADS", description: "threads of the native BLAS matmuls (pangea run gives each trainer cores / trainers)" }),
  workerId: flag(workerId(`trainer-${hostname()}-${process.pid}`), { env: "PANGEA_WORKER_ID", description: "name of this trainer in the cluster", shown: "trainer-<host>-<pid>" }),
  connectTimeoutMs: flag(milliseconds().default(15_000), { env: "PANGEA_CONNECT_TIMEOUT_MS", description: "how long to wait for the orchestrator and compute" }),
  rejoinTimeoutMs: flag(milliseconds().default(60_000), { env: "PANGEA_REJOIN_TIMEOUT_MS", description: "how long to wait for a lost orchestrator (then exit 3) or compute (then exit 1) to come back" }),
  pullAfterWork: flag(z.boolean().default(false), { env: "PANGEA_PULL_AFTER_WORK", description: "sync/hybrid: pull a step's parameters only once GetWork hands out its batches, instead of sending the next step's first pull ahead (the orchestrator holds it until the step is planned); for comparison" }),
  logEvery: flag(positiveInt("a positive number of steps").default(50), { env: "PANGEA_LOG_EVERY", description: "log progress every N steps" }),
});

export const TRAINER_FLAGS: FlagTable = flagTable(trainerSchema.shape);
