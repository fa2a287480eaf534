import * as grpc from "@grpc/grpc-js";
import { answersHttp1, describeCallError, isStatus, orchestratorClient, unary, waitReady, type TransportSecurity } from "@pangea/rpc";
import type { JobStatus__Output, OrchestratorClient } from "@pangea/schema";
import { ClusterError } from "../cluster-error.js";

/** A reusable GetJobStatus caller for one orchestrator. */
export class StatusClient {
  private readonly client: OrchestratorClient;

  constructor(readonly address: string, private readonly security: TransportSecurity | null = null) {
    this.client = orchestratorClient(address, security);
  }

  async connect(timeoutMs: number): Promise<void> {
    try {
      await waitReady(this.client, "orchestrator", this.address, timeoutMs, this.security);
    } catch (err) {
      // Something that answers HTTP/1 there (a REST, dashboard or metrics port) never becomes a gRPC channel: say so.
      const http = await answersHttp1(this.address, this.security !== null);
      throw new ClusterError(`${(err as Error).message}${http ? ` (what answers at ${this.address} speaks HTTP/1, not gRPC: a REST, dashboard or metrics port? --orchestrator takes the orchestrator's gRPC port, 50051 by default)` : ""}`, 3);
    }
  }

  async get(timeoutMs = 5_000): Promise<JobStatus__Output> {
    try {
      return await unary("orchestrator", this.client.GetJobStatus.bind(this.client), {}, timeoutMs);
    } catch (err) {
      // Reached, but not an orchestrator (serving's or a trainer's gRPC port): not an unreachable peer.
      if (isStatus(err, grpc.status.UNIMPLEMENTED)) {
        throw new ClusterError(`${describeCallError(err, `orchestrator at ${this.address}`)} (what answers there is a gRPC server but not an orchestrator: serving's or another service's port? --orchestrator takes the orchestrator's port, 50051 by default)`, 1);
      }
      throw new ClusterError(describeCallError(err, `orchestrator at ${this.address}`), 3);
    }
  }

  close(): void {
    this.client.close();
  }
}
