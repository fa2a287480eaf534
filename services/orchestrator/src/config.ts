import { z } from "zod";
import { hostname } from "node:os";
import { DISCOVERY_FLAGS, TLS_FLAGS, tlsFields, METRICS_HOST_FLAG, metricsHostField, discoveryFields, workerId, address, intList, nonNegativeInt, parseConfig, port, positiveInt, type FlagTable } from "@pangea/kit";
import { SPARSE_OPTIMIZERS } from "./optim/sparse-optimizers.js";
import { DENSE_OPTIMIZERS } from "./optim/optimizers.js";
import { TRAINING_MODES } from "./job/work-plan.js";

export const FLAGS: FlagTable = {
  ...DISCOVERY_FLAGS,
  ...TLS_FLAGS,
  ...METRICS_HOST_FLAG,
  host: { env: "PANGEA_ORCHESTRATOR_HOST", description: "interface to serve on", default: "127.0.0.1" },
  port: { env: "PANGEA_ORCHESTRATOR_PORT", description: "port to serve on (0 = any free port)", default: "50051" },
  "metrics-port": { env: "PANGEA_METRICS_PORT", description: "HTTP port of /metrics (Prometheus) and, on the orchestrator, the live dashboard at / (0 = any free port, printed at start)", default: "0" },
  advertise: { env: "PANGEA_ORCHESTRATOR_ADVERTISE", description: "address trainers use to reach this process", default: "host:bound port" },
  "ps-shards": { env: "PANGEA_PS_SHARDS", description: "parameter-server shards in all, this orchestrator (shard 0) included", default: "1" },
  role: { env: "PANGEA_ROLE", description: "orchestrator, or shard: a parameter-server shard of another orchestrator's job", default: "orchestrator" },
  "shard-index": { env: "PANGEA_SHARD_INDEX", description: "role shard: this shard's index (1..ps-shards-1)" },
  coordinator: { env: "PANGEA_COORDINATOR", description: "role shard: the orchestrator to join (static discovery)" },
  "worker-id": { env: "PANGEA_WORKER_ID", description: "role shard: name in the cluster", default: "ps-<host>-<pid>" },
  trainers: { env: "PANGEA_TRAINERS", description: "trainers the job waits for (world size)", default: "2" },
  steps: { env: "PANGEA_STEPS", description: "synchronous training steps", default: "500" },
  "batch-size": { env: "PANGEA_BATCH_SIZE", description: "samples per trainer per step", default: "1024" },
  "eval-batch-size": { env: "PANGEA_EVAL_BATCH_SIZE", description: "samples per evaluation batch", default: "4096" },
  "embedding-dim": { env: "PANGEA_EMBEDDING_DIM", description: "embedding width of every slot", default: "16" },
  "bottom-mlp": { env: "PANGEA_BOTTOM_MLP", description: "bottom MLP widths; the last must equal embedding-dim", default: "64,16" },
  "top-mlp": { env: "PANGEA_TOP_MLP", description: "top MLP hidden widths (a logit layer follows)", default: "64,32" },
  "dense-optimizer": { env: "PANGEA_DENSE_OPTIMIZER", description: "optimizer of the dense parameters: adam or adagrad", default: "adam" },
  "dense-lr": { env: "PANGEA_DENSE_LR", description: "learning rate of the dense optimizer", default: "0.003" },
  "gradient-compression": { env: "PANGEA_GRADIENT_COMPRESSION", description: "none, or fp16: gradients and embedding rows travel as float16", default: "none" },
  "sparse-lr": { env: "PANGEA_SPARSE_LR", description: "learning rate of the embedding optimizer", default: "0.5" },
  "sparse-optimizer": { env: "PANGEA_SPARSE_OPTIMIZER", description: "embedding optimizer: sgd, adagrad, ftrl, adam, amsgrad, momentum, rmsprop or adadelta", default: "adagrad" },
  "slot-config": { env: "PANGEA_SLOT_CONFIG", description: "per-slot embedding settings (JSON: dim, initializer, optimizer, hyper, occurrenceThreshold, expireSeconds)" },
  "max-embedding-bytes": { env: "PANGEA_MAX_EMBEDDING_BYTES", description: "memory limit of the embedding tables (0 = none)", default: "0" },
  "max-gradient-abs": { env: "PANGEA_MAX_GRADIENT_ABS", description: "refuse a dense gradient or embedding-row gradient holding a value above this in magnitude (or NaN/infinite); counted as gradients rejected", default: "1000000" },
  "expire-sweep-seconds": { env: "PANGEA_EXPIRE_SWEEP_SECONDS", description: "how often expired rows are evicted", default: "60" },
  seed: { env: "PANGEA_SEED", description: "seed of the initial parameters", default: "42" },
  mode: { env: "PANGEA_MODE", description: "sync (a step's batches averaged), async (applied on arrival, bounded staleness) or hybrid (embeddings async, dense sync)", default: "sync" },
  "batches-per-step": { env: "PANGEA_BATCHES_PER_STEP", description: "global batches per step, however many trainers share them (0 = one per expected trainer)", default: "0" },
  "max-staleness": { env: "PANGEA_MAX_STALENESS", description: "async: drop gradients computed on parameters more than this many updates old", default: "8" },
  "heartbeat-ms": { env: "PANGEA_HEARTBEAT_MS", description: "how often trainers send a heartbeat", default: "1000" },
  "heartbeat-timeout-ms": { env: "PANGEA_HEARTBEAT_TIMEOUT_MS", description: "a trainer silent this long is declared dead and its batches reassigned", default: "5000" },
  "on-trainer-loss": { env: "PANGEA_ON_TRAINER_LOSS", description: "reassign (a lost trainer's batches go to the others) or fail (the job fails)", default: "reassign" },
  "checkpoint-every-steps": { env: "PANGEA_CHECKPOINT_EVERY_STEPS", description: "save a checkpoint every N steps (0 = only at the end)", default: "0" },
  "checkpoint-every-seconds": { env: "PANGEA_CHECKPOINT_EVERY_SECONDS", description: "save a checkpoint at the first step boundary N seconds after the last (0 = off; one parameter-server shard only)", default: "0" },
  "keep-checkpoints": { env: "PANGEA_KEEP_CHECKPOINTS", description: "keep the newest K checkpoints of the job (0 = all)", default: "3" },
  resume: { env: "PANGEA_RESUME", description: "continue the job (same --job-id) from its newest intact checkpoint: step, parameters and data position", boolean: true },
  "fresh-start-if-unreadable": { env: "PANGEA_FRESH_START_IF_UNREADABLE", description: "with --resume: if the job has checkpoints but none can be read, start over (they are kept) instead of exiting 1", boolean: true },
  "rejoin-timeout-ms": { env: "PANGEA_REJOIN_TIMEOUT_MS", description: "role shard: how long to wait for a lost orchestrator to come back", default: "60000" },
  "serving-sync": { env: "PANGEA_SERVING_SYNC", description: "serving replicas (host:port[,...]) to push changed embedding rows and dense weights to while training" },
  "sync-interval-seconds": { env: "PANGEA_SYNC_INTERVAL_SECONDS", description: "how often changed rows (and evictions) go to serving", default: "10" },
  "dense-sync-interval-seconds": { env: "PANGEA_DENSE_SYNC_INTERVAL_SECONDS", description: "how often the dense weights go to serving", default: "60" },
  "restore-from": { env: "PANGEA_RESTORE_FROM", description: "start from this checkpoint (shard 0's step-N directory) instead of fresh parameters" },
  "checkpoint-dir": { env: "PANGEA_CHECKPOINT_DIR", description: "where the final checkpoint is written", default: ".pangea/checkpoints" },
  "export-dir": { env: "PANGEA_EXPORT_DIR", description: "a model base path (pangea export --out): the final checkpoint is exported there as a new version, and so is the first checkpoint while it holds no version (serving then has a model for parameter sync to keep fresh); one parameter-server shard only" },
  "export-feature-list": { env: "PANGEA_EXPORT_FEATURE_LIST", description: "with --export-dir: the feature list the data was read with, copied into each version (serving decodes Monolith inputs and hashes raw feature values with it)" },
  "register-timeout-ms": { env: "PANGEA_REGISTER_TIMEOUT_MS", description: "how long to wait for all workers before failing", default: "120000" },
  "job-id": { env: "PANGEA_JOB_ID", description: "name of the job (checkpoint subdirectory)", default: "job-<timestamp>" },
};

