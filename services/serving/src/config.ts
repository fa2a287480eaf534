import { hostname } from "node:os";
import { z } from "zod";
import { seconds, decimalNumber, integerNumber, flag, flagTable, tlsFields, metricsTokenFileField, address, discoveryFields, parseConfig, port, positiveInt, workerId, type FlagTable } from "@pangea/kit";


const schema = z.object({
  ...discoveryFields,
  ...tlsFields,
  host: flag(z.string().min(1).default("127.0.0.1"), { env: "PANGEA_SERVING_HOST", description: "interface to serve on" }),
  port: flag(port.default(8500), { env: "PANGEA_SERVING_PORT", description: "gRPC port: TensorFlow Serving's PredictionService and ModelService, and ParameterSync (0 = any free port)" }),
  restPort: flag(port.default(8501), { env: "PANGEA_SERVING_REST_PORT", description: "REST (JSON) port (0 = any free port)" }),
  modelName: flag(z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'").default("pangea"), { env: "PANGEA_MODEL_NAME", description: "name clients ask for" }),
  modelBasePath: flag(z.string({ message: "expected the directory pangea export writes versions to" }).min(1), { env: "PANGEA_MODEL_BASE_PATH", description: "directory of numbered model versions (pangea export --out)" }),
  keepVersions: flag(positiveInt("a positive number of versions").default(2), { env: "PANGEA_KEEP_VERSIONS", description: "newest versions kept loaded (older ones are unloaded)" }),
  pollSeconds: flag(seconds().default(2), { env: "PANGEA_POLL_SECONDS", description: "how often the base path is checked for new versions" }),
  maxBatch: flag(positiveInt("a positive number of examples").default(4096), { env: "PANGEA_MAX_BATCH", description: "largest number of examples one request may carry" }),
  batchWindowUs: flag(integerNumber("expected microseconds").pipe(z.number().min(0, "expected 0 or more microseconds").max(1_000_000)).default(0), { env: "PANGEA_BATCH_WINDOW_US", description: "concurrent requests arriving within this many microseconds are run as one batch (0 = only those already waiting)" }),
  forwardThreads: flag(integerNumber("expected a number of threads").pipe(z.number().min(0, "expected 0 or more threads").max(64, "expected at most 64 threads")).default(1), { env: "PANGEA_SERVING_FORWARD_THREADS", description: "threads running the forward passes off the event loop, over the model's tables in shared memory (0 = in the event loop)" }),
  maxQueuedRequests: flag(integerNumber("expected a number of requests").pipe(z.number().min(0, "expected 0 or more requests")).default(1000), { env: "PANGEA_SERVING_MAX_QUEUED_REQUESTS", description: "Predict requests allowed to wait for a forward pass (and 64 examples for each); more are refused at once with RESOURCE_EXHAUSTED (REST 503) and counted in pangea_serving_shed_requests_total (0 = no bound)" }),
  maxInflightRequestMb: flag(integerNumber("expected a number of MiB").pipe(z.number().min(0, "expected 0 or more MiB")).default(32), { env: "PANGEA_SERVING_MAX_INFLIGHT_REQUEST_MB", description: "MiB of Predict requests (gRPC messages and REST bodies as received) allowed in flight at once, from receipt to answer; a request that would pass it beside others is refused at once, before it is decoded, with RESOURCE_EXHAUSTED (REST 503) and counted in pangea_serving_inflight_refused_requests_total; a request alone is served whatever its size, and one of at most 64 KiB beside any others (0 = no bound)" }),
  advertise: flag(address.optional(), { env: "PANGEA_SERVING_ADVERTISE", description: "address others reach this replica at (announced in the registry)", shown: "host:bound port" }),
  orchestrator: flag(address.optional(), { env: "PANGEA_ORCHESTRATOR", description: "static discovery: the training orchestrator the agent reports as the parameter server (optional)" }),
  workerId: flag(workerId(`serving-${hostname()}-${process.pid}`), { env: "PANGEA_WORKER_ID", description: "name in the cluster", shown: "serving-<host>-<pid>" }),
  apiTokenFile: flag(z.string().min(1, "expected a file").optional(), { env: "PANGEA_API_TOKEN_FILE", description: "a file holding the API token: every gRPC call but health checks (Predict, GetModelMetadata, GetModelStatus, AgentService; in plaintext ParameterSync Push too unless --sync-token-file is given) and REST /v1/ then need 'authorization: Bearer <token>' (admin certificates pass without it)" }),
  syncTokenFile: flag(z.string().min(1, "expected a file").optional(), { env: "PANGEA_SYNC_TOKEN_FILE", description: "a file holding the token parameter sync pushes must carry in plaintext (the orchestrator's --serving-sync-token-file); then the API token does not let a caller push. Without it a push takes the API token, if any" }),
  ...metricsTokenFileField,
});

export const FLAGS: FlagTable = flagTable(schema.shape);

export type ServingConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<ServingConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
