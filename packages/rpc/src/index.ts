export { startServer, CHANNEL_OPTIONS, FLOW_CONTROL_WINDOW, MAX_MESSAGE_BYTES } from "./server.js";
export type { RunningServer, CallObserver, ServerSecurityOptions } from "./server.js";
export { SERVICE_ROLES, isServiceRole, namesOneWorker, describePeer } from "./security/roles.js";
export type { ServiceRole, PeerIdentity } from "./security/roles.js";
export { writeClusterCerts, makeClusterCa, issueCertificate, CA_FILE, CA_KEY_FILE } from "./security/cluster-certs.js";
export type { ClusterCertsOptions, ClusterCertsResult, IssuedPair } from "./security/cluster-certs.js";
export { loadTransportSecurity, configureTransport, useTransportSecurity, transportSecurity, channelCredentials, trustOnlyCredentials, serverCredentials, peerIdentity, identityOf } from "./security/transport-security.js";
export type { TransportSecurity, AuthenticatedCall } from "./security/transport-security.js";
export { CALL_POLICY, ruleFor, bearerMatches } from "./security/call-policy.js";
export { diagnoseConnection, isWrongPort } from "./security/tls-diagnosis.js";
export { answersHttp1 } from "./security/http1-probe.js";
export type { Diagnosis, TlsSide } from "./security/tls-diagnosis.js";
export type { CallRule } from "./security/call-policy.js";
export { toServiceError, reportInternalErrors, noteIfInternal, describeCallError, isStatus, oneLineDetails, remoteCode } from "./status.js";
export { TRAINER_PHASES, MAX_BACKEND_CHARS, type TrainerPhase } from "./trainer-reports.js";
export { waitReady, unary, whilePlaceHeld, PLACE_HELD_RETRY_MS } from "./client.js";
export { RpcErrors } from "./errors.js";
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
export { orchestratorClient, ORCHESTRATOR_SERVICE_NAME } from "./control.js";
export { announceReady, onShutdownSignal } from "./lifecycle.js";
export { readBearerToken, bearerTokenIfGiven, MAX_TOKEN_LENGTH } from "./security/bearer-token.js";
export { TrainerTokens, MAX_REVOKED, RevokedTokens, nonceOf, tokenIsForRank, ticketIsFor, sealBatchIds, batchIdsSealIsFor } from "./security/trainer-tokens.js";
export { openDiscovery, withOrchestrator, parseTfConfig, tfConfigOrchestrator } from "./discovery/discovery.js";
export type { Discovery, DiscoveryConfig, Role, TfConfig } from "./discovery/discovery.js";
export { EtcdClient } from "./discovery/etcd-client.js";
