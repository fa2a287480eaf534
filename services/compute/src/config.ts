import { hostname } from "node:os";
import { z } from "zod";
import { DISCOVERY_FLAGS, TLS_FLAGS, tlsFields, METRICS_HOST_FLAG, metricsHostField, discoveryFields, workerId, address, nonNegativeInt, parseConfig, port, positiveInt, type FlagTable } from "@pangea/kit";

export const FLAGS: FlagTable = {
  ...DISCOVERY_FLAGS,
  ...TLS_FLAGS,
  ...METRICS_HOST_FLAG,
  host: { env: "PANGEA_COMPUTE_HOST", description: "interface to serve on", default: "127.0.0.1" },
  port: { env: "PANGEA_COMPUTE_PORT", description: "port to serve on (0 = any free port)", default: "50052" },
  "metrics-port": { env: "PANGEA_METRICS_PORT", description: "HTTP port of /metrics (Prometheus; 0 = any free port, printed at start)", default: "0" },
  advertise: { env: "PANGEA_COMPUTE_ADVERTISE", description: "address trainers use to reach this service", default: "host:bound port" },
  orchestrator: { env: "PANGEA_ORCHESTRATOR", description: "orchestrator address to register with", default: "127.0.0.1:50051" },
  data: { env: "PANGEA_DATA", description: "data file(s) to train on, comma-separated; absent = built-in synthetic data" },
  format: { env: "PANGEA_FORMAT", description: "criteo (TSV), instance, example, examplebatch or parquet", default: "criteo" },
  framing: { env: "PANGEA_FRAMING", description: "record framing of Monolith files: pb or tfrecord", default: "pb" },
  compression: { env: "PANGEA_COMPRESSION", description: "auto (by file name), none, gzip, zlib, snappy or zstd", default: "auto" },
  "feature-list": { env: "PANGEA_FEATURE_LIST", description: "feature list (JSON or Monolith feature_list.conf); needed for Monolith formats" },
  "sort-id": { env: "PANGEA_SORT_ID", description: "pb framing: records carry a sort id (true/false)", default: "true" },
  "kafka-dump": { env: "PANGEA_KAFKA_DUMP", description: "pb framing: records carry a kafka dump header", boolean: true },
  "kafka-dump-prefix": { env: "PANGEA_KAFKA_DUMP_PREFIX", description: "pb framing: records carry a kafka dump prefix", boolean: true },
  "lagrangex-header": { env: "PANGEA_LAGRANGEX_HEADER", description: "pb framing: records carry a lagrangex header", boolean: true },
  "kafka-brokers": { env: "PANGEA_KAFKA_BROKERS", description: "read from Kafka at host:port[,...] instead of files" },
  "kafka-topic": { env: "PANGEA_KAFKA_TOPIC", description: "topic whose message values are --format records" },
  "kafka-group": { env: "PANGEA_KAFKA_GROUP", description: "consumer group (committed offsets live here)", default: "pangea-compute" },
  "kafka-idle-timeout-ms": { env: "PANGEA_KAFKA_IDLE_TIMEOUT_MS", description: "end a trainer's stream after this long without records", default: "30000" },
  "on-bad-record": { env: "PANGEA_ON_BAD_RECORD", description: "fail, or skip (and count) records that do not parse", default: "fail" },
  "eval-fraction": { env: "PANGEA_EVAL_FRACTION", description: "share of a data file's records, from its end, held out", default: "0.1" },
  "eval-records": { env: "PANGEA_EVAL_RECORDS", description: "held-out records of the synthetic data", default: "50000" },
  seed: { env: "PANGEA_SEED", description: "seed of the synthetic data", default: "42" },
  "connect-timeout-ms": { env: "PANGEA_CONNECT_TIMEOUT_MS", description: "how long to wait for the orchestrator", default: "15000" },
  "rejoin-timeout-ms": { env: "PANGEA_REJOIN_TIMEOUT_MS", description: "how long to wait for a lost orchestrator to come back", default: "60000" },
  "worker-id": { env: "PANGEA_WORKER_ID", description: "name of this process in the cluster", default: "compute-<host>-<pid>" },
};

const schema = z.object({
  ...discoveryFields,
  ...tlsFields,
  ...metricsHostField,
  host: z.string().min(1).default("127.0.0.1"),
  port: port.default(50052),
  metricsPort: port.default(0),
  advertise: address.optional(),
  orchestrator: address.default("127.0.0.1:50051"),
  data: z
    .string()
    .min(1)
    .transform((v) => v.split(",").map((p) => p.trim()).filter(Boolean))
    .optional(),
  format: z.enum(["criteo", "instance", "example", "examplebatch", "parquet"], { message: "expected criteo, instance, example, examplebatch or parquet" }).default("criteo"),
  framing: z.enum(["pb", "tfrecord"], { message: "expected pb or tfrecord" }).default("pb"),
  compression: z.enum(["auto", "none", "gzip", "zlib", "snappy", "zstd"], { message: "expected auto, none, gzip, zlib, snappy or zstd" }).default("auto"),
  featureList: z.string().min(1).optional(),
  sortId: z.enum(["true", "false"], { message: "expected true or false" }).default("true").transform((v) => v === "true"),
  kafkaDump: z.boolean().default(false),
  kafkaDumpPrefix: z.boolean().default(false),
  lagrangexHeader: z.boolean().default(false),
  kafkaBrokers: z
    .string()
    .transform((v) => v.split(",").map((b) => b.trim()).filter(Boolean))
    .refine((bs) => bs.length > 0 && bs.every((b) => /^[A-Za-z0-9._-]+:\d{1,5}$/.test(b)), "expected host:port[,host:port...]")
    .optional(),
  kafkaTopic: z.string().min(1).optional(),
  kafkaGroup: z.string().min(1).default("pangea-compute"),
  kafkaIdleTimeoutMs: positiveInt("milliseconds").default(30_000),
  onBadRecord: z.enum(["fail", "skip"], { message: "expected fail or skip" }).default("fail"),
  evalFraction: z.coerce.number({ message: "expected a number" }).min(0, "expected a fraction in [0, 0.9]").max(0.9, "expected a fraction in [0, 0.9]").default(0.1),
  evalRecords: nonNegativeInt("a record count").default(50_000),
  seed: nonNegativeInt("a non-negative integer seed").default(42),
  connectTimeoutMs: positiveInt("milliseconds").default(15_000),
  rejoinTimeoutMs: positiveInt("milliseconds").default(60_000),
  workerId: workerId(`compute-${hostname()}-${process.pid}`),
});

export type ComputeConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<ComputeConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
