import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "@pangea/kit";
import { describeCallError, orchestratorClient, PARAMETER_SERVER_SERVICE_NAME, RpcErrors, announceReady, onShutdownSignal, startServer, unary, waitReady } from "@pangea/rpc";
import type { WorkerEvent__Output } from "@pangea/schema";
import type { OrchestratorConfig } from "../config.js";
import { OrchestratorErrors } from "../errors.js";
import { ParameterServer } from "../server/parameter-server.js";
import { ShardHost, type ShardSettings } from "./shard-host.js";

/** Runs this process as parameter-server shard `--shard-index` of the job at `--coordinator`. */
export async function runShard(config: Readonly<OrchestratorConfig>, settings: Omit<ShardSettings, "index">, log: Logger): Promise<void> {
  const index = config.shardIndex!;
  const coordinator = config.coordinator!;
  const host = new ShardHost({ ...settings, index }, log);
  const params = new ParameterServer(host, `ps-shard-${index}`);
  const running = await startServer(config.host, config.port, (s) => params.addToServer(s), [PARAMETER_SERVER_SERVICE_NAME]);
  onShutdownSignal(() => running.shutdown());
  const advertise = config.advertise ?? running.address;
  const client = orchestratorClient(coordinator);
  await waitReady(client, "orchestrator", coordinator, 15_000);
  try {
    await unary("orchestrator", client.RegisterWorker.bind(client), { workerId: config.workerId, kind: "WORKER_KIND_PS_SHARD", address: advertise, shardIndex: index }, 15_000);
  } catch (err) {
    throw RpcErrors.create("RPC_ERR_PEER_FAILED", `registering as shard ${index}: ${describeCallError(err, `orchestrator at ${coordinator}`)}`);
  }
  const session: grpc.ClientReadableStream<WorkerEvent__Output> = client.WorkerSession({ workerId: config.workerId });
  let ended = false;
  session.on("data", (e: WorkerEvent__Output) => {
    if (e.jobStarted) host.start(e.jobStarted);
    else if (e.jobFinished) {
      ended = true;
      if (e.jobFinished.state === "JOB_STATE_FAILED") host.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `the orchestrator ended the job: ${e.jobFinished.error}`));
      log.info({ state: e.jobFinished.state }, "job finished");
    }
  });
  session.on("error", (err) => {
    if (ended) return;
    ended = true;
    host.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `lost the orchestrator: ${describeCallError(err, `orchestrator at ${coordinator}`)}`));
    log.error({ err: (err as Error).message }, "session with the orchestrator broke");
  });
  log.info({ shard: index, address: running.address, coordinator }, "parameter-server shard serving");
  announceReady("shard", running.address);
}
