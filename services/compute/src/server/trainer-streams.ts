import { RevokedTokens, sealBatchIds, tokenIsForRank } from "@pangea/rpc";
import { ComputeErrors } from "../errors.js";

/** One stream as TrainerStreams sees it: the rank and token it was opened with, and how to end it. */
interface Held {
  rank: number;
  token: string;
  who: string;
  close: (err: Error) => void;
}

/**
 * Whose batch streams compute serves. Until the orchestrator gives compute
 * the key trainers' worker tokens are bound to their rank with
 * (RegisterWorkerResponse.push_key), any request is served, bounded only by
 * the StreamBudget: an orchestrator that predates the key gives none, and
 * compute serves while it registers. Once compute holds the key:
 *
 * - a request whose token was not issued for the rank it names
 *   (BatchRequest.tokenRank) is refused, so a caller that holds no trainer's
 *   registration (a trainer certificate alone, or anyone in plaintext) opens
 *   no stream, and so takes none of the places --max-batch-streams bounds;
 * - a rank has at most `maxPerRank` streams, and a newer one closes the
 *   rank's oldest. Refusing the newer one instead would let a trainer's own
 *   dead streams (a hung process whose connections are still open, restarted
 *   and registered again under the same rank) lock its successor out. An
 *   honest trainer holds at most two streams at once (its on-demand feed and
 *   an evaluation), so its own new streams never close its live feed;
 * - the streams served before the key arrived are held to it then: one
 *   without a token issued for its rank is closed;
 * - a token the orchestrator revokes (WorkerEvent.tokens_revoked: its
 *   trainer was declared dead, or registered again) has its streams closed
 *   and opens no more. A trainer that comes back after being declared dead
 *   gets a new rank (ranks are never reused), so it is the revocation, not
 *   the per-rank cap, that gives its former self's places back.
 *
 * A key replaced (the orchestrator restarted, drawing a new one) leaves the
 * streams admitted under the old one open: their trainers go with the old
 * orchestrator, and until they do they count in their ranks' caps.
 */
export class TrainerStreams {
  private key: Uint8Array | null = null;
  private readonly byRank = new Map<number, Held[]>();
  /** Streams admitted while compute held no key. */
  private readonly unchecked = new Set<Held>();
  /** Nonces of the tokens the orchestrator revoked, the newest MAX_REVOKED (as a shard keeps them). */
  private readonly revoked = new RevokedTokens();

  constructor(readonly maxPerRank: number) {}

  /** The key the orchestrator gave at registration, or null from one that gives none (then nothing is checked). */
  setKey(key: Uint8Array | null): void {
    const next = key?.length ? key : null;
    // Another orchestrator's key: the nonces it revokes are its own.
    if (!next || !this.key || !Buffer.from(next).equals(Buffer.from(this.key))) this.revoked.clear();
    this.key = next;
    if (!this.key) return;
    for (const held of [...this.unchecked]) {
      this.unchecked.delete(held);
      const refused = this.refusal(held);
      if (refused) held.close(refused);
      else this.place(held);
    }
  }

  /**
   * Admits a stream of `rank` carrying `token`, or throws COMPUTE_ERR_STREAM_TOKEN; may close the rank's oldest
   * stream. Returns the function that gives its place back (once its call is over).
   */
  admit(rank: number, token: string, who: string, close: (err: Error) => void): () => void {
    const held: Held = { rank, token, who, close };
    if (!this.key) {
      this.unchecked.add(held);
    } else {
      const refused = this.refusal(held);
      if (refused) throw refused;
      this.place(held);
    }
    return () => {
      if (this.unchecked.delete(held)) return;
      const list = this.byRank.get(rank);
      const at = list?.indexOf(held) ?? -1;
      if (at < 0) return;
      list!.splice(at, 1);
      if (list!.length === 0) this.byRank.delete(rank);
    };
  }

  /**
   * The seal on a train batch's count of ids (TrainingBatch.idsSeal), for the size it was asked with: the parameter
   * servers take a pull for the batch only with it, and make at most that many rows for it. "" without a key.
   */
  sealIds(batch: number, batchSize: number, ids: number): string {
    return this.key ? sealBatchIds(this.key, batch, batchSize, ids) : "";
  }

  /** Tokens the orchestrator revoked, by nonce: their streams are closed, and new ones refused. */
  revoke(nonces: readonly string[]): void {
    if (!this.key) return;
    this.revoked.add(nonces);
    for (const list of [...this.byRank.values()]) {
      for (const held of list.filter((h) => this.revoked.has(h.token))) held.close(this.revokedError(held, "closed"));
    }
  }

  private revokedError(held: Held, what: "closed" | "refused"): Error {
    return ComputeErrors.create("COMPUTE_ERR_STREAM_TOKEN", `batch stream from ${held.who} for rank ${held.rank} ${what}: its worker token was revoked (the trainer of rank ${held.rank} was declared dead or registered again); expected the token of its current registration`);
  }

  private refusal(held: Held): Error | null {
    if (tokenIsForRank(this.key!, held.rank, held.token)) return this.revoked.has(held.token) ? this.revokedError(held, "refused") : null;
    const carried = held.token === "" ? "it carries no worker token" : `its worker token was not issued for rank ${held.rank}`;
    return ComputeErrors.create("COMPUTE_ERR_STREAM_TOKEN", `batch stream from ${held.who} for rank ${held.rank} refused: ${carried}; expected the token the orchestrator gave rank ${held.rank}'s trainer when it registered`);
  }

  private place(held: Held): void {
    const list = this.byRank.get(held.rank) ?? [];
    this.byRank.set(held.rank, list);
    list.push(held);
    while (list.length > this.maxPerRank) {
      const oldest = list.shift()!;
      oldest.close(ComputeErrors.create("COMPUTE_ERR_STREAM_REPLACED", `batch stream from ${oldest.who} for rank ${held.rank} closed: ${held.who} opened a newer one for rank ${held.rank}, and compute serves at most ${this.maxPerRank} per rank (--max-streams-per-rank)`));
    }
  }
}
