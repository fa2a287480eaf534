import { hostname } from "node:os";
import { z } from "zod";
import { DISCOVERY_FLAGS, TLS_FLAGS, tlsFields, address, discoveryFields, parseConfig, port, positiveInt, type FlagTable } from "@pangea/kit";

export const FLAGS: FlagTable = {
  ...DISCOVERY_FLAGS,
  ...TLS_FLAGS,
  host: { env: "PANGEA_SERVING_HOST", description: "interface to serve on", default: "127.0.0.1" },
  port: { env: "PANGEA_SERVING_PORT", description: "gRPC port: TensorFlow Serving's PredictionService and ModelService, and ParameterSync (0 = any free port)", default: "8500" },
  "rest-port": { env: "PANGEA_SERVING_REST_PORT", description: "REST (JSON) port (0 = any free port)", default: "8501" },
  "model-name": { env: "PANGEA_MODEL_NAME", description: "name clients ask for", default: "pangea" },
  "model-base-path": { env: "PANGEA_MODEL_BASE_PATH", description: "directory of numbered model versions (pangea export --out)" },
  "keep-versions": { env: "PANGEA_KEEP_VERSIONS", description: "newest versions kept loaded (older ones are unloaded)", default: "2" },
  "poll-seconds": { env: "PANGEA_POLL_SECONDS", description: "how often the base path is checked for new versions", default: "2" },
  "max-batch": { env: "PANGEA_MAX_BATCH", description: "largest number of examples one request may carry", default: "4096" },
  "batch-window-us": { env: "PANGEA_BATCH_WINDOW_US", description: "concurrent requests arriving within this many microseconds are run as one batch (0 = only those already waiting)", default: "0" },
  advertise: { env: "PANGEA_SERVING_ADVERTISE", description: "address others reach this replica at (announced in the registry)", default: "host:bound port" },
  orchestrator: { env: "PANGEA_ORCHESTRATOR", description: "static discovery: the training orchestrator the agent reports as the parameter server (optional)" },
  "worker-id": { env: "PANGEA_WORKER_ID", description: "name in the cluster", default: "serving-<host>-<pid>" },
  "api-token-file": { env: "PANGEA_API_TOKEN_FILE", description: "a file holding the API token: Predict, GetModelStatus and REST /v1/ then need 'authorization: Bearer <token>' (admin certificates pass without it)" },
};

const schema = z.object({
  ...discoveryFields,
  ...tlsFields,
  host: z.string().min(1).default("127.0.0.1"),
  port: port.default(8500),
  restPort: port.default(8501),
  modelName: z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'").default("pangea"),
  modelBasePath: z.string({ message: "expected the directory pangea export writes versions to" }).min(1),
  keepVersions: positiveInt("a positive number of versions").default(2),
  pollSeconds: z.coerce.number({ message: "expected seconds" }).positive("expected positive seconds").default(2),
  maxBatch: positiveInt("a positive number of examples").default(4096),
  batchWindowUs: z.coerce.number({ message: "expected microseconds" }).int().min(0, "expected 0 or more microseconds").max(1_000_000).default(0),
  advertise: address.optional(),
  orchestrator: address.optional(),
  workerId: z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'").default(`serving-${hostname()}-${process.pid}`),
  apiTokenFile: z.string().min(1, "expected a file").optional(),
});

export type ServingConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<ServingConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