const lr = z.coerce.number({ message: "expected a learning rate" }).positive("expected a positive learning rate").max(10, "expected a learning rate below 10");

const schema = z.object({
  ...discoveryFields,
  ...tlsFields,
  ...metricsHostField,
  host: z.string().min(1).default("127.0.0.1"),
  port: port.default(50051),
  metricsPort: port.default(0),
  advertise: address.optional(),
  psShards: positiveInt("a positive number of shards").max(64, "expected at most 64 shards").default(1),
  role: z.enum(["orchestrator", "shard"], { message: "expected orchestrator or shard" }).default("orchestrator"),
  shardIndex: positiveInt("a shard index of 1 or more").optional(),
  coordinator: address.optional(),
  workerId: workerId(`ps-${hostname()}-${process.pid}`),
  trainers: positiveInt("a positive number of trainers").max(256, "expected at most 256 trainers").default(2),
  steps: positiveInt("a positive number of steps").default(500),
  batchSize: positiveInt("a positive batch size").max(65536, "expected a batch size up to 65536").default(1024),
  evalBatchSize: positiveInt("a positive batch size").max(65536, "expected a batch size up to 65536").default(4096),
  embeddingDim: positiveInt("a positive embedding dim").max(1024, "expected an embedding dim up to 1024").default(16),
  bottomMlp: intList("bottom MLP widths").default([64, 16]),
  topMlp: intList("top MLP widths").default([64, 32]),
  denseOptimizer: z.enum(DENSE_OPTIMIZERS, { message: `expected one of ${DENSE_OPTIMIZERS.join(", ")}` }).default("adam"),
  denseLr: lr.default(0.003),
  sparseLr: lr.default(0.5),
  gradientCompression: z.enum(["none", "fp16"], { message: "expected none or fp16" }).default("none"),
  sparseOptimizer: z.enum(SPARSE_OPTIMIZERS, { message: `expected one of ${SPARSE_OPTIMIZERS.join(", ")}` }).default("adagrad"),
  slotConfig: z.string().min(1).optional(),
  maxEmbeddingBytes: nonNegativeInt("a byte count").default(0),
  maxGradientAbs: z.coerce.number({ message: "expected a positive magnitude" }).positive("expected a positive magnitude").max(3.4e38, "expected at most 3.4e38 (the float32 range)").default(1e6),
  expireSweepSeconds: positiveInt("seconds").default(60),
  seed: nonNegativeInt("a non-negative integer seed").default(42),
  checkpointDir: z.string().min(1).default(".pangea/checkpoints"),
  restoreFrom: z.string().min(1).optional(),
  exportDir: z.string().min(1).optional(),
  exportFeatureList: z.string().min(1).optional(),
  servingSync: z
    .string()
    .transform((v) => v.split(",").map((b) => b.trim()).filter(Boolean))
    .refine((xs) => xs.length > 0 && xs.every((x) => /^[A-Za-z0-9._-]+:\d{1,5}$/.test(x)), "expected host:port[,host:port...]")
    .optional(),
  syncIntervalSeconds: z.coerce.number({ message: "expected seconds" }).positive("expected positive seconds").default(10),
  denseSyncIntervalSeconds: z.coerce.number({ message: "expected seconds" }).positive("expected positive seconds").default(60),
  mode: z.enum(TRAINING_MODES, { message: "expected sync, async or hybrid" }).default("sync"),
  batchesPerStep: nonNegativeInt("a number of batches").max(4096, "expected at most 4096 batches per step").default(0),
  maxStaleness: nonNegativeInt("a number of updates").default(8),
  heartbeatMs: positiveInt("milliseconds").default(1000),
  heartbeatTimeoutMs: positiveInt("milliseconds").default(5000),
  onTrainerLoss: z.enum(["reassign", "fail"], { message: "expected reassign or fail" }).default("reassign"),
  checkpointEverySteps: nonNegativeInt("a number of steps").default(0),
  checkpointEverySeconds: nonNegativeInt("seconds").default(0),
  keepCheckpoints: nonNegativeInt("a number of checkpoints").default(3),
  resume: z.boolean().default(false),
  freshStartIfUnreadable: z.boolean().default(false),
  rejoinTimeoutMs: positiveInt("milliseconds").default(60_000),
  registerTimeoutMs: positiveInt("milliseconds").default(120_000),
  jobId: z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'").default(`job-${new Date().toISOString().replace(/[:.]/g, "-")}`),
});

