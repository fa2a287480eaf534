import * as grpc from "@grpc/grpc-js";
import { loadProtos, type ComputeClient, type OrchestratorClient } from "@pangea/schema";
import { CHANNEL_OPTIONS } from "./server.js";

export function orchestratorClient(address: string): OrchestratorClient {
  const Ctor = loadProtos().pangea.v1.Orchestrator;
  return new Ctor(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

export function computeClient(address: string): ComputeClient {
  const Ctor = loadProtos().pangea.v1.Compute;
  return new Ctor(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

export const ORCHESTRATOR_SERVICE_NAME = "pangea.v1.Orchestrator";
export const COMPUTE_SERVICE_NAME = "pangea.v1.Compute";
