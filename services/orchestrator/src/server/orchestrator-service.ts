import type * as grpc from "@grpc/grpc-js";
import { printable, WORKER_ID_RE } from "@pangea/kit";
import { peerIdentity, toServiceError, type AuthenticatedCall } from "@pangea/rpc";
import { checkActsFor, type WorkerKind } from "./peer-check.js";
import { loadProtos, type OrchestratorHandlers, type WorkerEvent } from "@pangea/schema";
import type { Job } from "../job/job.js";
import type { SessionSink } from "../job/membership.js";
import { OrchestratorErrors } from "../errors.js";

/**
 * Worker ids appear in the status, the dashboard, logs, metric labels and
 * checkpoint progress, so they are held to a plain alphabet: 1-128 characters
 * of letters, digits and `._:@-`.
 */
export function checkWorkerId(id: string): void {
  if (!id) throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", "RegisterWorker needs a worker_id");
  if (!WORKER_ID_RE.test(id)) {
    throw OrchestratorErrors.create(
      "ORCH_ERR_BAD_REGISTRATION",
      `RegisterWorker: worker_id "${printable(id, 64)}" (${id.length} chars) must be 1-128 characters of A-Z a-z 0-9 . _ : @ -`,
    );
  }
}

/** A DNS name (253) and a port, with room for an IPv6 literal's brackets. */
const MAX_ADDRESS_CHARS = 263;

/** The orchestrator's control plane (protobuf): registration, sessions, status, eval and checkpoint reports. */
export class OrchestratorService {
  constructor(private readonly job: Job) {}

  addToServer(server: grpc.Server): void {
    const job = this.job;
    // Calls naming a registered worker: the caller's certificate must be allowed to act for it, and the call must carry
    // the token its registration was given.
    const actsFor = (call: AuthenticatedCall, workerId: string, token: string, what: string) => {
      const kind = job.kindOf(workerId);
      if (!kind) return;
      checkActsFor(peerIdentity(call), kind, workerId, what);
      job.checkWorkerToken(workerId, token, what);
    };
    const handlers: OrchestratorHandlers = {
      RegisterWorker: (call, cb) => {
        try {
          const req = call.request;
          checkWorkerId(req.workerId);
          // Trainers dial compute's and the shards' addresses; one longer than any host:port is no address (a 40 MB one was taken).
          if (req.address.length > MAX_ADDRESS_CHARS) {
            throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `RegisterWorker: address of ${req.address.length} characters; a host:port has at most ${MAX_ADDRESS_CHARS}`);
          }
          const kind: WorkerKind | undefined = ({ WORKER_KIND_COMPUTE: "compute", WORKER_KIND_PS_SHARD: "shard", WORKER_KIND_TRAINER: "trainer" } as const)[req.kind as string];
          if (kind) checkActsFor(peerIdentity(call), kind, req.workerId, "RegisterWorker");
          if (req.kind === "WORKER_KIND_COMPUTE") {
            cb(null, { rank: 0, worldSize: job.config.trainers, ...job.registerCompute(req.workerId, req.address, req.source) });
          } else if (req.kind === "WORKER_KIND_PS_SHARD") {
            cb(null, { rank: req.shardIndex, worldSize: job.config.trainers, ...job.registerShard(req.workerId, req.shardIndex, req.address) });
          } else if (req.kind === "WORKER_KIND_TRAINER") {
            cb(null, job.registerTrainer(req.workerId));
          } else {
            throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `worker ${req.workerId} has kind ${req.kind}; expected WORKER_KIND_TRAINER, WORKER_KIND_COMPUTE or WORKER_KIND_PS_SHARD`);
          }
        } catch (err) {
          cb(toServiceError(err));
        }
      },
      WorkerSession: (call) => {
        const sink: SessionSink = {
          send: (event: WorkerEvent) => {
            if (!call.cancelled) call.write(event);
          },
          end: () => {
            if (!call.cancelled) call.end();
          },
        };
        const workerId = call.request.workerId;
        const closed = () => job.sessionClosed(workerId, sink);
        call.on("cancelled", closed);
        call.on("close", closed);
        call.on("error", closed);
        try {
          actsFor(call, workerId, call.request.workerToken, "WorkerSession");
          job.openSession(workerId, sink);
        } catch (err) {
          call.emit("error", toServiceError(err));
        }
      },
      ReportBackend: (call, cb) => {
        try {
          actsFor(call, call.request.workerId, call.request.workerToken, "ReportBackend");
          job.setBackend(call.request.workerId, call.request.backend);
          cb(null, {});
        } catch (err) {
          cb(toServiceError(err));
        }
      },
      ReportEval: (call, cb) => {
        try {
          actsFor(call, call.request.workerId, call.request.workerToken, "ReportEval");
          // The report is kept (evaluation history, checkpoints, the status): without the token.
          job.reportEval({ ...call.request, workerToken: "" });
          cb(null, {});
        } catch (err) {
          cb(toServiceError(err));
        }
      },
      ReportCheckpoint: (call, cb) => {
        try {
          actsFor(call, call.request.workerId, call.request.workerToken, "ReportCheckpoint");
          job.checkpointWritten(call.request.workerId, Number(call.request.step), call.request.error, Number(call.request.partsSkipped));
          cb(null, {});
        } catch (err) {
          cb(toServiceError(err));
        }
      },
      ReportFailure: (call, cb) => {
        try {
          actsFor(call, call.request.workerId, call.request.workerToken, "ReportFailure");
          job.shardFailed(call.request.workerId, call.request.code, call.request.message);
          cb(null, {});
        } catch (err) {
          cb(toServiceError(err));
        }
      },
      GetJobStatus: (_call, cb) => cb(null, job.status()),
      GetWork: (call, cb) => {
        let answered = false;
        call.on("cancelled", () => (answered = true));
        try {
          actsFor(call, call.request.workerId, call.request.workerToken, "GetWork");
        } catch (err) {
          cb(toServiceError(err));
          return;
        }
        job.getWork(call.request.workerId).then(
          (work) => {
            if (!answered) cb(null, work);
            answered = true;
          },
          (err) => {
            if (!answered) cb(toServiceError(err));
            answered = true;
          },
        );
      },
      Heartbeat: (call, cb) => {
        try {
          actsFor(call, call.request.workerId, call.request.workerToken, "Heartbeat");
          cb(null, { member: job.heartbeat(call.request.workerId, call.request.phaseSeconds), state: job.state });
        } catch (err) {
          cb(toServiceError(err));
        }
      },
    };
    server.addService(loadProtos().pangea.v1.Orchestrator.service, handlers);
  }
}
