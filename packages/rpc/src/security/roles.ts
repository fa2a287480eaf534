/**
 * The roles a certificate of the cluster CA can carry (its subject's OU).
 * A role says which calls a peer may make; the subject's CN names the peer:
 * either the role itself (one certificate shared by every worker of that
 * role) or one worker's id (a certificate only that worker may act with).
 */
export const SERVICE_ROLES = ["orchestrator", "shard", "compute", "trainer", "serving", "admin"] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

export interface PeerIdentity {
  readonly role: ServiceRole;
  /** The certificate's CN: the role's name for a shared certificate, a worker id for a per-worker one. */
  readonly name: string;
}

export function isServiceRole(s: unknown): s is ServiceRole {
  return typeof s === "string" && (SERVICE_ROLES as readonly string[]).includes(s);
}

/** True when the certificate names one worker rather than its whole role. */
export function namesOneWorker(peer: PeerIdentity): boolean {
  return peer.name !== peer.role;
}

export function describePeer(peer: PeerIdentity | null): string {
  if (!peer) return "a peer without a cluster certificate";
  return namesOneWorker(peer) ? `${peer.role} certificate "${peer.name}"` : `${peer.role} certificate`;
}
