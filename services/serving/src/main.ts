import { createLogger, programName, runMain, usageText } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, announceReady, bearerTokenIfGiven, onShutdownSignal, openDiscovery, startServer, configureTransport, reportInternalErrors } from "@pangea/rpc";
import { addParameterSync } from "./api/parameter-sync.js";
import { AGENT_SERVICE, addAgentService } from "./api/agent-service.js";
import { grpcServerMetrics, newRegistry } from "@pangea/observe";
import { registerServingMetrics } from "./monitor/serving-metrics.js";
import { FLAGS, loadConfig } from "./config.js";
import { ModelManager } from "./model/model-manager.js";
import { MicroBatcher } from "./batching/micro-batcher.js";
import { ForwardPool } from "./batching/forward-pool.js";
import { MODEL_SERVICE, PREDICTION_SERVICE, addTfServing } from "./api/tf-serving-grpc.js";
import { startRest } from "./api/rest.js";

const PROGRAM = programName("pangea-serving");
const usage = () => usageText(PROGRAM, "Serves exported model versions over TensorFlow Serving's gRPC API and REST.", FLAGS);

runMain(PROGRAM, async () => {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  // Certificates are read and checked before anything listens or connects: a bad --tls-dir stops the process at once.
  const security = configureTransport(config, "serving");
  const apiToken = bearerTokenIfGiven("--api-token-file", config.apiTokenFile);
  const syncToken = bearerTokenIfGiven("--sync-token-file", config.syncTokenFile);
  const metricsToken = bearerTokenIfGiven("--metrics-token-file", config.metricsTokenFile);
  const log = createLogger("serving");
  reportInternalErrors(log);
  const models = new ModelManager(config.modelName, config.modelBasePath, config.keepVersions, log);
  models.start(config.pollSeconds);
  const pool = config.forwardThreads > 0 ? new ForwardPool(config.forwardThreads, log) : null;
  if (pool) models.onChange = () => pool.retain(models.servables());
  const batcher = new MicroBatcher(config.batchWindowUs, config.maxBatch, { pool, maxQueued: config.maxQueuedRequests, maxInflightBytes: config.maxInflightRequestMb * 1024 * 1024 });
  const discovery = openDiscovery({ discovery: config.discovery, orchestrator: config.orchestrator, clusterName: config.clusterName, leaseSeconds: config.discoveryLeaseSeconds }, log);
  const me = { address: "", model: config.modelName, workerId: config.workerId, counters: () => ({ requests: batcher.requests, bytes: batcher.inputBytes }) };
  const registry = newRegistry("serving");
  registerServingMetrics(registry, models, batcher);
  const grpcServer = await startServer(config.host, config.port, (s) => {
    addTfServing(s, models, batcher, config.maxBatch);
    addParameterSync(s, models, batcher, log);
    addAgentService(s, discovery, me);
  }, [PREDICTION_SERVICE, MODEL_SERVICE, PARAMETER_SYNC_SERVICE_NAME, AGENT_SERVICE], grpcServerMetrics(registry), { ...(apiToken ? { clientToken: apiToken } : {}), ...(syncToken ? { roleToken: syncToken } : {}) });
  me.address = config.advertise ?? grpcServer.address;
  const rest = await startRest(config.host, config.restPort, models, batcher, config.maxBatch, registry, {
    ...(apiToken ? { token: apiToken } : {}),
    ...(metricsToken ? { metricsToken } : {}),
    ...(security ? { https: { cert: security.cert, key: security.key, ca: security.ca } } : {}),
  });
  // Registered as serving/<model>/<worker id>, so the agent can tell which replicas serve which model.
  await discovery.announce("serving", `${config.modelName}/${config.workerId}`, me.address);
  onShutdownSignal(async () => {
    models.stop();
    await discovery.close();
    await rest.app.close();
    await grpcServer.shutdown();
    await pool?.close();
  });
  log.info({ grpc: grpcServer.address, rest: rest.address, model: config.modelName, basePath: config.modelBasePath, loaded: models.loadedVersions() }, "serving");
  announceReady("serving", grpcServer.address, { rest: rest.address });
}, usage);
