import type { Logger } from "@pangea/kit";
import type { Dlrm } from "../model/dlrm.js";
import type { BatchReader } from "../cluster/batches.js";
import { decodeBatch, toModelBatch } from "../cluster/batches.js";
import type { ShardedParameterClient as ParameterClient } from "../cluster/sharded-parameters.js";
import { IdDeduper } from "../features/dedup.js";
import { TrainerErrors } from "../errors.js";

export interface TrainStats {
  steps: number;
  samples: number;
  seconds: number;
  lastLoss: number;
}

/**
 * The synchronous step: read a batch, pull the parameters its ids need,
 * compute gradients, push them and wait for the step's update to be applied.
 */
export async function trainLoop(
  model: Dlrm,
  batches: BatchReader,
  params: ParameterClient,
  steps: number,
  log: Logger,
  logEvery: number,
): Promise<TrainStats> {
  const dedup = new IdDeduper();
  const started = performance.now();
  let samples = 0;
  let lastLoss = Number.NaN;
  for (let step = 0; step < steps; step++) {
    const bytes = await batches.next();
    if (!bytes) throw TrainerErrors.create("TRAINER_ERR_LOST_PEER", `compute ended the batch stream after ${step} of ${steps} batches`);
    const batch = decodeBatch(bytes, model.spec, "compute");
    const { unique, uniqueCount, inverse } = dedup.dedup(batch.idWords, batch.nnz);
    const pulled = await params.pull(step, unique, uniqueCount, true, false);
    const out = model.trainStep(pulled.dense!, pulled.rows, uniqueCount, toModelBatch(batch, inverse));
    if (!Number.isFinite(out.loss)) throw TrainerErrors.create("TRAINER_ERR_NON_FINITE", `loss is ${out.loss} at step ${step} (batch ${batch.batchIndex})`);
    const ack = await params.push(step, batch.size, out.loss, out.denseGrads, unique, uniqueCount, out.rowGrads);
    samples += batch.size;
    lastLoss = ack.meanLoss;
    if ((step + 1) % logEvery === 0 || step + 1 === steps) {
      const seconds = (performance.now() - started) / 1000;
      log.info({ step: ack.step, steps, loss: ack.meanLoss, samplesPerSec: Math.round(samples / seconds) }, "step");
    }
  }
  return { steps, samples, seconds: (performance.now() - started) / 1000, lastLoss };
}
