import { availableParallelism, hostname } from "node:os";
import { z } from "zod";
import { milliseconds, seedNumber, decimalNumber, flag, flagTable, tlsFields, metricsHostField, metricsTokenFileField, discoveryFields, workerId, address, HOST_PORT_RE, nonNegativeInt, port, positiveInt, type FlagTable } from "@pangea/kit";

/** What a file source may hold in memory when --max-memory-mb is not given, in MiB (sources use it too). */
export const DEFAULT_MAX_MEMORY_MB = 1024;
/** What all batch streams together may hold unacknowledged when --max-stream-mb is not given, in MiB (compute's StreamBudget uses it too). */
export const DEFAULT_MAX_STREAM_MB = 256;
/** Batch streams compute serves at once when --max-batch-streams is not given. */
export const DEFAULT_MAX_BATCH_STREAMS = 256;
/**
 * Batch streams of one trainer rank compute serves at once when --max-streams-per-rank is not given: a trainer holds
 * at most two (its on-demand feed and an evaluation), so two more leave room for a restart's overlap.
 */
export const DEFAULT_MAX_STREAMS_PER_RANK = 4;

/** Comma-separated paths; an empty entry (a doubled or trailing comma) is refused rather than dropped: a path may be missing there. */
const pathList = z
  .string()
  .refine((v) => v.trim() !== "", "expected comma-separated paths")
  .refine((v) => v.trim() === "" || v.split(",").every((p) => p.trim() !== ""), "expected comma-separated paths, got an empty entry (a doubled, leading or trailing comma)")
  .transform((v) => v.split(",").map((p) => p.trim()));

