import { aucAndLogloss, type RowLayout } from "@pangea/model";
import type { CtrModel } from "../model/ctr-model.js";
import type { BatchReader } from "../cluster/batches.js";
import { decodeBatch, toModelBatch } from "../cluster/batches.js";
import type { ShardedParameterClient as ParameterClient } from "../cluster/sharded-parameters.js";
import { IdDeduper } from "../features/dedup.js";

export interface EvalResult {
  records: number;
  auc: number;
  logloss: number;
  meanPrediction: number;
  labelRate: number;
}

/** Scores the whole held-out split with the final parameters (read-only pulls: no rows are created). */
export async function evaluate(model: CtrModel, layout: RowLayout, batches: BatchReader, params: ParameterClient, step: number): Promise<EvalResult> {
  const dedup = new IdDeduper();
  const denseParams = (await params.pull(step, new Uint32Array(0), 0, true, true)).dense!;
  const preds: number[] = [];
  const labels: number[] = [];
  for (;;) {
    const bytes = await batches.next();
    if (!bytes) break;
    const batch = decodeBatch(bytes, model.spec, "compute");
    const { unique, uniqueCount, inverse } = dedup.dedup(batch.idWords, batch.nnz);
    const offsets = layout.offsets(unique, uniqueCount);
    const pulled = await params.pull(step, unique, uniqueCount, false, true, offsets);
    const p = model.predict(denseParams, pulled.rows, uniqueCount, { ...toModelBatch(batch, inverse), rowOffsets: offsets });
    const T = model.tasks.length;
    for (let i = 0; i < batch.size; i++) {
      preds.push(p[i * T]!);
      labels.push(batch.labels[i * T]!);
    }
  }
  const { auc, logloss } = aucAndLogloss(preds, labels);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return { records: preds.length, auc, logloss, meanPrediction: mean(preds), labelRate: mean(labels) };
}
