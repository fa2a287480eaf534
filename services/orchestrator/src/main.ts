import { loadFeatureList } from "@pangea/features";
import { UsageError, createLogger, runMain, unwritableDirReason, usageText, type LockLost } from "@pangea/kit";
import { ORCHESTRATOR_SERVICE_NAME, PARAMETER_SERVER_SERVICE_NAME, announceReady, onShutdownSignal, openDiscovery, bearerTokenIfGiven, startServer, configureTransport, reportInternalErrors } from "@pangea/rpc";
import { FLAGS, loadConfig } from "./config.js";
import { checkpointModelMismatch, checkpointOptimizerMismatch, checkpointSlotMismatch } from "./job/model-choice.js";
import { Job, defaultSlotConfig } from "./job/job.js";
import { trainingStepMismatch } from "./job/job-model.js";
import { slotConfigOver } from "./embeddings/slot-config.js";
import { architectureFromFlags } from "@pangea/model";
import { checkSlotDims, readSlotConfig, discoveredSyncModel } from "@pangea/service-flags";
import { servingReplicasOf } from "./sync/serving-replicas.js";
import { OrchestratorErrors } from "./errors.js";
import { runShard } from "./shard/run-shard.js";
import { jobCheckpointDir, latestCheckpoint, listCheckpoints, loadShardedCheckpoint, stepCheckpointDir } from "./checkpoint/checkpoint.js";
import { readCompletion } from "./checkpoint/completion.js";
import { JOB_LOCK_FILE, lockJob } from "./checkpoint/job-lock.js";
import { exportedVersionAt, exportPlaceProblem } from "./checkpoint/export-place.js";
import { jobDirGone } from "./checkpoint/job-dir-gone.js";
import { join } from "node:path";
import { OrchestratorService } from "./server/orchestrator-service.js";
import { grpcServerMetrics, newRegistry, startMetricsServer } from "@pangea/observe";
import { registerJobMetrics } from "./monitor/job-metrics.js";
import { addDashboard } from "./monitor/dashboard.js";
import { ParameterServer } from "./server/parameter-server.js";
import { DenseExchange } from "./params/dense-exchange.js";
import { registerDenseTransferMetrics } from "./monitor/dense-transfer-metrics.js";

const usage = () => usageText("pangea-orchestrator", "Coordinates a training job and serves its parameters.", FLAGS);

