import * as grpc from "@grpc/grpc-js";
import type { Logger } from "@pangea/kit";
import { orchestratorClient, unary, waitReady, whilePlaceHeld, describeCallError, remoteCode, RpcErrors, withOrchestrator, type Discovery } from "@pangea/rpc";
import type { OrchestratorClient, RegisterWorkerRequest, RegisterWorkerResponse__Output, SourceInfo, WorkerEvent__Output } from "@pangea/schema";
import { ComputeErrors } from "./errors.js";
import type { TrainerStreams } from "./server/trainer-streams.js";

export interface Registration {
  /** How to find the orchestrator (again after it was lost: it may have moved). */
  discovery: Discovery;
  workerId: string;
  advertise: string;
  source: SourceInfo;
  connectTimeoutMs: number;
  /** How long to keep trying when the orchestrator goes away after the first registration. */
  rejoinTimeoutMs: number;
  /**
   * Whose batch streams are served: given, at every registration, the key trainers' worker tokens are bound to their
   * rank with (push_key; a restarted orchestrator draws a new one), and told the tokens the orchestrator revokes.
   */
  trainers: Pick<TrainerStreams, "setKey" | "revoke">;
}

/**
 * The orchestrator's refusals of a compute for its data: the job's checkpoint, or the running job, read other data, or
 * a flag of the job's contradicts this data (the job fails with it).
 */
const REFUSED_DATA = new Set(["ORCH_ERR_CHECKPOINT_MISMATCH", "ORCH_ERR_DATA_MISMATCH", "ORCH_ERR_BAD_JOB_CONFIG"]);

/**
 * Registers; returns the registration's worker token (its session carries it) and the trainers' token key. While another compute holds the job's
 * place with an open session (ALREADY_EXISTS: one that vanished is seen gone within 20 s), it asks again until
 * `timeoutMs`, so a compute restarted under a new id is not turned away by its own former self.
 */
async function registerOnce(client: OrchestratorClient, address: string, r: Registration, timeoutMs: number, log: Logger): Promise<{ workerToken: string; pushKey: Uint8Array | null }> {
  try {
    await waitReady(client, "orchestrator", address, timeoutMs);
    const res = await whilePlaceHeld(
      (ms) => unary<RegisterWorkerRequest, RegisterWorkerResponse__Output>("orchestrator", client.RegisterWorker.bind(client), { workerId: r.workerId, kind: "WORKER_KIND_COMPUTE", address: r.advertise, source: r.source }, ms),
      Date.now() + timeoutMs,
      log,
      address,
      "another compute holds the job's place",
    );
    return { workerToken: res.workerToken, pushKey: res.pushKey?.length ? res.pushKey : null };
  } catch (err) {
    if (RpcErrors.is(err)) throw err;
    const why = `registering with ${describeCallError(err, `orchestrator at ${address}`)}`;
    // Its data contradicts the job's: a refusal of how it was started (exit 2), which launchers tell from a failure
    // (make docker-up then keeps the earlier start's settings).
    if (REFUSED_DATA.has(remoteCode(err) ?? "")) throw ComputeErrors.create("COMPUTE_ERR_REFUSED", why);
    throw RpcErrors.create("RPC_ERR_PEER_FAILED", why);
  }
}

/**
 * Announces this compute service and its data to the orchestrator, then
 * holds a session with it. If the orchestrator restarts (resuming from a
 * checkpoint) compute registers again, since batch k means the same records
 * for the resumed job; `onGone` is called if it stays away past the timeout.
 */
export async function stayRegistered(r: Registration, log: Logger, onGone: (err: Error) => void): Promise<void> {
  let client: OrchestratorClient | null = null;
  let workerToken = "";
  // Each try gets a fresh client, so a stale address from the registry is not retried forever.
  const register = (timeoutMs: number) =>
    withOrchestrator(r.discovery, timeoutMs, async (found, ms) => {
      client?.close();
      client = orchestratorClient(found);
      const registered = await registerOnce(client, found, r, ms, log);
      workerToken = registered.workerToken;
      r.trainers.setKey(registered.pushKey);
      return found;
    });
  let address = await register(r.connectTimeoutMs);
  log.info({ orchestrator: address, advertise: r.advertise }, "registered with orchestrator");
  /** Registers again once the orchestrator is lost; `finished`: the job had ended, so one that stays away is no failure. */
  const rejoin = (why: string, finished: boolean): void => {
    log[finished ? "info" : "warn"]({ orchestrator: address, why }, `${finished ? "the orchestrator of the finished job went away" : "lost the orchestrator"}; registering again`);
    const lostAt = address;
    // Paced: a session refused while the orchestrator still holds this compute's old one (not yet seen closed) is tried again.
    new Promise((wait) => setTimeout(wait, 250))
      .then(() => register(r.rejoinTimeoutMs))
      .then(
        (found) => {
          address = found;
          log.info({ orchestrator: address }, "registered again");
          hold();
        },
        (err: Error) => {
          const gone = `the orchestrator (last at ${lostAt}) did not come back within ${r.rejoinTimeoutMs} ms: ${err.message}`;
          if (finished) log.info({ why: gone }, "the job had finished; compute stays idle");
          else onGone(ComputeErrors.create("COMPUTE_ERR_ORCHESTRATOR_GONE", gone));
        },
      );
  };
  /**
   * After the job's end its session closes, but the orchestrator may come back with more to do (restarted with more
   * --steps, as make docker-up does): once its connection drops, compute registers again.
   */
  const rejoinWhenDropped = (): void => {
    const channel = client!.getChannel();
    const watch = (): void => {
      const state = channel.getConnectivityState(false);
      if (state !== grpc.connectivityState.READY && state !== grpc.connectivityState.CONNECTING) return rejoin("its connection closed", true);
      channel.watchConnectivityState(state, Date.now() + 3_600_000, () => watch());
    };
    watch();
  };
  const hold = (): void => {
    const session = client!.WorkerSession({ workerId: r.workerId, workerToken });
    let over = false;
    let finished = false;
    const lost = (why: string) => {
      if (over) return;
      over = true;
      if (finished) rejoinWhenDropped();
      else rejoin(why, false);
    };
    session.on("data", (e: WorkerEvent__Output) => {
      if (e.tokensRevoked) r.trainers.revoke(e.tokensRevoked.nonces);
      if (e.jobFinished) {
        finished = true;
        log.info({ state: e.jobFinished.state }, "job finished");
      }
    });
    session.on("error", (err) => lost(describeCallError(err, `orchestrator at ${address}`)));
    session.on("end", () => lost("session ended"));
  };
  hold();
}
