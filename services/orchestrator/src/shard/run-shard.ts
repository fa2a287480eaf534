import type { Logger, PangeaError } from "@pangea/kit";
import { describeCallError, type Discovery, withOrchestrator, orchestratorClient, PARAMETER_SERVER_SERVICE_NAME, RpcErrors, announceReady, onShutdownSignal, startServer, unary, waitReady, whilePlaceHeld } from "@pangea/rpc";
import type { RegisterWorkerRequest, RegisterWorkerResponse__Output, WorkerEvent__Output } from "@pangea/schema";
import type { OrchestratorConfig } from "../config.js";
import { OrchestratorErrors } from "../errors.js";
import { ParameterServer } from "../server/parameter-server.js";
import { ShardHost, type ShardSettings } from "./shard-host.js";

/**
 * Runs this process as parameter-server shard `--shard-index` of the job at
 * `--coordinator`. If the orchestrator goes away the shard forgets the job
 * and registers again (for --rejoin-timeout-ms): a restarted orchestrator
 * that resumes from a checkpoint tells it which one to reload.
 */
export async function runShard(discovery: Discovery, config: Readonly<OrchestratorConfig>, settings: Omit<ShardSettings, "index">, log: Logger): Promise<void> {
  const index = config.shardIndex!;
  let coordinator = "(not found yet)";
  /** Set once this shard ends for a fatal condition: a session breaking after that is not rejoined. */
  let ending = false;
  /** Tells the orchestrator of the current session why this shard ends (ReportFailure). */
  let sayFailure: ((err: PangeaError) => Promise<unknown>) | null = null;
  const host = new ShardHost({ ...settings, index }, log);
  const params = new ParameterServer(host, `ps-shard-${index}`, null, log);
  const running = await startServer(config.host, config.port, (s) => params.addToServer(s), [PARAMETER_SERVER_SERVICE_NAME]);
  const advertise = config.advertise ?? running.address;
  let stopping = false;
  onShutdownSignal(async () => {
    stopping = true;
    await discovery.close();
    await running.shutdown();
  });
  await discovery.announce("ps", String(index), advertise);
  log.info({ shard: index, address: running.address, coordinator }, "parameter-server shard serving");
  announceReady("shard", running.address);

  const join = async (timeoutMs: number): Promise<"finished" | "lost"> => {
    // The orchestrator may come back elsewhere: ask the registry again each time.
    const { client, workerToken } = await withOrchestrator(discovery, timeoutMs, async (found, ms) => {
      coordinator = found;
      const c = orchestratorClient(found);
      try {
        await waitReady(c, "orchestrator", found, ms);
        // A restarted shard whose earlier life's session the orchestrator has not yet seen close asks again until it has.
        const res = await whilePlaceHeld(
          (left) => unary<RegisterWorkerRequest, RegisterWorkerResponse__Output>("orchestrator", c.RegisterWorker.bind(c), { workerId: config.workerId, kind: "WORKER_KIND_PS_SHARD", address: advertise, shardIndex: index }, Math.min(left, 15_000)),
          Date.now() + Math.max(ms, 15_000),
          log,
          found,
          `another process holds shard ${config.workerId}'s place`,
        );
        // An orchestrator that sends no key predates the check: its pushes are taken as before.
        host.pushKey = res.pushKey?.length ? res.pushKey : null;
        host.ticketKey = res.ticketKey?.length ? res.ticketKey : null;
        return { client: c, workerToken: res.workerToken };
      } catch (err) {
        c.close();
        if (RpcErrors.is(err)) throw err;
        throw RpcErrors.create("RPC_ERR_PEER_FAILED", `registering as shard ${index}: ${describeCallError(err, `orchestrator at ${found}`)}`);
      }
    });
    return new Promise((resolve) => {
      const session = client.WorkerSession({ workerId: config.workerId, workerToken });
      let ended = false;
      sayFailure = (err) => unary("orchestrator", client.ReportFailure.bind(client), { workerId: config.workerId, workerToken, code: err.code, message: err.message }, 5_000);
      host.onCheckpoint = (r) => {
        unary("orchestrator", client.ReportCheckpoint.bind(client), { workerId: config.workerId, workerToken, ...r }, 15_000).catch((err: unknown) => {
          // The orchestrator fails the job when this shard's session breaks; a lost report alone leaves its checkpoint incomplete.
          log.warn({ step: r.step, err: describeCallError(err, `orchestrator at ${coordinator}`) }, "could not report the checkpoint part to the orchestrator");
        });
      };
      session.on("data", (e: WorkerEvent__Output) => {
        try {
          if (e.jobStarted) host.start(e.jobStarted);
          if (e.checkpoint) host.checkpoint(Number(e.checkpoint.step), e.checkpoint.final, Number(e.checkpoint.batches));
          if (e.tokensRevoked) host.revoke(e.tokensRevoked.nonces);
          if (e.stepApplied) host.stepApplied(Number(e.stepApplied.step));
        } catch (err) {
          log.error({ err: (err as Error).message }, "cannot take up the job");
          host.fail(OrchestratorErrors.is(err) ? err : OrchestratorErrors.create("ORCH_ERR_CHECKPOINT_CORRUPT", (err as Error).message));
        }
        if (e.jobFinished) {
          ended = true;
          if (e.jobFinished.state === "JOB_STATE_FAILED") host.fail(OrchestratorErrors.create("ORCH_ERR_JOB_ABORTED", `the orchestrator ended the job: ${e.jobFinished.error}`));
          log.info({ state: e.jobFinished.state }, "job finished");
          resolve("finished");
        }
      });
      session.on("error", (err) => {
        if (ended) return;
        ended = true;
        if (!ending) log.warn({ err: describeCallError(err, `orchestrator at ${coordinator}`) }, "session with the orchestrator broke; registering again");
        client.close();
        resolve("lost");
      });
      session.on("end", () => {
        if (!ended) {
          ended = true;
          client.close();
          resolve("lost");
        }
      });
    });
  };

  // A shard full to its memory limit (or refusing the job) ends the process with that error, after the refusing answer
  // has gone out and the orchestrator has heard why: it fails the job with the reason at once, instead of trainers
  // retrying against the shard or the job saying only that the shard disconnected.
  const fatal = new Promise<never>((_, reject) => {
    host.onFatal = (err) => {
      // Every refused call after the first reports the same condition: said once.
      if (ending) return;
      ending = true;
      const said = (sayFailure?.(err) ?? Promise.resolve()).catch((e: unknown) => {
        log.warn({ err: describeCallError(e, `orchestrator at ${coordinator}`) }, "could not tell the orchestrator why this shard ends; the job fails on its disconnection");
      });
      void Promise.all([said, new Promise((r) => setTimeout(r, 200))]).then(() => reject(err));
    };
  });
  let timeout = 15_000;
  for (;;) {
    const outcome = await Promise.race([join(timeout), fatal]);
    // The orchestrator, told why, may end the job (and the session) before the process ends with the reason.
    if (ending) await fatal;
    if (outcome === "finished" || stopping) return;
    host.reset();
    timeout = config.rejoinTimeoutMs;
  }
}