/** Compute's flags (its --help, the README table, and `pangea run`'s pass-through flags). */
export const computeSchema = z.object({
  ...discoveryFields,
  ...tlsFields,
  ...metricsHostField,
  ...metricsTokenFileField,
  host: flag(z.string().min(1, "expected an interface address").default("127.0.0.1"), { env: "PANGEA_COMPUTE_HOST", description: "interface to serve on" }),
  port: flag(port.default(50052), { env: "PANGEA_COMPUTE_PORT", description: "port to serve on (0 = any free port)" }),
  metricsPort: flag(port.default(0), { env: "PANGEA_METRICS_PORT", description: "HTTP port of /metrics (Prometheus; 0 = any free port, printed at start)" }),
  advertise: flag(address.optional(), { env: "PANGEA_COMPUTE_ADVERTISE", description: "address trainers use to reach this service", shown: "host:bound port" }),
  orchestrator: flag(address.default("127.0.0.1:50051"), { env: "PANGEA_ORCHESTRATOR", description: "orchestrator address to register with" }),
  data: flag(pathList.optional(), { env: "PANGEA_DATA", description: "data to train on: files, directories (their files) or quoted globs ('day_*.gz'), comma-separated; absent = built-in synthetic data" }),
  evalData: flag(pathList.optional(), { env: "PANGEA_EVAL_DATA", description: "held-out data, as --data: then every --data record trains and --eval-fraction is not used" }),
  format: flag(z.enum(["criteo", "instance", "example", "examplebatch", "parquet"], { message: "expected criteo, instance, example, examplebatch or parquet" }).default("criteo"), { env: "PANGEA_FORMAT", description: "criteo (TSV), instance, example, examplebatch or parquet" }),
  framing: flag(z.enum(["pb", "tfrecord"], { message: "expected pb or tfrecord" }).default("pb"), { env: "PANGEA_FRAMING", description: "record framing of Monolith files: pb or tfrecord" }),
  compression: flag(z.enum(["auto", "none", "gzip", "zlib", "snappy", "zstd"], { message: "expected auto, none, gzip, zlib, snappy or zstd" }).default("auto"), { env: "PANGEA_COMPRESSION", description: "auto (by file name), none, gzip, zlib, snappy or zstd" }),
  featureList: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_FEATURE_LIST", description: "feature list (JSON or Monolith feature_list.conf); needed for Monolith formats" }),
  sortId: flag(z.enum(["auto", "true", "false"], { message: "expected auto, true or false" }).default("auto").transform((v) => (v === "auto" ? v : v === "true")), { env: "PANGEA_SORT_ID", description: "pb framing: records carry a sort id (true/false; auto: Instance and Example files do, ExampleBatch files do not)" }),
  kafkaDump: flag(z.boolean().default(false), { env: "PANGEA_KAFKA_DUMP", description: "pb framing: records carry a kafka dump header" }),
  kafkaDumpPrefix: flag(z.boolean().default(false), { env: "PANGEA_KAFKA_DUMP_PREFIX", description: "pb framing: records carry a kafka dump prefix" }),
  lagrangexHeader: flag(z.boolean().default(false), { env: "PANGEA_LAGRANGEX_HEADER", description: "pb framing: records carry a lagrangex header" }),
  kafkaBrokers: flag(z
    .string()
    .transform((v) => v.split(",").map((b) => b.trim()).filter(Boolean))
    .refine((bs) => bs.length > 0 && bs.every((b) => HOST_PORT_RE.test(b)), "expected host:port[,host:port...] (ports 1..65535)")
    .optional(), { env: "PANGEA_KAFKA_BROKERS", description: "read from Kafka at host:port[,...] instead of files" }),
  kafkaTopic: flag(z.string().min(1, "expected a topic name").optional(), { env: "PANGEA_KAFKA_TOPIC", description: "topic whose message values are --format records" }),
  kafkaGroup: flag(z.string().min(1, "expected a consumer group name").default("pangea-compute"), { env: "PANGEA_KAFKA_GROUP", description: "consumer group (committed offsets live here)" }),
  kafkaIdleTimeoutMs: flag(milliseconds().default(30_000), { env: "PANGEA_KAFKA_IDLE_TIMEOUT_MS", description: "end a trainer's stream after this long without records" }),
  onBadRecord: flag(z.enum(["fail", "skip"], { message: "expected fail or skip" }).default("fail"), { env: "PANGEA_ON_BAD_RECORD", description: "fail, or skip (and count) records that do not parse" }),
  maxMemoryMb: flag(positiveInt("megabytes", { min: 16, message: "expected at least 16 (MiB)" }).default(DEFAULT_MAX_MEMORY_MB), { env: "PANGEA_MAX_MEMORY_MB", description: "MiB a file source may hold in memory, at least 16 (records are read back from the record cache on disk)" }),
  maxStreamMb: flag(positiveInt("megabytes", { max: 1 << 20, message: "expected at most 1048576 (MiB)" }).default(DEFAULT_MAX_STREAM_MB), { env: "PANGEA_MAX_STREAM_MB", description: "MiB of encoded batches all batch streams together may have sent and not had acknowledged; past it a stream holding batches gets no more until some are acknowledged (one holding none always gets one)" }),
  maxBatchStreams: flag(positiveInt("a stream count", { max: 65536, message: "expected at most 65536 streams" }).default(DEFAULT_MAX_BATCH_STREAMS), { env: "PANGEA_MAX_BATCH_STREAMS", description: "batch streams served at once; more are refused with RESOURCE_EXHAUSTED" }),
  maxStreamsPerRank: flag(positiveInt("a stream count", { max: 1024, message: "expected at most 1024 streams" }).default(DEFAULT_MAX_STREAMS_PER_RANK), { env: "PANGEA_MAX_STREAMS_PER_RANK", description: "batch streams of one trainer rank served at once, once the orchestrator has given compute its token key; a newer stream closes the rank's oldest" }),
  cacheDir: flag(z.string().min(1, "expected a path").optional(), { env: "PANGEA_CACHE_DIR", description: "where file sources cache their decoded records, reused after a restart", shown: "<first data file's directory>/.pangea-cache" }),
  parseThreads: flag(positiveInt("a thread count", { max: 256, message: "expected at most 256 threads" }).default(availableParallelism()), { env: "PANGEA_PARSE_THREADS", description: "threads parsing and hashing file records while the record cache is written (1 = compute's main thread only; at most one per 160 MiB of --max-memory-mb)", shown: "the machine's cores" }),
  evalFraction: flag(decimalNumber("expected a number").pipe(z.number().min(0, "expected a fraction in [0, 0.9]").max(0.9, "expected a fraction in [0, 0.9]")).default(0.1), { env: "PANGEA_EVAL_FRACTION", description: "share of the records held out: the last ones of all --data files read in order (so the last file's first)" }),
  evalRecords: flag(nonNegativeInt("a record count").default(50_000), { env: "PANGEA_EVAL_RECORDS", description: "held-out records of the synthetic data" }),
  seed: flag(seedNumber().default(42), { env: "PANGEA_SEED", description: "seed of the synthetic data" }),
  syntheticTasks: flag(positiveInt("1 or 2", { max: 2, message: "expected 1 or 2" }).default(1), { env: "PANGEA_SYNTHETIC_TASKS", description: "tasks of the synthetic data: 1 (its label, the task named ctr) or 2 (click, and conversion observed only on clicks); pangea run gives 2 to a multi-task --model" }),
  connectTimeoutMs: flag(milliseconds().default(15_000), { env: "PANGEA_CONNECT_TIMEOUT_MS", description: "how long to wait for the orchestrator" }),
  rejoinTimeoutMs: flag(milliseconds().default(60_000), { env: "PANGEA_REJOIN_TIMEOUT_MS", description: "how long to wait for a lost orchestrator to come back" }),
  workerId: flag(workerId(`compute-${hostname()}-${process.pid}`), { env: "PANGEA_WORKER_ID", description: "name of this process in the cluster", shown: "compute-<host>-<pid>" }),
});

export const COMPUTE_FLAGS: FlagTable = flagTable(computeSchema.shape);
