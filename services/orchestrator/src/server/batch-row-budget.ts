import { createHash } from "node:crypto";
import { batchIdsSealIsFor } from "@pangea/rpc";
import { OrchestratorErrors } from "../errors.js";
import type { SealedBatch, TrainingPull } from "./parameter-host.js";

/**
 * Why a training pull's seal on its batch's count of ids is not good ("" when it is): compute seals each train batch
 * it serves with the key trainers' tokens are made with, over the batch index, the batch size asked for and the count
 * (sealBatchIds), so a seal made for a larger batch size than the job's, or for another batch, or a count made up, is
 * refused here.
 */
export function sealProblem(key: Uint8Array, batchSize: number, pull: TrainingPull): string {
  const { batch = 0, batchIds = 0, batchIdsSeal = "" } = pull;
  if (!batchIdsSeal) {
    return "it carries no batch_ids_seal (compute seals each train batch's count of ids once it has registered with the orchestrator; a trainer pulls with the seal its batch came with)";
  }
  if (!batchIdsSealIsFor(key, batch, batchSize, batchIds, batchIdsSeal)) {
    return `its batch_ids_seal is not compute's seal on batch ${batch} of the job's batch size ${batchSize} holding ${batchIds} ids`;
  }
  return "";
}

/**
 * What tells one run of a job from another in a BatchRowBudget: the job id and the token key of the orchestrator
 * that runs it (drawn at each start, so a job resumed under the same id is another run, its tables reloaded).
 */
export function runOf(jobId: string, key: Uint8Array): string {
  return `${jobId}.${createHash("sha256").update(key).digest("base64url").slice(0, 12)}`;
}

/**
 * The rows training pulls made for each batch, held to the batch's count of
 * ids as compute sealed it (a trainer pulls a batch's distinct ids, never
 * more than it holds). A pull naming more ids than its batch holds is
 * refused before anything is read; a pull whose ids without a row would take
 * the batch's rows past its count is refused before any row is made. Ids
 * with rows make none, so a trainer pulling a batch again (after compute was
 * lost, or a pull sent ahead was dropped) is served. A trainer holding a
 * batch (and its ticket) thus makes at most as many rows as the batch has
 * ids, where it made rows for any ids its pull named (a hostile trial: 10
 * pulls of 200,000 made-up ids took a shard from 2,140 to 2,002,140 rows).
 *
 * A batch is counted per seal: a stream source (Kafka) serves whatever
 * records come next under a batch index asked for again, with a seal of its
 * own, and the rows that other content makes are its own count's. A batch's
 * count is kept while a training pull for it may still be taken (`done`
 * says when none may: sync/hybrid, a step gone by; async, pushed), so the
 * counts held are those of the batches given out and not yet trained; none
 * is forgotten to make room. Another run of the job (another orchestrator
 * start, its tables reloaded) starts every count again.
 */
export class BatchRowBudget {
  private readonly made = new Map<string, { batch: number; made: number }>();
  private run = "";
  /** Past this many counts, those of batches done are dropped (then past twice the counts left). */
  private pruneAt: number;

  constructor(
    /** Whether no training pull for the batch can be taken any more. */
    private readonly done: (batch: number) => boolean,
    /** " by parameter-server shard N" on the other shards, "" on shard 0: where a refusal came from. */
    private readonly where = "",
    private readonly bound = 4096,
  ) {
    this.pruneAt = bound;
  }

  /** Throws unless a pull of `count` ids may be for `sealed`'s batch at all. */
  checkCount(sealed: SealedBatch, count: number, call: string): void {
    if (count <= sealed.ids) return;
    throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} refused${this.where}: it names ${count} ids, and batch ${sealed.batch} holds ${sealed.ids} (compute's seal)`);
  }

  /** Throws unless `fresh` more rows (the pull's ids without one) keep `sealed`'s batch within its count; nothing is made yet. */
  admit(sealed: SealedBatch, fresh: number, call: string): void {
    this.ofRun(sealed.run);
    const made = this.made.get(keyOf(sealed))?.made ?? 0;
    if (made + fresh <= sealed.ids) return;
    throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} refused${this.where}: its ${fresh} ids without a row would take the rows made for batch ${sealed.batch} to ${made + fresh}, above the ${sealed.ids} ids the batch holds (compute's seal)`);
  }

  /** The pull for `sealed`'s batch made `rows` rows. */
  note(sealed: SealedBatch, rows: number): void {
    this.ofRun(sealed.run);
    if (rows <= 0) return;
    const key = keyOf(sealed);
    const entry = this.made.get(key);
    if (entry) entry.made += rows;
    else this.made.set(key, { batch: sealed.batch, made: rows });
    if (this.made.size > this.pruneAt) {
      for (const [k, e] of this.made) if (this.done(e.batch)) this.made.delete(k);
      this.pruneAt = Math.max(this.bound, 2 * this.made.size);
    }
  }

  /** How many batches' counts are held. */
  get size(): number {
    return this.made.size;
  }

  private ofRun(run: string): void {
    if (run === this.run) return;
    this.made.clear();
    this.pruneAt = this.bound;
    this.run = run;
  }
}

function keyOf(s: SealedBatch): string {
  return `${s.batch}.${s.seal}`;
}
