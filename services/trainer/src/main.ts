import { createLogger, runMain, usageText } from "@pangea/kit";
import { announceReady, onShutdownSignal, bearerTokenIfGiven, openDiscovery, startServer, withOrchestrator, configureTransport } from "@pangea/rpc";
import { RowLayout, modelSpecFromWire } from "@pangea/model";
import { FLAGS, loadConfig, type TrainerConfig } from "./config.js";
import { selectBackend } from "./backend/select-backend.js";
import { ClusterSession } from "./cluster/session.js";
import { BatchReader } from "./cluster/batches.js";
import { ShardedParameterClient } from "./cluster/sharded-parameters.js";
import { CtrModel } from "./model/ctr-model.js";
import { trainAssigned } from "./loop/train.js";
import { BatchFeed } from "./cluster/batch-feed.js";
import { TrainerErrors } from "./errors.js";
import { newRegistry, startMetricsServer } from "@pangea/observe";
import { TrainerMetrics } from "./monitor/trainer-metrics.js";
import type { Logger } from "@pangea/kit";
import { evaluate } from "./loop/evaluate.js";
import type { JobSpec__Output } from "@pangea/schema";
import { RejoinBackoff } from "./cluster/rejoin-backoff.js";

const TRAINER_HEALTH_SERVICE = "pangea.v1.Trainer";
const NOTHING_TO_DO = "the job had already ended (completed or failed) when this trainer joined; nothing to do";

const usage = () => usageText("pangea-trainer", "Joins a job, trains the model on its share of the data, and (rank 0) evaluates it.", FLAGS);

runMain("pangea-trainer", async () => {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  // Certificates are read and checked before anything listens or connects: a bad --tls-dir stops the process at once.
  configureTransport(config, "trainer");
  const metricsToken = bearerTokenIfGiven("--metrics-token-file", config.metricsTokenFile);
  const log = createLogger("trainer").child({ worker: config.workerId });
  const backend = await selectBackend(config.backend, config.blasThreads);
  log.info({ backend: backend.name, detail: backend.detail }, `TensorFlow.js backend: ${backend.name}`);

  // A trainer serves only grpc.health.v1, so probes (Docker, Kubernetes) can watch it like any other service.
  const health = await startServer(config.host, config.port, () => {}, [TRAINER_HEALTH_SERVICE]);
  const registry = newRegistry("trainer");
  const metrics = new TrainerMetrics(registry);
  const http = await startMetricsServer(config.metricsHost ?? config.host, config.metricsPort, registry, undefined, metricsToken);
  announceReady("trainer", health.address, { metrics: http.address });
  const discovery = openDiscovery({ discovery: config.discovery, orchestrator: config.orchestrator, clusterName: config.clusterName, leaseSeconds: config.discoveryLeaseSeconds }, log);
  // Stopped from outside (SIGTERM, SIGINT), as the other services are: its registry entry goes with it.
  onShutdownSignal(async () => {
    await discovery.close();
    await http.close();
    await health.shutdown(500);
  });
  try {
    await discovery.announce("trainer", config.workerId, health.address);
    let first = true;
    const backoff = new RejoinBackoff();
    for (;;) {
      // The first join must succeed within --connect-timeout-ms; after losing the orchestrator the trainer waits up to --rejoin-timeout-ms for it.
      const timeoutMs = first ? config.connectTimeoutMs : config.rejoinTimeoutMs;
      // Ask discovery each time: a restarted orchestrator may be somewhere else.
      const session = await withOrchestrator(discovery, timeoutMs, (address, ms) => ClusterSession.join(address, config.workerId, ms, log, () => ({ ...metrics.phaseTotals })));
      if (!session) {
        log.info(NOTHING_TO_DO);
        break;
      }
      const orchestrator = session.address;
      first = false;
      log.info({ rank: session.rank }, "registered; waiting for the job to start");
      const joinedAt = Date.now();
      try {
        await runMembership(session, orchestrator, backend.name, config, log, metrics);
        break;
      } catch (err) {
        // The session's reason (e.g. the job failed) explains a failed call better than the call's own status.
        const reason = session.failure ?? err;
        if (TrainerErrors.is(reason, "TRAINER_ERR_LOST_ORCHESTRATOR") || TrainerErrors.is(reason, "TRAINER_ERR_EVICTED")) {
          const waitMs = backoff.next(joinedAt);
          log.warn({ reason: (reason as Error).message, ...(waitMs ? { waitMs } : {}) }, "left the job; registering again");
          if (waitMs) await new Promise((r) => setTimeout(r, waitMs));
          continue;
        }
        throw reason;
      } finally {
        session.close();
      }
    }
  } finally {
    // A trainer that fails takes its registry entry with it, not when the lease runs out.
    await discovery.close();
  }
  await http.close();
  await health.shutdown(500);
}, usage);

