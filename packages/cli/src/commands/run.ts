import { availableParallelism } from "node:os";
import { z } from "zod";
import { intList, nonNegativeInt, parseConfig, port, positiveInt, usageText, type FlagTable } from "@pangea/kit";
import type { JobStatus__Output } from "@pangea/schema";
import { loadTransportSecurity, writeClusterCerts, type TransportSecurity } from "@pangea/rpc";
import { LocalCluster, type ClusterOptions } from "../launcher/local-cluster.js";
import { StatusClient } from "./status-client.js";
import { ProgressPrinter } from "./progress.js";
import { fetchSyncSummary, formatSummary, statusJson, type SyncSummary } from "./summary.js";

export const RUN_FLAGS: FlagTable = {
  trainers: { description: "trainer processes", default: "2" },
  "ps-shards": { description: "parameter-server shards (the orchestrator is one)", default: "1" },
  steps: { description: "synchronous training steps", default: "500" },
  "batch-size": { description: "samples per trainer per step", default: "1024" },
  data: { description: "data file(s), comma-separated; absent = built-in synthetic data" },
  format: { description: "criteo (TSV), instance, example, examplebatch or parquet", default: "criteo" },
  framing: { description: "Monolith files: pb or tfrecord", default: "pb" },
  compression: { description: "auto, none, gzip, zlib, snappy or zstd", default: "auto" },
  "feature-list": { description: "feature list for Monolith formats (JSON or feature_list.conf)" },
  "sort-id": { description: "pb framing: records carry a sort id", default: "true" },
  "on-bad-record": { description: "fail, or skip and count records that do not parse", default: "fail" },
  "kafka-brokers": { description: "read from Kafka at host:port[,...] instead of files" },
  "kafka-topic": { description: "Kafka topic of --format records" },
  "kafka-group": { description: "Kafka consumer group", default: "pangea-compute" },
  "eval-records": { description: "held-out records of the synthetic data", default: "50000" },
  "eval-fraction": { description: "share of a data file held out", default: "0.1" },
  seed: { description: "seed of data and initial parameters", default: "42" },
  backend: { description: "TensorFlow.js backend: auto, tensorflow, wasm, cpu", default: "auto" },
  "blas-threads": { description: "threads of each trainer's native BLAS matmuls (0 = cores / trainers)", default: "0" },
  host: { description: "interface the services bind", default: "127.0.0.1" },
  "orchestrator-port": { description: "orchestrator port (0 = any free port)", default: "0" },
  "compute-port": { description: "compute port (0 = any free port)", default: "0" },
  "metrics-port": { description: "orchestrator's HTTP port: /metrics and the dashboard at / (0 = any free port)", default: "0" },
  model: { description: "the architecture: dlrm, dcn-v2, deepfm or wide-deep", default: "dlrm" },
  "model-config": { description: "JSON file of the architecture's hyper-parameters (fields left out take its defaults; see README)" },
  "embedding-dim": { description: "embedding width", default: "16" },
  "bottom-mlp": { description: "dlrm: bottom MLP widths, last = embedding-dim", default: "64,16" },
  "top-mlp": { description: "dlrm: top MLP hidden widths", default: "64,32" },
  "dense-optimizer": { description: "adam or adagrad (dense parameters)", default: "adam" },
  "dense-lr": { description: "learning rate of the dense optimizer", default: "0.003" },
  "sparse-lr": { description: "learning rate of the embedding optimizer", default: "0.5" },
  "sparse-optimizer": { description: "sgd, adagrad, ftrl, adam, amsgrad, momentum, rmsprop or adadelta", default: "adagrad" },
  "slot-config": { description: "per-slot embedding settings (JSON; see README)" },
  "gradient-compression": { description: "none, or fp16 transport of gradients and embedding rows", default: "none" },
  "restore-from": { description: "start from a checkpoint's parameters (shard 0's step-N directory)" },
  mode: { description: "sync, async (bounded staleness) or hybrid (embeddings async, dense sync)", default: "sync" },
  "batches-per-step": { description: "global batches per step (0 = one per trainer)", default: "0" },
  "max-staleness": { description: "async: drop gradients more than this many updates old", default: "8" },
  "checkpoint-every-steps": { description: "save a checkpoint every N steps (0 = only at the end)", default: "0" },
  "keep-checkpoints": { description: "keep the newest K checkpoints", default: "3" },
  "heartbeat-timeout-ms": { description: "declare a silent trainer dead after this long", default: "5000" },
  "on-trainer-loss": { description: "reassign a lost trainer's batches, or fail the job", default: "reassign" },
  "job-id": { description: "name of the job (its checkpoints go in checkpoint-dir/job-id)" },
  "serving-sync": { description: "serving replicas (host:port[,...]) to push changed rows and dense weights to while training" },
  "sync-interval-seconds": { description: "how often changed rows go to serving", default: "10" },
  resume: { description: "continue job-id from its newest intact checkpoint (step, parameters, data position)", boolean: true },
  "fresh-start-if-unreadable": { description: "with --resume: start over if the job has checkpoints but none can be read (they are kept)", boolean: true },
  "max-embedding-bytes": { description: "memory limit of the embedding tables (0 = none)", default: "0" },
  "log-dir": { description: "where each process writes its log", default: ".pangea/logs" },
  "checkpoint-dir": { description: "where the final checkpoint goes", default: ".pangea/checkpoints" },
  tls: { description: "mutual TLS between the cluster's processes, with certificates made for the run in --tls-dir (a per-worker one for each trainer)", boolean: true },
  "tls-dir": { description: "with --tls: the certificates' directory (made if absent; see pangea certs)", default: ".pangea/tls" },
  json: { description: "print the final job status as JSON on stdout", boolean: true },
};

