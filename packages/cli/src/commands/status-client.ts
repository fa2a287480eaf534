import * as grpc from "@grpc/grpc-js";
import { PangeaError } from "@pangea/kit";
import { describeCallError, isStatus, orchestratorClient, unary, waitReady, type TransportSecurity } from "@pangea/rpc";
import type { JobStatus__Output, OrchestratorClient } from "@pangea/schema";
import { ClusterError } from "../cluster-error.js";

// pangea run and pangea up pick free ports and print them (orchestrator HOST:PORT); an orchestrator started alone listens on 50051.
const PORT_HINT = "the one pangea run and pangea up print after 'orchestrator', or 50051 for one started alone";
const WRONG_PORT = ` (--orchestrator takes the orchestrator's gRPC port: ${PORT_HINT})`;

/** A reusable GetJobStatus caller for one orchestrator. */
export class StatusClient {
  private readonly client: OrchestratorClient;

  constructor(readonly address: string, private readonly security: TransportSecurity | null = null) {
    this.client = orchestratorClient(address, security);
  }

  async connect(timeoutMs: number): Promise<void> {
    try {
      await waitReady(this.client, "orchestrator", this.address, timeoutMs, this.security, ["orchestrator"], WRONG_PORT);
    } catch (err) {
      // The message says what answers there when it can tell (an HTTP/1 port, TLS or not, another service's certificate).
      throw new ClusterError((err as Error).message, err instanceof PangeaError && err.code === "RPC_ERR_WRONG_PEER" ? 1 : 3);
    }
  }

  async get(timeoutMs = 5_000): Promise<JobStatus__Output> {
    try {
      return await unary("orchestrator", this.client.GetJobStatus.bind(this.client), {}, timeoutMs);
    } catch (err) {
      // Reached, but not an orchestrator (serving's or a trainer's gRPC port): not an unreachable peer.
      if (isStatus(err, grpc.status.UNIMPLEMENTED)) {
        throw new ClusterError(`${describeCallError(err, `orchestrator at ${this.address}`)} (what answers there is a gRPC server but not an orchestrator: serving's or another service's port? --orchestrator takes the orchestrator's port: ${PORT_HINT})`, 1);
      }
      throw new ClusterError(describeCallError(err, `orchestrator at ${this.address}`), 3);
    }
  }

  close(): void {
    this.client.close();
  }
}