/** One membership of the job: from joining until the job no longer needs this trainer. */
async function runMembership(session: ClusterSession, orchestrator: string, backendName: string, config: TrainerConfig, parentLog: Logger, metrics: TrainerMetrics): Promise<void> {
  await session.reportBackend(backendName);
  const job = await session.waitForStart();
  if (!job) {
    parentLog.info(NOTHING_TO_DO);
    return;
  }
  const log = parentLog.child({ job: job.jobId });
  const m = job.model!;
  const model = new CtrModel(modelSpecFromWire(m));
  const layout = RowLayout.of(model.spec, m.slotIds);
  const shards = job.psShards.length > 0 ? job.psShards : [orchestrator];
  const params = new ShardedParameterClient(shards, config.workerId, session.rank, model.params, layout, job.gradientCompression === "fp16", log, () => session.workerToken);
  const registration = { rank: session.rank, token: session.workerToken };
  const feed = new BatchFeed(config.workerId, job.batchSize, config.connectTimeoutMs, registration);
  // Scores the held-out split with the parameters of `step` and reports it: during training (--eval-every-steps) and at the end.
  const evaluateAndReport = async (step: number, computeAddress: string) => {
    const evalReader = new BatchReader(computeAddress || job.computeAddress, config.workerId, registration);
    try {
      await evalReader.open({ workerRank: 0, worldSize: 1, batchSize: job.evalBatchSize, maxBatches: 0, split: "eval" }, config.connectTimeoutMs);
      const result = await session.guard(evaluate(model, layout, evalReader, params, step, groupColumnOf(job)));
      log.info({ step, ...result, tasks: result.tasks.map((t) => t.name) }, "evaluation done");
      const refused = await session.reportEval({ workerId: config.workerId, step, ...result });
      if (refused) log.warn({ step }, `the orchestrator refused this trainer's evaluation report: ${refused}`);
    } finally {
      evalReader.close();
    }
  };
  try {
    log.info({ mode: job.mode, steps: job.steps, batchSize: job.batchSize, batchesPerStep: job.batchesPerStep, resumedFromStep: Number(job.resumedFromStep) }, "training");
    const stats = await trainAssigned({ model, layout, session, feed, params, mode: job.mode, steps: Number(job.steps), batchesPerStep: job.batchesPerStep, seed: Number(job.seed), log, logEvery: config.logEvery, computeGraceMs: config.rejoinTimeoutMs, pullAhead: !config.pullAfterWork, metrics, evaluate: evaluateAndReport });
    await feed.finish();
    log.info({ ...stats, samplesPerSec: Math.round(stats.samples / Math.max(stats.seconds, 1e-9)) }, "training done");
    if (stats.evaluate) {
      await evaluateAndReport(Number(job.steps), stats.computeAddress);
      // Wait for the orchestrator to close the job, so the launcher sees every process end together.
      await session.getWork().catch(() => undefined);
    }
  } finally {
    feed.reset();
    params.close();
  }
}

/** The slot column whose id groups held-out records for GAUC, or null when the job names no group slot (the orchestrator names only one of the model's slots). */
function groupColumnOf(job: JobSpec__Output): number | null {
  if (!job.hasGroupSlot) return null;
  const column = job.model!.slotIds.indexOf(job.groupSlot);
  return column >= 0 ? column : null;
}