const schema = z.object({
  trainers: positiveInt("a positive number of trainers").max(64, "expected at most 64 local trainers").default(2),
  psShards: positiveInt("a positive number of shards").max(16, "expected at most 16 local shards").default(1),
  steps: positiveInt("a positive number of steps").default(500),
  batchSize: positiveInt("a positive batch size").default(1024),
  data: z.string().min(1).optional(),
  format: z.string().default("criteo"),
  framing: z.string().default("pb"),
  compression: z.string().default("auto"),
  featureList: z.string().min(1).optional(),
  sortId: z.string().default("true"),
  onBadRecord: z.string().default("fail"),
  kafkaBrokers: z.string().min(1).optional(),
  kafkaTopic: z.string().min(1).optional(),
  kafkaGroup: z.string().default("pangea-compute"),
  evalRecords: nonNegativeInt("a record count").default(50_000),
  evalFraction: z.string().default("0.1"),
  seed: nonNegativeInt("a non-negative integer seed").default(42),
  backend: z.enum(["auto", "tensorflow", "wasm", "cpu"], { message: "expected auto, tensorflow, wasm or cpu" }).default("auto"),
  blasThreads: nonNegativeInt("a number of threads").default(0),
  host: z.string().min(1).default("127.0.0.1"),
  orchestratorPort: port.default(0),
  computePort: port.default(0),
  metricsPort: port.default(0),
  model: z.string().min(1).default("dlrm"),
  modelConfig: z.string().min(1).optional(),
  embeddingDim: positiveInt("a positive embedding dim").default(16),
  bottomMlp: intList("bottom MLP widths").default([64, 16]),
  topMlp: intList("top MLP widths").default([64, 32]),
  denseOptimizer: z.string().default("adam"),
  denseLr: z.string().default("0.003"),
  sparseLr: z.string().default("0.5"),
  sparseOptimizer: z.string().default("adagrad"),
  slotConfig: z.string().min(1).optional(),
  gradientCompression: z.string().default("none"),
  restoreFrom: z.string().min(1).optional(),
  mode: z.enum(["sync", "async", "hybrid"], { message: "expected sync, async or hybrid" }).default("sync"),
  batchesPerStep: nonNegativeInt("a number of batches").default(0),
  maxStaleness: nonNegativeInt("a number of updates").default(8),
  checkpointEverySteps: nonNegativeInt("a number of steps").default(0),
  keepCheckpoints: nonNegativeInt("a number of checkpoints").default(3),
  heartbeatTimeoutMs: positiveInt("milliseconds").default(5000),
  onTrainerLoss: z.enum(["reassign", "fail"], { message: "expected reassign or fail" }).default("reassign"),
  jobId: z.string().min(1).optional(),
  servingSync: z.string().min(1).optional(),
  syncIntervalSeconds: z.string().default("10"),
  resume: z.boolean().default(false),
  freshStartIfUnreadable: z.boolean().default(false),
  maxEmbeddingBytes: z.string().default("0"),
  logDir: z.string().min(1).default(".pangea/logs"),
  checkpointDir: z.string().min(1).default(".pangea/checkpoints"),
  tls: z.boolean().default(false),
  tlsDir: z.string().min(1).default(".pangea/tls"),
  json: z.boolean().default(false),
});

