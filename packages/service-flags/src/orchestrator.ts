import { hostname } from "node:os";
import { z } from "zod";
import { ARCHITECTURES, ARCHITECTURE_NAMES } from "@pangea/model";
import { milliseconds, wholeSeconds, seconds, seedNumber, decimalNumber, flag, flagTable, tlsFields, metricsHostField, metricsTokenFileField, discoveryFields, workerId, address, HOST_PORT_RE, intList, nonNegativeInt, port, positiveInt, type FlagTable } from "@pangea/kit";

/** The embedding optimizers the orchestrator implements (services/orchestrator/src/optim/sparse-optimizers.ts). */
export const SPARSE_OPTIMIZERS = ["sgd", "adagrad", "ftrl", "adam", "amsgrad", "momentum", "rmsprop", "adadelta"] as const;
export type SparseOptimizerName = (typeof SPARSE_OPTIMIZERS)[number];

/** The dense optimizers the orchestrator implements (services/orchestrator/src/optim/optimizers.ts). */
export const DENSE_OPTIMIZERS = ["adam", "adagrad"] as const;
export type DenseOptimizerName = (typeof DENSE_OPTIMIZERS)[number];

export const TRAINING_MODES = ["sync", "async", "hybrid"] as const;
export type TrainingMode = (typeof TRAINING_MODES)[number];

/** What --keep-best compares: a binary task's held-out AUC (higher is better) or log loss (lower is better). */
export const BEST_METRICS = ["auc", "logloss"] as const;
export type BestMetric = (typeof BEST_METRICS)[number];

/** An L2 strength: a finite number >= 0 (0 = none). */
const l2 = decimalNumber("expected an L2 strength (a number >= 0)").pipe(z.number().min(0, "expected an L2 strength >= 0").max(1e6, "expected an L2 strength of at most 1e6"));

const lr = decimalNumber("expected a learning rate").pipe(z.number().positive("expected a positive learning rate").max(10, "expected a learning rate below 10"));

/** --serving-sync's value that finds the replicas in etcd instead of naming them: `discovery:<model>`. */
const SERVING_SYNC_DISCOVERY = "discovery";
const DISCOVERY_VALUE = new RegExp(`^${SERVING_SYNC_DISCOVERY}:([^,\\s/]+)$`);

/**
 * The model whose serving replicas etcd lists (serving's --model-name) when --serving-sync is `discovery:<model>`;
 * null when it names the replicas.
 */
export function discoveredSyncModel(servingSync: readonly string[] | undefined): string | null {
  return servingSync?.length === 1 ? (DISCOVERY_VALUE.exec(servingSync[0]!)?.[1] ?? null) : null;
}

