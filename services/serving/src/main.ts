import { createLogger, runMain, usageText } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, announceReady, onShutdownSignal, openDiscovery, startServer } from "@pangea/rpc";
import { addParameterSync } from "./api/parameter-sync.js";
import { FLAGS, loadConfig } from "./config.js";
import { ModelManager } from "./model/model-manager.js";
import { MicroBatcher } from "./batching/micro-batcher.js";
import { MODEL_SERVICE, PREDICTION_SERVICE, addTfServing } from "./api/tf-serving-grpc.js";
import { startRest } from "./api/rest.js";

const usage = () => usageText("pangea-serving", "Serves exported model versions over TensorFlow Serving's gRPC API and REST.", FLAGS);

runMain("pangea-serving", async () => {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  const log = createLogger("serving");
  const models = new ModelManager(config.modelName, config.modelBasePath, config.keepVersions, log);
  models.start(config.pollSeconds);
  const batcher = new MicroBatcher(config.batchWindowUs, config.maxBatch);
  const grpcServer = await startServer(config.host, config.port, (s) => {
    addTfServing(s, models, batcher, config.maxBatch);
    addParameterSync(s, models, log);
  }, [PREDICTION_SERVICE, MODEL_SERVICE, PARAMETER_SYNC_SERVICE_NAME]);
  const rest = await startRest(config.host, config.restPort, models, batcher, config.maxBatch);
  const discovery = openDiscovery({ discovery: config.discovery, clusterName: config.clusterName, leaseSeconds: config.discoveryLeaseSeconds }, log);
  await discovery.announce("serving", config.workerId, grpcServer.address);
  onShutdownSignal(async () => {
    models.stop();
    await discovery.close();
    await rest.app.close();
    await grpcServer.shutdown();
  });
  log.info({ grpc: grpcServer.address, rest: rest.address, model: config.modelName, basePath: config.modelBasePath, loaded: models.loadedVersions() }, "serving");
  announceReady("serving", grpcServer.address, { rest: rest.address });
}, usage);
