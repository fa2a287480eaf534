import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Trainers' worker tokens, each bound to its rank: a fresh nonce and its MAC
 * under a key this orchestrator draws at start. The orchestrator checks a
 * token against the registration it gave (Membership.checkToken); a
 * parameter-server shard, which sees no registrations, is given the key when
 * it registers and checks that a push's token was issued for the rank it
 * pushes for (pushTokenIsForRank). So a caller with the shared trainer
 * certificate cannot push to any shard for a rank it was not given. Shards
 * still do not know who holds a batch, and cannot revoke a token (README,
 * Security); in plaintext the key goes to whoever registers as a shard.
 */
export class TrainerTokens {
  /** The key shards are given (RegisterWorkerResponse.push_key). */
  readonly key: Buffer = randomBytes(32);

  issue(rank: number): string {
    const nonce = randomBytes(12).toString("base64url");
    return `${nonce}.${macOf(this.key, rank, nonce)}`;
  }
}

function macOf(key: Uint8Array, rank: number, nonce: string): string {
  return createHmac("sha256", key).update(`${rank}.${nonce}`).digest("base64url");
}

/** Whether `token` was issued under `key` for `rank`. */
export function pushTokenIsForRank(key: Uint8Array, rank: number, token: string): boolean {
  const dot = token.indexOf(".");
  if (dot <= 0) return false;
  const expected = Buffer.from(macOf(key, rank, token.slice(0, dot)));
  const given = Buffer.from(token.slice(dot + 1));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
