import { describePeer, namesOneWorker, type PeerIdentity } from "@pangea/rpc";
import { OrchestratorErrors } from "../errors.js";

export type WorkerKind = "trainer" | "compute" | "shard";

/**
 * With TLS on, a call that names a worker must come from a certificate of
 * that worker's role, and from that very worker when the certificate names
 * one (a per-worker certificate). A certificate shared by the whole role may
 * act for any worker of the role. Without TLS (peer null) nothing is known
 * about the caller and nothing is checked.
 */
export function checkActsFor(peer: PeerIdentity | null, kind: WorkerKind, workerId: string, call: string): void {
  if (!peer) return;
  if (peer.role !== kind) {
    throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} for ${kind} ${workerId} refused: the caller has ${describePeer(peer)}`);
  }
  if (namesOneWorker(peer) && peer.name !== workerId) {
    throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} for ${kind} ${workerId} refused: the caller's certificate (${describePeer(peer)}) is for worker ${peer.name} only`);
  }
}
