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
  if (!batchIdsSeal) return `it carries no batch_ids_seal (compute seals each train batch's count of ids; a training pull names it with the seal)`;
  if (!batchIdsSealIsFor(key, batch, batchSize, batchIds, batchIdsSeal)) {
    return `its batch_ids_seal is not compute's seal on batch ${batch} of the job's batch size ${batchSize} holding ${batchIds} ids`;
  }
  return "";
}

/**
 * The rows training pulls made for each batch, held to the batch's count of
 * ids as compute sealed it (a trainer pulls a batch's distinct ids, never
 * more than it holds). A pull naming more ids than its batch holds is
 * refused before anything is read; a pull whose ids without a row would take
 * the batch's rows past its count is refused before any row is made. Ids
 * with rows make none, so an honest trainer pulling a batch again (after
 * compute was lost, or a pull sent ahead was dropped) is never refused. So a
 * trainer holding a batch (and its ticket) makes at most about as many rows
 * as the batch has ids, where it made rows for any ids its pull named (a
 * hostile trial: 10 pulls of 200,000 made-up ids took a shard from 2,140 to
 * 2,002,140 rows). The newest `bound` batches are kept: a pull is only for a
 * batch of its step (sync/hybrid) or one held and not yet pushed (async), far
 * fewer.
 */
export class BatchRowBudget {
  private readonly made = new Map<number, number>();
  private job = "";

  constructor(private readonly bound = 4096) {}

  /** Throws unless a pull of `count` ids may be for `sealed`'s batch at all. */
  checkCount(sealed: SealedBatch, count: number, call: string): void {
    if (count <= sealed.ids) return;
    throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} refused: it names ${count} ids, and batch ${sealed.batch} holds ${sealed.ids} (compute's seal)`);
  }

  /** Throws unless `fresh` more rows (the pull's ids without one) keep `sealed`'s batch within its count; nothing is made yet. */
  admit(sealed: SealedBatch, fresh: number, call: string): void {
    this.ofJob(sealed.job);
    const made = this.made.get(sealed.batch) ?? 0;
    if (made + fresh <= sealed.ids) return;
    throw OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} refused: its ${fresh} ids without a row would take the rows made for batch ${sealed.batch} to ${made + fresh}, above the ${sealed.ids} ids the batch holds (compute's seal)`);
  }

  /** The pull for `batch` made `rows` rows. */
  note({ job, batch }: SealedBatch, rows: number): void {
    this.ofJob(job);
    if (rows <= 0) return;
    const made = (this.made.get(batch) ?? 0) + rows;
    this.made.delete(batch);
    this.made.set(batch, made);
    for (const j of this.made.keys()) {
      if (this.made.size <= this.bound) break;
      this.made.delete(j);
    }
  }

  /** Batch indices start again with each job: another job's counts are forgotten. */
  private ofJob(job: string): void {
    if (job === this.job) return;
    this.made.clear();
    this.job = job;
  }
}
