import { hostname } from "node:os";
import { z } from "zod";
import { address, nonNegativeInt, parseConfig, port, positiveInt, type FlagTable } from "@pangea/kit";

export const FLAGS: FlagTable = {
  host: { env: "PANGEA_COMPUTE_HOST", description: "interface to serve on", default: "127.0.0.1" },
  port: { env: "PANGEA_COMPUTE_PORT", description: "port to serve on (0 = any free port)", default: "50052" },
  advertise: { env: "PANGEA_COMPUTE_ADVERTISE", description: "address trainers use to reach this service", default: "host:bound port" },
  orchestrator: { env: "PANGEA_ORCHESTRATOR", description: "orchestrator address to register with", default: "127.0.0.1:50051" },
  data: { env: "PANGEA_DATA", description: "Criteo TSV file to train on; absent = built-in synthetic data" },
  "eval-fraction": { env: "PANGEA_EVAL_FRACTION", description: "share of a data file's records, from its end, held out", default: "0.1" },
  "eval-records": { env: "PANGEA_EVAL_RECORDS", description: "held-out records of the synthetic data", default: "50000" },
  seed: { env: "PANGEA_SEED", description: "seed of the synthetic data", default: "42" },
  "connect-timeout-ms": { env: "PANGEA_CONNECT_TIMEOUT_MS", description: "how long to wait for the orchestrator", default: "15000" },
  "worker-id": { env: "PANGEA_WORKER_ID", description: "name of this process in the cluster", default: "compute-<host>-<pid>" },
};

const schema = z.object({
  host: z.string().min(1).default("127.0.0.1"),
  port: port.default(50052),
  advertise: address.optional(),
  orchestrator: address.default("127.0.0.1:50051"),
  data: z.string().min(1).optional(),
  evalFraction: z.coerce.number({ message: "expected a number" }).min(0, "expected a fraction in [0, 0.9]").max(0.9, "expected a fraction in [0, 0.9]").default(0.1),
  evalRecords: nonNegativeInt("a record count").default(50_000),
  seed: nonNegativeInt("a non-negative integer seed").default(42),
  connectTimeoutMs: positiveInt("milliseconds").default(15_000),
  workerId: z.string().min(1).default(`compute-${hostname()}-${process.pid}`),
});

export type ComputeConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<ComputeConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
