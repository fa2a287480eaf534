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

/** "a" or "an" before a role's name (admin, orchestrator). */
export function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

/** The caller's certificate as denials name it, with its article: "an admin certificate", "a trainer certificate \"trainer-0\"". */
export function describePeer(peer: PeerIdentity | null): string {
  if (!peer) return "no cluster certificate";
  const what = namesOneWorker(peer) ? `${peer.role} certificate "${peer.name}"` : `${peer.role} certificate`;
  return `${article(peer.role)} ${what}`;
}
