import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Trainers' worker tokens, each bound to its rank: a fresh nonce and its MAC
 * under a key this orchestrator draws at start. The orchestrator checks a
 * token against the registration it gave (Membership.checkToken); a
 * parameter-server shard, which sees no registrations, is given the key when
 * it registers and checks that a push's token was issued for the rank it
 * pushes for (tokenIsForRank). So a caller with the shared trainer
 * certificate cannot push to any shard for a rank it was not given. Compute
 * is given the same key, and serves a batch stream only to a caller whose
 * token was issued for the rank it names, a few streams per rank. Shared by
 * the orchestrator, its shards and compute, hence in @pangea/rpc.
 *
 * Each batch handed out (Work.batch_tickets) comes with a ticket, the MAC of
 * its index and of the rank and token nonce of the registration it was given
 * to, under a second key shards are given too: a shard takes a batch only
 * with a token and the ticket that names it (ticketIsFor). So a caller
 * holding a trainer's token cannot push batches that registration was not
 * given. A token no longer good (a dead trainer's, or one replaced by
 * registering again) is revoked: its nonce is told to the shards
 * (WorkerEvent.tokens_revoked), which refuse it from then on in sync and
 * hybrid modes, so once the news has arrived it cannot push the batches it
 * held and that went to another trainer. In plaintext the keys go to
 * whoever registers as a shard or as compute (README, Security).
 *
 * Compute seals each train batch's count of feature ids with the first key
 * (sealBatchIds): a training pull names its batch's count with the seal, and
 * a parameter server that holds the key takes a pull only if the seal is good
 * for the job's batch size, and makes no more rows for a batch than its count
 * (BatchRowBudget). A ticket alone let a trainer holding a batch make
 * rows for any ids it named.
 */
export class TrainerTokens {
  /** The key shards and compute are given to check tokens with (RegisterWorkerResponse.push_key). */
  readonly key: Buffer = randomBytes(32);
  /** The key shards are given to check batch tickets with (RegisterWorkerResponse.ticket_key). */
  readonly ticketKey: Buffer = randomBytes(32);

  issue(rank: number): string {
    const nonce = randomBytes(12).toString("base64url");
    return `${nonce}.${macOf(this.key, `${rank}.${nonce}`)}`;
  }

  /** The ticket for global batch `batch` given to the registration of `rank` whose token is `token`. */
  ticket(rank: number, token: string, batch: number): string {
    return ticketOf(this.ticketKey, rank, token, batch);
  }
}

/**
 * Revoked tokens a shard keeps, the newest (10,000 nonces are about 200 KB):
 * an older one's batches were taken long ago, and a repeat of a batch taken
 * is ignored.
 */
export const MAX_REVOKED = 10_000;

/** The tokens the orchestrator revoked (WorkerEvent.tokens_revoked), by nonce: the newest MAX_REVOKED of them. */
export class RevokedTokens {
  private readonly nonces = new Set<string>();

  add(nonces: readonly string[]): void {
    for (const n of nonces) this.nonces.add(n);
    // A Set iterates oldest first. The shards hear of a token only when its trainer took part (opened a session), and
    // the orchestrator lets such trainers register again at 2 a second beyond a burst, all together (compute hears of
    // every token replaced, bare registrations' too, each id at 1 a second), so the oldest dropped is most likely long
    // gone, its batches long taken (a repeat of a batch taken is ignored).
    for (const n of this.nonces) {
      if (this.nonces.size <= MAX_REVOKED) break;
      this.nonces.delete(n);
    }
  }

  /** Whether `token` (a whole token, not its nonce) was revoked. */
  has(token: string): boolean {
    return this.nonces.has(nonceOf(token));
  }

  clear(): void {
    this.nonces.clear();
  }
}

function macOf(key: Uint8Array, text: string): string {
  return createHmac("sha256", key).update(text).digest("base64url");
}

function ticketOf(key: Uint8Array, rank: number, token: string, batch: number): string {
  return macOf(key, `${rank}.${nonceOf(token)}.${batch}`).slice(0, 22);
}

/** A token's nonce: what tells one registration of a rank from another, and what revoking it names. */
export function nonceOf(token: string): string {
  const dot = token.indexOf(".");
  return dot > 0 ? token.slice(0, dot) : "";
}

function sameText(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether `token` was issued under `key` for `rank`. */
export function tokenIsForRank(key: Uint8Array, rank: number, token: string): boolean {
  const nonce = nonceOf(token);
  return nonce !== "" && sameText(token.slice(nonce.length + 1), macOf(key, `${rank}.${nonce}`));
}

/** Compute's seal on train batch `batch` of `batchSize` records (as asked for), which holds `ids` feature ids. */
export function sealBatchIds(key: Uint8Array, batch: number, batchSize: number, ids: number): string {
  // "ids." cannot begin a token's text (`${rank}.${nonce}`): a seal is never a token's MAC, nor one the other way.
  return macOf(key, `ids.${batch}.${batchSize}.${ids}`).slice(0, 22);
}

/** Whether `seal` is compute's, under `key`, on batch `batch` of the job's `batchSize` holding `ids` feature ids. */
export function batchIdsSealIsFor(key: Uint8Array, batch: number, batchSize: number, ids: number, seal: string): boolean {
  return seal !== "" && sameText(seal, sealBatchIds(key, batch, batchSize, ids));
}

/** Whether `ticket` was issued under `ticketKey` for batch `batch`, given to the registration of `rank` whose token is `token`. */
export function ticketIsFor(ticketKey: Uint8Array, rank: number, token: string, batch: number, ticket: string): boolean {
  return nonceOf(token) !== "" && sameText(ticket, ticketOf(ticketKey, rank, token, batch));
}