export type RunConfig = z.infer<typeof schema>;

export const runUsage = () => usageText("pangea run", "Start a local cluster (orchestrator, compute, trainers), train, evaluate, print the results and stop every process.", RUN_FLAGS);
export const trainUsage = () => usageText("pangea train", "The same as 'pangea run': start a local cluster, train, evaluate, print the results and stop every process.", RUN_FLAGS);

const { json: _finalStatusOnly, ...UP_FLAGS } = RUN_FLAGS;
export const upUsage = () =>
  usageText("pangea up", "Start a local cluster (orchestrator, compute, trainers) in the background and return once every process is ready; the job trains on. Follow it with 'pangea status', stop it with 'pangea down'.", UP_FLAGS);

/** The line naming where the cluster listens, as `run` and `up` print it. */
export function addressesLine(cluster: LocalCluster): string {
  const http = cluster.dashboardAddress ? `, dashboard http://${cluster.dashboardAddress}/, metrics http://${cluster.dashboardAddress}/metrics` : "";
  return `orchestrator ${cluster.orchestratorAddress}, compute ${cluster.computeAddress}${http}`;
}

/**
 * With --tls, the run's certificates: the CA and one per role (kept if
 * already there), a per-worker one for each trainer; the CLI itself calls
 * as admin.
 */
export function prepareTls(c: RunConfig): TransportSecurity | null {
  if (!c.tls) return null;
  writeClusterCerts(c.tlsDir, { workers: Array.from({ length: c.trainers }, (_, i) => ({ role: "trainer" as const, name: `trainer-${i}` })) });
  return loadTransportSecurity(c.tlsDir, "admin");
}

export function parseRun(argv: readonly string[]): Readonly<RunConfig> | null {
  return parseConfig(schema, RUN_FLAGS, argv, {});
}

/** The cluster a run config describes; the services validate the flags again themselves. */
export function clusterOptions(c: RunConfig, detached: boolean): ClusterOptions {
  return {
    trainers: c.trainers,
    logDir: c.logDir,
    host: c.host,
    orchestratorPort: c.orchestratorPort,
    computePort: c.computePort,
    metricsPort: c.metricsPort,
    detached,
    ...(c.tls ? { tlsDir: c.tlsDir } : {}),
    psShards: c.psShards,
    orchestratorArgs: [
      "--steps", String(c.steps), "--batch-size", String(c.batchSize), "--seed", String(c.seed),
      "--model", c.model, ...(c.modelConfig ? ["--model-config", c.modelConfig] : []),
      "--embedding-dim", String(c.embeddingDim), "--bottom-mlp", c.bottomMlp.join(","), "--top-mlp", c.topMlp.join(","),
      "--dense-optimizer", c.denseOptimizer, "--dense-lr", c.denseLr, "--sparse-lr", c.sparseLr, "--sparse-optimizer", c.sparseOptimizer, "--max-embedding-bytes", c.maxEmbeddingBytes, "--gradient-compression", c.gradientCompression,
      ...(c.slotConfig ? ["--slot-config", c.slotConfig] : []),
      ...(c.restoreFrom ? ["--restore-from", c.restoreFrom] : []), "--checkpoint-dir", c.checkpointDir,
      "--mode", c.mode, "--batches-per-step", String(c.batchesPerStep), "--max-staleness", String(c.maxStaleness),
      "--checkpoint-every-steps", String(c.checkpointEverySteps), "--keep-checkpoints", String(c.keepCheckpoints),
      "--heartbeat-timeout-ms", String(c.heartbeatTimeoutMs), "--on-trainer-loss", c.onTrainerLoss,
      ...(c.jobId ? ["--job-id", c.jobId] : []), ...(c.resume ? ["--resume"] : []), ...(c.freshStartIfUnreadable ? ["--fresh-start-if-unreadable"] : []),
      ...(c.servingSync ? ["--serving-sync", c.servingSync, "--sync-interval-seconds", c.syncIntervalSeconds] : []),
    ],
    computeArgs: [
      "--seed", String(c.seed), "--eval-records", String(c.evalRecords), "--eval-fraction", c.evalFraction,
      "--format", c.format, "--framing", c.framing, "--compression", c.compression, "--sort-id", c.sortId, "--on-bad-record", c.onBadRecord,
      ...(c.data ? ["--data", c.data] : []),
      ...(c.featureList ? ["--feature-list", c.featureList] : []),
      ...(c.kafkaBrokers ? ["--kafka-brokers", c.kafkaBrokers, "--kafka-group", c.kafkaGroup] : []),
      ...(c.kafkaTopic ? ["--kafka-topic", c.kafkaTopic] : []),
    ],
    // One core's worth of BLAS threads per trainer by default: more would oversubscribe the cores.
    trainerArgs: ["--backend", c.backend, "--blas-threads", String(c.blasThreads || Math.max(1, Math.floor(availableParallelism() / c.trainers)))],
  };
}

