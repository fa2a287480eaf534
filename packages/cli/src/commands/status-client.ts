import { describeCallError, orchestratorClient, unary, waitReady, type TransportSecurity } from "@pangea/rpc";
import type { JobStatus__Output, OrchestratorClient } from "@pangea/schema";
import { ClusterError } from "../launcher/local-cluster.js";

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
      throw new ClusterError((err as Error).message, 3);
    }
  }

  async get(timeoutMs = 5_000): Promise<JobStatus__Output> {
    try {
      return await unary("orchestrator", this.client.GetJobStatus.bind(this.client), {}, timeoutMs);
    } catch (err) {
      throw new ClusterError(describeCallError(err, `orchestrator at ${this.address}`), 3);
    }
  }

  close(): void {
    this.client.close();
  }
}
