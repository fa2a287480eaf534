import { taskMetrics, type RowLayout } from "@pangea/model";
import type { TaskEval } from "@pangea/schema";
import type { CtrModel } from "../model/ctr-model.js";
import type { BatchReader, DecodedBatch } from "../cluster/batches.js";
import { decodeBatch, toModelBatch } from "../cluster/batches.js";
import type { ShardedParameterClient as ParameterClient } from "../cluster/sharded-parameters.js";
import { IdDeduper } from "../features/dedup.js";

/** The held-out report without the worker and step: task 0's figures as scalars (what single-task readers know), and every task's. */
export interface EvalResult {
  records: number;
  auc: number;
  logloss: number;
  meanPrediction: number;
  labelRate: number;
  tasks: TaskEval[];
}

/**
 * Scores the whole held-out split with the final parameters (read-only
 * pulls: no rows are created), and measures every task. `groupColumn`: the
 * slot column whose id groups records for GAUC, or null.
 */
export async function evaluate(model: CtrModel, layout: RowLayout, batches: BatchReader, params: ParameterClient, step: number, groupColumn: number | null = null): Promise<EvalResult> {
  const dedup = new IdDeduper();
  const denseParams = (await params.pull(step, new Uint32Array(0), 0, true, true)).dense!;
  const T = model.tasks.length;
  const preds: number[][] = model.tasks.map(() => []);
  const labels: number[][] = model.tasks.map(() => []);
  const groups: (bigint | null)[] = [];
  for (;;) {
    const bytes = await batches.next();
    if (!bytes) break;
    const batch = decodeBatch(bytes, model.spec, "compute");
    const { unique, uniqueCount, inverse } = dedup.dedup(batch.idWords, batch.nnz);
    const offsets = layout.offsets(unique, uniqueCount);
    const pulled = await params.pull(step, unique, uniqueCount, false, true, offsets);
    const p = model.predict(denseParams, pulled.rows, uniqueCount, { ...toModelBatch(batch, inverse), rowOffsets: offsets });
    for (let i = 0; i < batch.size; i++) {
      for (let t = 0; t < T; t++) {
        preds[t]!.push(p[i * T + t]!);
        labels[t]!.push(batch.labels[i * T + t]!);
      }
      if (groupColumn !== null) groups.push(groupOf(batch, model.spec.numSlots, i, groupColumn));
    }
  }
  const measured = model.tasks.map((task, t) => taskMetrics(task.loss, preds[t]!, labels[t]!, groupColumn !== null ? groups : null));
  const tasks = model.tasks.map((task, t): TaskEval => {
    const m = measured[t]!;
    return {
      name: task.name,
      loss: task.loss,
      records: m.records,
      auc: m.auc,
      logloss: m.logloss,
      rmse: m.rmse,
      meanPrediction: m.meanPrediction,
      labelRate: m.labelRate,
      calibration: m.calibration,
      hasGauc: m.grouped !== null,
      gauc: m.grouped?.gauc ?? Number.NaN,
      gaucGroups: m.grouped?.groups ?? 0,
      gaucRecords: m.grouped?.records ?? 0,
      ungroupedRecords: m.ungrouped,
    };
  });
  const first = measured[0]!;
  return { records: preds[0]!.length, auc: first.auc, logloss: first.logloss, meanPrediction: first.meanPrediction, labelRate: first.labelRate, tasks };
}

/**
 * Sample i's group: the one id in its group-slot cell. A cell with no id, or
 * with several (which one is "the user" would be a guess), puts the record
 * in no group; the report counts such records.
 */
function groupOf(b: DecodedBatch, slots: number, i: number, column: number): bigint | null {
  const cell = i * slots + column;
  const from = b.cellOffsets[cell]!;
  if (b.cellOffsets[cell + 1]! - from !== 1) return null;
  return (BigInt(b.idWords[2 * from + 1]!) << 32n) | BigInt(b.idWords[2 * from]!);
}