runMain("pangea-orchestrator", async () => {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  // Certificates are read and checked before anything listens or connects: a bad --tls-dir stops the process at once.
  configureTransport(config, config.role);
  // The architecture and its hyper-parameters are checked now, so a bad flag or file fails at start rather than at job start.
  const architecture = architectureFromFlags(config);
  // A shard learns its job from the orchestrator's session: its own --job-id default (a timestamp) names no job.
  const log = createLogger("orchestrator").child(config.role === "shard" ? {} : { job: config.jobId });
  reportInternalErrors(log);
  // Read first, as every file a flag names: a bad one stops the process before it does anything (a shard serves no
  // /metrics, and is held to the same file).
  const metricsToken = bearerTokenIfGiven("--metrics-token-file", config.metricsTokenFile);
  const base = defaultSlotConfig(config, config.embeddingDim);
  const slotFile = config.slotConfig ? readSlotConfig(config.slotConfig) : null;
  const slots = slotFile ? slotConfigOver(slotFile, base) : { defaults: base, perSlot: new Map() };
  // Per-slot dims the architecture cannot take stop the process now (the data's shape comes at job start).
  checkSlotDims(slotFile, config.embeddingDim, architecture);
  // Directories the job writes into later are checked now: otherwise it would train to the end and lose its checkpoint or export.
  // The job's checkpoints go in <checkpoint-dir>/<job-id>: a file of that name would stop them as surely.
  for (const [flag, dir] of [["--checkpoint-dir", jobCheckpointDir(config.checkpointDir, config.jobId)], ["--export-dir", config.exportDir]] as const) {
    const problem = dir ? unwritableDirReason(dir) : null;
    if (problem) throw new UsageError(`${flag}: ${problem}`);
  }
  const exportPlace = config.exportDir ? exportPlaceProblem(config.exportDir, config) : null;
  if (exportPlace) throw new UsageError(`--export-dir: ${exportPlace}`);
  const versionDir = exportedVersionAt(jobCheckpointDir(config.checkpointDir, config.jobId));
  if (versionDir) throw new UsageError(`--job-id ${config.jobId}: ${versionDir}`);
  if (config.exportFeatureList) {
    // Parsed now, so a list no version could carry stops the job before it trains, not at its export.
    try {
      loadFeatureList(config.exportFeatureList);
    } catch (err) {
      throw new UsageError(`--export-feature-list: ${(err as Error).message}`);
    }
  }
  // One orchestrator per job's checkpoints, taken before --resume reads them: a second run of the job would prune and overwrite the first's.
  let lostLock: LockLost | null = null;
  if (config.role === "orchestrator") await lockJob(config.checkpointDir, config.jobId, log, (why, takenOver) => lostLock?.(why, takenOver));
  // A new run under a job id that has checkpoints would prune the older run's with its own by step, newest first: its
  // own final checkpoint could be the one pruned, and a later --resume would go on from the other run's.
  const earlier = config.role === "orchestrator" && !config.resume ? listCheckpoints(config.checkpointDir, config.jobId) : [];
  if (earlier.length > 0) {
    throw new UsageError(`--job-id ${config.jobId}: ${jobCheckpointDir(config.checkpointDir, config.jobId)} holds that job's checkpoints already (newest step-${earlier.at(-1)!.step}); --resume continues it, another --job-id starts a new job beside it`);
  }
  // A checkpoint to start from is read and checked now, so a broken one stops the process before it joins a job.
  let restoreFrom = config.restoreFrom ? loadShardedCheckpoint(config.restoreFrom) : undefined;
  const startWarnings: string[] = [];
  if (config.resume && config.role === "orchestrator") {
    // The same command serves a first start and every restart: with no checkpoint at all, the job starts fresh.
    // With checkpoints of which none can be read, starting fresh would silently lose the job: refuse unless told.
    const { from, unreadable } = latestCheckpoint(config.checkpointDir, config.jobId, (msg) => log.warn(msg));
    if (!from && unreadable.length > 0 && !config.freshStartIfUnreadable) {
      // Only other jobs' checkpoints (copied or moved in whole): nothing is damaged, they are the wrong job's.
      const foreign = unreadable.every((u) => u.otherJob !== undefined);
      throw OrchestratorErrors.create(
        foreign ? "ORCH_ERR_CHECKPOINT_MISMATCH" : "ORCH_ERR_CHECKPOINT_CORRUPT",
        `--resume: job ${config.jobId} has ${unreadable.length} checkpoint${unreadable.length === 1 ? "" : "s"} and ${foreign ? `${unreadable.length === 1 ? "it is" : "all are"} another job's` : "none can be read"}: ${unreadable.map((u) => u.reason).join("; ")}`,
        { hint: "they are left as they are; --fresh-start-if-unreadable starts the job over beside them" },
      );
    }
    restoreFrom = from ?? undefined;
    // A fresh start beside checkpoints none of which could be read, and newer checkpoints passed over (the steps since
    // the one resumed from are lost): said in the job's status, not only in this log.
    if (!from && unreadable.length > 0) startWarnings.push(`--fresh-start-if-unreadable: none of job ${config.jobId}'s ${unreadable.length} checkpoint${unreadable.length === 1 ? "" : "s"} could be read (${unreadable.map((u) => u.reason).join("; ")}); the job started over from step 0 beside them`);
    if (from) for (const u of unreadable) startWarnings.push(`--resume passed over ${u.dir}, which cannot be read (${u.reason}); the job resumed from step ${from[0]!.manifest.step}`);
    // `path`: the checkpoint resumed from, which `pangea run` names if this run ends before writing one of its own.
    log.info({ jobId: config.jobId, from: restoreFrom ? `step ${restoreFrom[0]!.manifest.step}` : "nothing (fresh start)", ...(restoreFrom ? { path: stepCheckpointDir(config.checkpointDir, config.jobId, restoreFrom[0]!.manifest.step) } : {}), unreadable: unreadable.map((u) => u.dir) }, "resuming");
  }
  const savedManifest = restoreFrom && config.role === "orchestrator" ? restoreFrom[0]!.manifest : null;
  // A completed job is reported as completed, unless --steps asks for more steps than it trained: then it trains on from its final checkpoint.
  const finalStep = restoreFrom?.[0]!.manifest.step ?? 0;
  const completion = config.resume && restoreFrom ? readCompletion(config.checkpointDir, config.jobId, finalStep, (msg) => log.warn(msg)) : null;
  const completed = completion && config.steps <= finalStep ? completion : null;
  // Every reason the checkpoint cannot be this job's, in one message: an operator mends the flags once, not once per restart.
  const mismatches = savedManifest
    ? [
        checkpointModelMismatch(savedManifest.model, architecture, config),
        checkpointSlotMismatch(savedManifest.model, savedManifest.slotIds, slots.perSlot),
        checkpointOptimizerMismatch(restoreFrom!.map((part) => part.manifest), config.denseOptimizer, (slot) => (slots.perSlot.get(slot) ?? slots.defaults).optimizer),
        config.resume && savedManifest.training ? trainingStepMismatch(savedManifest.training, config) : null,
        // A job's steps count from its start: a job that has not completed cannot stop before the step it has reached.
        config.resume && !completion && config.steps < finalStep
          ? `is beyond --steps ${config.steps}: --steps counts the job's steps from its start, so give at least ${finalStep} to continue it (or --restore-from that checkpoint to start a new job from its parameters)`
          : null,
      ].filter((m): m is string => m !== null)
    : [];
  if (mismatches.length) {
    const subject = config.resume ? `--resume: job ${config.jobId}'s checkpoint at step ${finalStep}` : `--restore-from: the checkpoint ${config.restoreFrom}`;
    throw new UsageError(`${subject} ${mismatches.join("; and it ")}`);
  }
  if (completed) log.info({ step: finalStep, auc: completed.auc, logloss: completed.logloss }, "the job had completed; reporting its result");
  else if (completion) log.info({ completedAt: finalStep, steps: config.steps }, "the job had completed; --steps asks for more, so it trains on");
  // Read now, so an unreadable or malformed token stops the process before it joins a job.
  const servingSyncToken = bearerTokenIfGiven("--serving-sync-token-file", config.servingSyncTokenFile);
  const discovery = openDiscovery({ discovery: config.discovery, orchestrator: config.coordinator, clusterName: config.clusterName, leaseSeconds: config.discoveryLeaseSeconds }, log);
  if (config.role === "shard") {
    await runShard(discovery, config, { defaults: slots.defaults, perSlot: slots.perSlot, seed: config.seed, maxEmbeddingBytes: config.maxEmbeddingBytes, maxGradientAbs: config.maxGradientAbs, checkpointDir: config.checkpointDir, restoreFrom, ...(servingSyncToken ? { servingSyncToken } : {}), ...(discovery.kind === "etcd" ? { servingReplicas: (model: string) => servingReplicasOf(discovery, model) } : {}) }, log);
    return;
  }
  const syncModel = discoveredSyncModel(config.servingSync);
  const job = new Job({ ...config, lockFile: join(jobCheckpointDir(config.checkpointDir, config.jobId), JOB_LOCK_FILE), architecture, sparseOptimizer: slots.defaults.optimizer, slotDefaults: slots.defaults, slotConfigs: slots.perSlot, restoreFrom, ...(config.restoreFrom && !config.resume ? { restoredFromDir: config.restoreFrom } : {}), resume: config.resume && restoreFrom !== undefined, startWarnings, ...(completed ? { completed } : completion ? { completedBefore: completion } : {}), ...(servingSyncToken ? { servingSyncToken } : {}), ...(syncModel !== null ? { servingReplicas: servingReplicasOf(discovery, syncModel) } : {}) }, log);
  lostLock = (why, takenOver) =>
    job.fail(
      takenOver
        ? OrchestratorErrors.create("ORCH_ERR_JOB_IN_USE", `this job's checkpoint lock was lost (${why}): another run of --job-id ${config.jobId} may be writing its checkpoints`)
        : // The job's directory removed (or made unreadable) under it: its checkpoints are gone, not taken by another run.
          jobDirGone(jobCheckpointDir(config.checkpointDir, config.jobId), why),
    );
  const control = new OrchestratorService(job);
  const { exchange, why } = config.denseExchange === "auto" ? DenseExchange.open() : { exchange: null, why: "--dense-exchange off" };
  if (exchange) process.on("exit", () => exchange.close());
  log.info(exchange ? { dir: exchange.dir } : { why }, exchange ? "dense exchange open for trainers on this machine" : "no dense exchange: dense tensors go in the messages");
  const params = new ParameterServer(job, "orchestrator", exchange, log);
  const registry = newRegistry("orchestrator");
  registerJobMetrics(registry, job);
  registerDenseTransferMetrics(registry, params.transfers, exchange !== null);
  const running = await startServer(config.host, config.port, (s) => {
    control.addToServer(s);
    params.addToServer(s);
  }, [ORCHESTRATOR_SERVICE_NAME, PARAMETER_SERVER_SERVICE_NAME], grpcServerMetrics(registry));
  let stopDashboard = () => {};
  const http = await startMetricsServer(config.metricsHost ?? config.host, config.metricsPort, registry, (app) => {
    stopDashboard = addDashboard(app, job);
  }, metricsToken);
  job.address = config.advertise ?? running.address;
  job.on("finished", (status) => log.info({ state: status.state, error: status.error || undefined }, "job finished"));
  onShutdownSignal(async () => {
    stopDashboard();
    await discovery.close();
    await http.close();
    await running.shutdown();
  });
  await discovery.announce("orchestrator", "main", job.address);
  log.info({ address: running.address, dashboard: `http://${http.address}/`, metrics: `http://${http.address}/metrics`, jobId: config.jobId, trainers: config.trainers, steps: config.steps }, "orchestrator serving");
  announceReady("orchestrator", running.address, { metrics: http.address });
}, usage);
