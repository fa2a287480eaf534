import type { Logger } from "@pangea/kit";
import { orchestratorClient, unary, waitReady, describeCallError, RpcErrors } from "@pangea/rpc";
import type { SourceInfo } from "@pangea/schema";

/** Announces this compute service and its data to the orchestrator. */
export async function registerWithOrchestrator(
  orchestrator: string,
  workerId: string,
  advertise: string,
  source: SourceInfo,
  timeoutMs: number,
  log: Logger,
): Promise<void> {
  const client = orchestratorClient(orchestrator);
  try {
    await waitReady(client, "orchestrator", orchestrator, timeoutMs);
    await unary(
      "orchestrator",
      client.RegisterWorker.bind(client),
      { workerId, kind: "WORKER_KIND_COMPUTE", address: advertise, source },
      timeoutMs,
    );
    log.info({ orchestrator, advertise }, "registered with orchestrator");
  } catch (err) {
    if (RpcErrors.is(err)) throw err;
    throw RpcErrors.create("RPC_ERR_PEER_FAILED", `registering with ${describeCallError(err, `orchestrator at ${orchestrator}`)}`);
  } finally {
    client.close();
  }
}
