import { createLogger, runMain, usageText } from "@pangea/kit";
import { BATCH_STREAM_SERVICE_NAME, announceReady, onShutdownSignal, bearerTokenIfGiven, openDiscovery, startServer, configureTransport, reportInternalErrors } from "@pangea/rpc";
import { FLAGS, loadConfig } from "./config.js";
import { openSource } from "./sources/open-source.js";
import { BatchStreamHandler } from "./server/batch-stream.js";
import { StreamBudget } from "./server/stream-budget.js";
import { TrainerStreams } from "./server/trainer-streams.js";
import { toSourceInfo } from "./source-info.js";
import { stayRegistered } from "./registration.js";
import { grpcServerMetrics, newRegistry, startMetricsServer } from "@pangea/observe";
import { registerComputeMetrics } from "./monitor/compute-metrics.js";

const usage = () => usageText("pangea-compute", "Reads data, hashes features, and streams batches to trainers.", FLAGS);

runMain("pangea-compute", async () => {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  // Certificates are read and checked before anything listens or connects: a bad --tls-dir stops the process at once.
  configureTransport(config, "compute");
  const metricsToken = bearerTokenIfGiven("--metrics-token-file", config.metricsTokenFile);
  const log = createLogger("compute");
  reportInternalErrors(log);
  const source = await openSource(config, log);
  const { description, storage, storageWarning, dataWarnings, trainRecords, evalRecords, groundTruth, tasks, taskGroundTruth, groupSlot, skippedRecords, skippedStretches, skippedBytes, skippedSummary } = source.info;
  if (storageWarning) log.warn(storageWarning);
  for (const w of dataWarnings ?? []) log.warn(w);
  const perTask = tasks?.length ? { tasks: tasks.map((t) => t.name), ...(taskGroundTruth ? { taskGroundTruth } : {}) } : {};
  log.info({ source: description, ...(storage ? { storage } : {}), train: trainRecords, eval: evalRecords, groundTruth, ...perTask, ...(groupSlot != null ? { groupSlot } : {}) }, "data source ready");
  if (skippedSummary) log.warn({ skippedRecords, skippedStretches, skippedBytes }, skippedSummary);

  const discovery = openDiscovery({ discovery: config.discovery, orchestrator: config.orchestrator, clusterName: config.clusterName, leaseSeconds: config.discoveryLeaseSeconds }, log);
  let gone: (err: Error) => void = () => {};
  const lost = new Promise<never>((_, reject) => (gone = reject));
  // Rejected perhaps before it is awaited (a damaged cache found while compute announces itself): not an unhandled rejection.
  lost.catch(() => {});
  // Records compute can no longer read end the process with that error once the trainer asking was told.
  const batches = new BatchStreamHandler(source, config.workerId, log, (err) => {
    // The server stops first (its grace lets the failed call's status reach its trainer), then the process fails with the error.
    void running.shutdown(1_000).finally(() => gone(err));
  }, new StreamBudget(config.maxStreamMb * 2 ** 20, config.maxBatchStreams), new TrainerStreams(config.maxStreamsPerRank));
  const registry = newRegistry("compute");
  registerComputeMetrics(registry, batches, source);
  const running = await startServer(config.host, config.port, (s) => {
    batches.addToServer(s);
  }, [BATCH_STREAM_SERVICE_NAME], grpcServerMetrics(registry));
  const http = await startMetricsServer(config.metricsHost ?? config.host, config.metricsPort, registry, undefined, metricsToken);
  onShutdownSignal(async () => {
    log.info({ batches: batches.batchesServed, records: batches.recordsServed }, "shutting down");
    await discovery.close();
    await http.close();
    await running.shutdown();
    if ("streaming" in source) await source.close();
  });

  const advertise = config.advertise ?? running.address;
  try {
    await discovery.announce("compute", config.workerId, advertise);
    // Batches are served from here on, while compute registers: a fatal read may end it before registration does.
    await Promise.race([
      stayRegistered(
        { discovery, workerId: config.workerId, advertise, source: toSourceInfo(source.info), connectTimeoutMs: config.connectTimeoutMs, rejoinTimeoutMs: config.rejoinTimeoutMs, trainers: batches.trainers },
        log,
        (err) => gone(err),
      ),
      lost,
    ]);
    announceReady("compute", running.address, { metrics: http.address });
    // Serves until stopped; fails (exit 1) if the orchestrator goes away for good or the records cannot be read.
    await lost;
  } finally {
    // A compute that fails takes its registry entry with it, not when the lease runs out.
    await discovery.close();
  }
}, usage);
