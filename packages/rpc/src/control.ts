import { loadProtos, type ComputeClient, type OrchestratorClient } from "@pangea/schema";
import { CHANNEL_OPTIONS } from "./server.js";
import { channelCredentials, type TransportSecurity } from "./security/transport-security.js";

export function orchestratorClient(address: string, security?: TransportSecurity | null): OrchestratorClient {
  const Ctor = loadProtos().pangea.v1.Orchestrator;
  return new Ctor(address, channelCredentials(["orchestrator"], security), CHANNEL_OPTIONS);
}

export function computeClient(address: string, security?: TransportSecurity | null): ComputeClient {
  const Ctor = loadProtos().pangea.v1.Compute;
  return new Ctor(address, channelCredentials(["compute"], security), CHANNEL_OPTIONS);
}

export const ORCHESTRATOR_SERVICE_NAME = "pangea.v1.Orchestrator";
export const COMPUTE_SERVICE_NAME = "pangea.v1.Compute";