export type OrchestratorConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<OrchestratorConfig> | null {
  return parseConfig(
    schema
      .refine((c) => c.role !== "shard" || (c.shardIndex !== undefined && (c.coordinator !== undefined || c.discovery !== "static")), {
        message: "--role shard needs --shard-index, and --coordinator unless --discovery finds the orchestrator",
        path: ["role"],
      })
      .refine((c) => c.heartbeatTimeoutMs > c.heartbeatMs, { message: "must be longer than --heartbeat-ms", path: ["heartbeatTimeoutMs"] })
      .refine((c) => !(c.resume && c.restoreFrom), { message: "--resume continues the job's own checkpoints; do not combine it with --restore-from", path: ["resume"] })
      .refine((c) => c.checkpointEverySeconds === 0 || c.psShards === 1, {
        message: "time-based checkpoints need one parameter-server shard (shards cannot see the clock the orchestrator checkpoints by); use --checkpoint-every-steps",
        path: ["checkpointEverySeconds"],
      })
      .refine((c) => c.exportDir === undefined || c.psShards === 1, {
        message: "exports during training need one parameter-server shard (the other shards' rows are written after shard 0's checkpoint); export a sharded checkpoint with pangea export",
        path: ["exportDir"],
      })
      .refine((c) => c.exportFeatureList === undefined || c.exportDir !== undefined, { message: "is copied into the versions --export-dir writes; give --export-dir too", path: ["exportFeatureList"] }),
    FLAGS,
    argv,
    env,
  );
}