const TERMINAL = new Set(["JOB_STATE_COMPLETED", "JOB_STATE_FAILED"]);

export async function runCommand(c: RunConfig): Promise<number> {
  const out = c.json ? process.stderr : process.stdout;
  out.write(`starting ${c.trainers} trainer${c.trainers === 1 ? "" : "s"}, 1 compute, 1 orchestrator${c.psShards > 1 ? ` + ${c.psShards - 1} parameter-server shard${c.psShards === 2 ? "" : "s"}` : ""} (logs in ${c.logDir})\n`);
  const admin = prepareTls(c);
  if (admin) out.write(`mutual TLS between the processes, certificates in ${c.tlsDir}\n`);
  const cluster = await LocalCluster.start(clusterOptions(c, false));
  const stopAll = () => void cluster.stop().finally(() => process.exit(130));
  process.once("SIGINT", stopAll);
  process.once("SIGTERM", stopAll);
  out.write(`${addressesLine(cluster)}\n`);
  const status = new StatusClient(cluster.orchestratorAddress, admin);
  const progress = new ProgressPrinter(out as NodeJS.WriteStream);
  let final: JobStatus__Output | null = null;
  let failed: string | null = null;
  let sync: SyncSummary | null = null;
  const failure = cluster.firstFailure().then((p) => {
    failed = `${p.name} exited with code ${p.exitCode}: ${p.lastLine || "(no output)"} (log: ${p.logPath})`;
  });
  try {
    await status.connect(10_000);
    while (!failed) {
      const s = await status.get();
      progress.update(s);
      if (TERMINAL.has(s.state)) {
        final = s;
        break;
      }
      await Promise.race([new Promise((r) => setTimeout(r, 500)), failure]);
    }
    // A process that failed may have taken the job down with it: ask for the job's own reason too.
    if (!final) final = await status.get().catch(() => null);
    // Parameter sync's figures are on the orchestrator's HTTP side (the dashboard's /status.json), not in JobStatus.
    if (final && c.servingSync && cluster.dashboardAddress) sync = await fetchSyncSummary(cluster.dashboardAddress);
  } catch (err) {
    // The orchestrator stopped answering; a crashed process explains why better than the failed call.
    await Promise.race([failure, new Promise((r) => setTimeout(r, 1_000))]);
    if (!failed) failed = (err as Error).message;
  } finally {
    progress.done();
    status.close();
    await cluster.stop();
  }
  if (final) {
    out.write(`${formatSummary(final, c.trainers, sync)}\n`);
    if (c.json) process.stdout.write(`${statusJson(final)}\n`);
  }
  if (final?.state === "JOB_STATE_COMPLETED") return 0;
  const reasons = [final?.error, failed].filter((r): r is string => Boolean(r));
  process.stderr.write(`pangea run: job failed: ${reasons.join("; ") || "the job did not complete"}\n`);
  return 1;
}