/** The orchestrator's flags (its --help, the README table, and `pangea run`'s pass-through flags). */
export const orchestratorSchema = z.object({
  ...discoveryFields,
  ...tlsFields,
  ...metricsHostField,
  ...metricsTokenFileField,
  host: flag(z.string().min(1, "expected an interface address").default("127.0.0.1"), { env: "PANGEA_ORCHESTRATOR_HOST", description: "interface to serve on" }),
  port: flag(port.default(50051), { env: "PANGEA_ORCHESTRATOR_PORT", description: "port to serve on (0 = any free port)" }),
  metricsPort: flag(port.default(0), { env: "PANGEA_METRICS_PORT", description: "HTTP port of /metrics (Prometheus) and, on the orchestrator, the live dashboard at / (0 = any free port, printed at start)" }),
  advertise: flag(address.optional(), { env: "PANGEA_ORCHESTRATOR_ADVERTISE", description: "address trainers use to reach this process", shown: "host:bound port" }),
  psShards: flag(positiveInt("a positive number of shards", { max: 64, message: "expected at most 64 shards" }).default(1), { env: "PANGEA_PS_SHARDS", description: "parameter-server shards in all, this orchestrator (shard 0) included" }),
  role: flag(z.enum(["orchestrator", "shard"], { message: "expected orchestrator or shard" }).default("orchestrator"), { env: "PANGEA_ROLE", description: "orchestrator, or shard: a parameter-server shard of another orchestrator's job" }),
  shardIndex: flag(positiveInt("a shard index of 1 or more").optional(), { env: "PANGEA_SHARD_INDEX", description: "role shard: this shard's index (1..ps-shards-1)" }),
  coordinator: flag(address.optional(), { env: "PANGEA_COORDINATOR", description: "role shard: the orchestrator to join (static discovery)" }),
  workerId: flag(workerId(`ps-${hostname()}-${process.pid}`), { env: "PANGEA_WORKER_ID", description: "role shard: name in the cluster", shown: "ps-<host>-<pid>" }),
  trainers: flag(positiveInt("a positive number of trainers", { max: 256, message: "expected at most 256 trainers" }).default(2), { env: "PANGEA_TRAINERS", description: "trainers the job waits for (world size)" }),
  steps: flag(positiveInt("a positive number of steps").default(500), { env: "PANGEA_STEPS", description: "synchronous training steps" }),
  batchSize: flag(positiveInt("a positive batch size", { max: 65536, message: "expected a batch size up to 65536" }).default(1024), { env: "PANGEA_BATCH_SIZE", description: "samples per global batch: a trainer computes one batch per step while --batches-per-step is the trainer count (the default), more or fewer otherwise" }),
  evalBatchSize: flag(positiveInt("a positive batch size", { max: 65536, message: "expected a batch size up to 65536" }).default(4096), { env: "PANGEA_EVAL_BATCH_SIZE", description: "samples per evaluation batch" }),
  model: flag(z.enum(ARCHITECTURE_NAMES as [string, ...string[]], { message: `expected one of ${ARCHITECTURE_NAMES.join(", ")}` }).default("dlrm"), { env: "PANGEA_MODEL", description: `the architecture: ${ARCHITECTURE_NAMES.join(", ")} (its hyper-parameters in --model-config)` }),
  modelConfig: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_MODEL_CONFIG", description: "a JSON file of the architecture's hyper-parameters (e.g. {\"crossLayers\": 2, \"deepMlp\": [64, 32]}); fields left out take its defaults" }),
  embeddingDim: flag(positiveInt("a positive embedding dim", { max: 1024, message: "expected an embedding dim up to 1024" }).default(16), { env: "PANGEA_EMBEDDING_DIM", description: "embedding width of each slot whose --slot-config or feature list gives none" }),
  bottomMlp: flag(intList("bottom MLP widths").optional(), { env: "PANGEA_BOTTOM_MLP", description: "dlrm: bottom MLP widths; the last must equal embedding-dim", shown: "64,<embedding-dim>" }),
  topMlp: flag(intList("top MLP widths").optional(), { env: "PANGEA_TOP_MLP", description: "dlrm: top MLP hidden widths (a logit layer follows)", shown: "64,32" }),
  denseOptimizer: flag(z.enum(DENSE_OPTIMIZERS, { message: `expected one of ${DENSE_OPTIMIZERS.join(", ")}` }).default("adam"), { env: "PANGEA_DENSE_OPTIMIZER", description: "optimizer of the dense parameters: adam (bias-corrected, betas 0.9/0.999) or adagrad (accumulator from 0, eps 1e-10, as torch.optim.Adagrad); recorded in checkpoints, and a job restored from a checkpoint of the other one is refused" }),
  denseLr: flag(lr.default(0.003), { env: "PANGEA_DENSE_LR", description: "learning rate of the dense optimizer" }),
  denseL2: flag(l2.default(0), { env: "PANGEA_DENSE_L2", description: "coupled L2 on every dense parameter: the dense optimizer's gradient + λ·w, as torch.optim's weight_decay (0 = none); a training setting, not recorded in checkpoints" }),
  gradientCompression: flag(z.enum(["none", "fp16"], { message: "expected none or fp16" }).default("none"), { env: "PANGEA_GRADIENT_COMPRESSION", description: "none, or fp16: trainers push gradients and pull embedding rows as IEEE float16 (half the bytes; dense parameters still travel as float32)" }),
  denseExchange: flag(z.enum(["auto", "off"], { message: "expected auto or off" }).default("auto"), { env: "PANGEA_DENSE_EXCHANGE", description: "auto: trainers on this machine take the dense parameters and their training pulls' embedding rows, and give the gradients of both, as files in a private directory under /dev/shm instead of inside the gRPC messages (other trainers, and any without /dev/shm, use the messages); off: always the messages" }),
  sparseLr: flag(lr.default(0.5), { env: "PANGEA_SPARSE_LR", description: "learning rate of the embedding optimizer" }),
  sparseL2: flag(l2.default(0), { env: "PANGEA_SPARSE_L2", description: "L2 on embedding rows, lazily (only the rows a step touches): row gradient + λ·row (ftrl: its own proximal l2); the default of every slot's hyper l2 in --slot-config (0 = none)" }),
  sparseOptimizer: flag(z.enum(SPARSE_OPTIMIZERS, { message: `expected one of ${SPARSE_OPTIMIZERS.join(", ")}` }).default("adagrad"), { env: "PANGEA_SPARSE_OPTIMIZER", description: "embedding optimizer: sgd, adagrad, ftrl, adam, amsgrad, momentum, rmsprop or adadelta, with Monolith's update rules and defaults (state kept beside each row)" }),
  slotConfig: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_SLOT_CONFIG", description: "a JSON file of per-slot embedding settings (dim, pooling, initializer, optimizer, hyper, occurrenceThreshold, expireSeconds)" }),
  maxEmbeddingBytes: flag(nonNegativeInt("a byte count").default(0), { env: "PANGEA_MAX_EMBEDDING_BYTES", description: "memory limit of the embedding tables (0 = none)" }),
  maxGradientAbs: flag(decimalNumber("expected a positive magnitude").pipe(z.number().positive("expected a positive magnitude").max(3.4e38, "expected at most 3.4e38 (the float32 range)")).default(1e6), { env: "PANGEA_MAX_GRADIENT_ABS", description: "largest gradient magnitude taken: a push whose dense gradient holds a value beyond it (or NaN/infinite) is refused with INVALID_ARGUMENT, an embedding-row gradient beyond it is skipped; both count as gradients rejected in the status" }),
  expireSweepSeconds: flag(wholeSeconds().default(60), { env: "PANGEA_EXPIRE_SWEEP_SECONDS", description: "how often rows past their slot's expire time are evicted" }),
  seed: flag(seedNumber().default(42), { env: "PANGEA_SEED", description: "seed of the initial parameters and of the dropout masks" }),
  mode: flag(z.enum(TRAINING_MODES, { message: "expected sync, async or hybrid" }).default("sync"), { env: "PANGEA_MODE", description: "sync (a step's batches averaged), async (applied on arrival, bounded staleness) or hybrid (embeddings async, dense sync)" }),
  batchesPerStep: flag(nonNegativeInt("a number of batches", { max: 4096, message: "expected at most 4096 batches per step" }).default(0), { env: "PANGEA_BATCHES_PER_STEP", description: "global batches per step, however many trainers share them (0 = one per expected trainer)" }),
  maxStaleness: flag(nonNegativeInt("a number of updates").default(8), { env: "PANGEA_MAX_STALENESS", description: "async: drop gradients computed on parameters more than this many updates old" }),
  heartbeatMs: flag(milliseconds().default(1000), { env: "PANGEA_HEARTBEAT_MS", description: "how often trainers send a heartbeat" }),
  heartbeatTimeoutMs: flag(milliseconds().default(5000), { env: "PANGEA_HEARTBEAT_TIMEOUT_MS", description: "a trainer silent this long is declared dead and its batches reassigned" }),
  stallTimeoutSeconds: flag(wholeSeconds("zero").default(600), { env: "PANGEA_STALL_TIMEOUT_SECONDS", description: "a trainer holding a batch this long without its gradients arriving, or an evaluation without its report, is declared dead as if silent and its work reassigned (0 = never); time the orchestrator itself is blocked does not count" }),
  onTrainerLoss: flag(z.enum(["reassign", "fail"], { message: "expected reassign or fail" }).default("reassign"), { env: "PANGEA_ON_TRAINER_LOSS", description: "reassign (a lost trainer's batches go to the others) or fail (the job fails)" }),
  checkpointEverySteps: flag(nonNegativeInt("a number of steps").default(0), { env: "PANGEA_CHECKPOINT_EVERY_STEPS", description: "save a checkpoint every N steps (0 = only at the end)" }),
  checkpointEverySeconds: flag(wholeSeconds("zero").default(0), { env: "PANGEA_CHECKPOINT_EVERY_SECONDS", description: "save a checkpoint at the first step boundary N seconds after the last (0 = off)" }),
  keepCheckpoints: flag(nonNegativeInt("a number of checkpoints").default(3), { env: "PANGEA_KEEP_CHECKPOINTS", description: "keep the newest K checkpoints of the job (0 = all)" }),
  evalEverySteps: flag(nonNegativeInt("a number of steps").default(0), { env: "PANGEA_EVAL_EVERY_STEPS", description: "also evaluate the held-out split every N steps while training (training pauses for it); each evaluation is kept in the job's status (0 = only at the end)" }),
  keepBest: flag(z.boolean().default(false), { env: "PANGEA_KEEP_BEST", description: "with --eval-every-steps: checkpoint the step of the best evaluation so far (best.json names it; --keep-checkpoints never prunes it) and export it at the end instead of the last step" }),
  bestMetric: flag(z.enum(BEST_METRICS, { message: `expected one of ${BEST_METRICS.join(", ")}` }).optional(), { env: "PANGEA_BEST_METRIC", description: "what --keep-best compares: auc (higher is better) or logloss (lower is better)", shown: "auc" }),
  bestTask: flag(z.string().min(1, "expected a task name").optional(), { env: "PANGEA_BEST_TASK", description: "the task whose --best-metric --keep-best compares (a binary task of the data)", shown: "the first task" }),
  resume: flag(z.boolean().default(false), { env: "PANGEA_RESUME", description: "continue the job (same --job-id) from its newest intact checkpoint: step, parameters and data position" }),
  freshStartIfUnreadable: flag(z.boolean().default(false), { env: "PANGEA_FRESH_START_IF_UNREADABLE", description: "with --resume: if the job has checkpoints but none can be read, start over (they are kept) instead of exiting 1" }),
  rejoinTimeoutMs: flag(milliseconds().default(60_000), { env: "PANGEA_REJOIN_TIMEOUT_MS", description: "role shard: how long to wait for a lost orchestrator to come back" }),
  servingSync: flag(z
    .string()
    .transform((v) => v.split(",").map((b) => b.trim()).filter(Boolean))
    .refine((xs) => xs.length > 0 && (discoveredSyncModel(xs) !== null || xs.every((x) => HOST_PORT_RE.test(x))), `expected host:port[,host:port...] (ports 1..65535), or ${SERVING_SYNC_DISCOVERY}:<model> (the --model-name of the serving replicas to find in etcd)`)
    .optional(), { env: "PANGEA_SERVING_SYNC", description: `serving replicas (host:port[,...]) to push changed embedding rows and dense weights to while training; ${SERVING_SYNC_DISCOVERY}:<model>: every serving replica of that --model-name announced in --discovery's etcd (needs --discovery etcd://..., on the parameter-server shards too), as replicas come and go (one that joins is sent every row)` }),
  servingSyncTokenFile: flag(z.string().min(1, "expected a file").optional(), { env: "PANGEA_SERVING_SYNC_TOKEN_FILE", description: "a file holding serving's API token (its --api-token-file): presented on every parameter sync push, which a serving with a token requires unless TLS certificates say who pushes" }),
  syncIntervalSeconds: flag(seconds().default(10), { env: "PANGEA_SYNC_INTERVAL_SECONDS", description: "how often changed rows (and evictions) go to serving" }),
  denseSyncIntervalSeconds: flag(seconds().default(60), { env: "PANGEA_DENSE_SYNC_INTERVAL_SECONDS", description: "how often the dense weights go to serving" }),
  restoreFrom: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_RESTORE_FROM", description: "start from this checkpoint (shard 0's step-N directory) instead of fresh parameters" }),
  checkpointDir: flag(z.string().min(1, "expected a path").default(".pangea/checkpoints"), { env: "PANGEA_CHECKPOINT_DIR", description: "where the final checkpoint is written" }),
  exportDir: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_EXPORT_DIR", description: "a model base path (pangea export --out): the final checkpoint is exported there as a new version, and so is the first checkpoint while it holds no version (serving then has a model for parameter sync to keep fresh); a checkpoint an earlier run of the job exported (resumed after a kill) is that version, not a copy; one parameter-server shard only" }),
  exportFeatureList: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_EXPORT_FEATURE_LIST", description: "with --export-dir: the feature list the data was read with, copied into each version (serving decodes Monolith inputs and hashes raw feature values with it)" }),
  registerTimeoutMs: flag(milliseconds().default(120_000), { env: "PANGEA_REGISTER_TIMEOUT_MS", description: "how long to wait for all workers before failing" }),
  jobId: flag(z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'").refine((id) => id !== "." && id !== "..", "expected a name, not '.' or '..' (the job's checkpoints go in a directory of that name)").default(`job-${new Date().toISOString().replace(/[:.]/g, "-")}`), { env: "PANGEA_JOB_ID", description: "name of the job (checkpoint subdirectory)", shown: "job-<timestamp>" }),
});

export const ORCHESTRATOR_FLAGS: FlagTable = flagTable(orchestratorSchema.shape);

/**
 * The orchestrator's flags with what they require of each other: the
 * orchestrator reads its configuration with it, and `pangea run` checks its
 * orchestrator's flags with it before starting any process.
 */
export const orchestratorConfigSchema = orchestratorSchema
  .refine((c) => c.role !== "shard" || (c.shardIndex !== undefined && (c.coordinator !== undefined || c.discovery !== "static")), {
    message: "--role shard needs --shard-index, and --coordinator unless --discovery finds the orchestrator",
    path: ["role"],
  })
  .refine((c) => c.shardIndex === undefined || c.role === "shard", { message: "numbers a parameter-server shard; give --role shard too", path: ["shardIndex"] })
  .refine((c) => c.role !== "shard" || c.shardIndex === undefined || (c.shardIndex >= 1 && c.shardIndex < c.psShards), {
    message: "expected 1 .. --ps-shards - 1 (shard 0 is the orchestrator)",
    path: ["shardIndex"],
  })
  .refine((c) => !c.freshStartIfUnreadable || c.resume, { message: "applies to --resume (a job's checkpoints none of which can be read); give --resume too", path: ["freshStartIfUnreadable"] })
  .refine((c) => c.heartbeatTimeoutMs > c.heartbeatMs, { message: "must be longer than --heartbeat-ms", path: ["heartbeatTimeoutMs"] })
  .refine((c) => !(c.resume && c.restoreFrom), { message: "--resume continues the job's own checkpoints; do not combine it with --restore-from", path: ["resume"] })
  .refine((c) => c.exportDir === undefined || c.psShards === 1, {
    message: "exports during training need one parameter-server shard (the other shards' rows are written after shard 0's checkpoint); export a sharded checkpoint with pangea export",
    path: ["exportDir"],
  })
  .refine((c) => !c.keepBest || c.evalEverySteps > 0, { message: "needs evaluations to compare: give --eval-every-steps N too", path: ["keepBest"] })
  .refine((c) => c.bestTask === undefined || c.keepBest, { message: "names the task --keep-best compares; give --keep-best too", path: ["bestTask"] })
  .refine((c) => c.bestMetric === undefined || c.keepBest, { message: "names what --keep-best compares; give --keep-best too", path: ["bestMetric"] })
  .refine((c) => c.exportFeatureList === undefined || c.exportDir !== undefined, { message: "is copied into the versions --export-dir writes; give --export-dir too", path: ["exportFeatureList"] })
  .refine((c) => discoveredSyncModel(c.servingSync) === null || c.discovery.startsWith("etcd://"), { message: `${SERVING_SYNC_DISCOVERY}:<model> finds serving replicas in etcd: give --discovery etcd://host:port too`, path: ["servingSync"] });


/** Whether --model names an architecture built for several tasks (its registry entry's multiTask): `pangea run` then gives the built-in data two. */
export function isMultiTaskModel(name: string, architectures: ReadonlyMap<string, { multiTask?: boolean }> = ARCHITECTURES): boolean {
  return architectures.get(name)?.multiTask === true;
}
