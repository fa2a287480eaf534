import { loadProtos, type OrchestratorClient } from "@pangea/schema";
import { CHANNEL_OPTIONS } from "./server.js";
import { channelCredentials, type TransportSecurity } from "./security/transport-security.js";

export function orchestratorClient(address: string, security?: TransportSecurity | null): OrchestratorClient {
  const Ctor = loadProtos().pangea.v1.Orchestrator;
  return new Ctor(address, channelCredentials(["orchestrator"], security), CHANNEL_OPTIONS);
}

export const ORCHESTRATOR_SERVICE_NAME = "pangea.v1.Orchestrator";
