export { startServer, CHANNEL_OPTIONS, FLOW_CONTROL_WINDOW, MAX_MESSAGE_BYTES } from "./server.js";
export type { RunningServer, CallObserver } from "./server.js";
export { toServiceError, describeCallError, isStatus } from "./status.js";
export { waitReady, unary, RpcErrors } from "./client.js";
export {
  BatchStreamService,
  ParameterServerService,
  BATCH_STREAM_SERVICE_NAME,
  PARAMETER_SERVER_SERVICE_NAME,
  batchStreamClient,
  parameterServerClient,
  ParameterSyncService,
  PARAMETER_SYNC_SERVICE_NAME,
  parameterSyncClient,
} from "./hot-path.js";
export type { BatchStreamClient, ParameterServerClient, ParameterSyncClient } from "./hot-path.js";
export { orchestratorClient, computeClient, ORCHESTRATOR_SERVICE_NAME, COMPUTE_SERVICE_NAME } from "./control.js";
export { announceReady, onShutdownSignal } from "./lifecycle.js";
export { openDiscovery, withOrchestrator, parseTfConfig, tfConfigOrchestrator, DISCOVERY_PATTERN } from "./discovery/discovery.js";
export type { Discovery, DiscoveryConfig, Role, TfConfig } from "./discovery/discovery.js";
export { EtcdClient } from "./discovery/etcd-client.js";
