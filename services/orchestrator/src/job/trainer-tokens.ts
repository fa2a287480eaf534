import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Trainers' worker tokens, each bound to its rank: a fresh nonce and its MAC
 * under a key this orchestrator draws at start. The orchestrator checks a
 * token against the registration it gave (Membership.checkToken); a
 * parameter-server shard, which sees no registrations, is given the key when
 * it registers and checks that a push's token was issued for the rank it
 * pushes for (pushTokenIsForRank). So a caller with the shared trainer
 * certificate cannot push to any shard for a rank it was not given.
 *
 * Each batch handed out comes with a ticket, the MAC of its rank and index
 * (Work.batch_tickets, or a served pull sent ahead's batchTickets), which its
 * push carries: a shard takes a batch only from the rank it was given to
 * (ticketIsFor), so a caller holding a trainer's token cannot push batches
 * that trainer was not given, and a dead trainer's token is good there only
 * for the batches it held when it died. In plaintext the key goes to
 * whoever registers as a shard (README, Security).
 */
export class TrainerTokens {
  /** The key shards are given (RegisterWorkerResponse.push_key). */
  readonly key: Buffer = randomBytes(32);

  issue(rank: number): string {
    const nonce = randomBytes(12).toString("base64url");
    return `${nonce}.${macOf(this.key, rank, nonce)}`;
  }

  /** The ticket for global batch `batch` given to the trainer of `rank`. */
  ticket(rank: number, batch: number): string {
    return ticketOf(this.key, rank, batch);
  }
}

// "b" keeps a ticket's input apart from a token's ("<rank>.<nonce>"): neither can stand for the other.
function ticketOf(key: Uint8Array, rank: number, batch: number): string {
  return createHmac("sha256", key).update(`b.${rank}.${batch}`).digest("base64url").slice(0, 22);
}

/** Whether `ticket` was issued under `key` for batch `batch` given to `rank`. */
export function ticketIsFor(key: Uint8Array, rank: number, batch: number, ticket: string): boolean {
  return sameText(ticket, ticketOf(key, rank, batch));
}

function sameText(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function macOf(key: Uint8Array, rank: number, nonce: string): string {
  return createHmac("sha256", key).update(`${rank}.${nonce}`).digest("base64url");
}

/** Whether `token` was issued under `key` for `rank`. */
export function pushTokenIsForRank(key: Uint8Array, rank: number, token: string): boolean {
  const dot = token.indexOf(".");
  if (dot <= 0) return false;
  return sameText(token.slice(dot + 1), macOf(key, rank, token.slice(0, dot)));
}
