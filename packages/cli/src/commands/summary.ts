import type { JobStatus__Output } from "@pangea/schema";

const fmt = (x: number, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
const int = (x: number) => Math.round(x).toLocaleString("en-US");

export function stateName(state: string): string {
  return state.replace("JOB_STATE_", "").toLowerCase();
}

/** The human summary printed at the end of `pangea run` and by `pangea status`. */
export function formatSummary(s: JobStatus__Output, trainers: number): string {
  // Other shards report their tables through ParameterServer/TableStats.
  const shards = s.workers.filter((w) => w.kind === "WORKER_KIND_PS_SHARD").length;
  const rows: [string, string][] = [
    ["state", stateName(s.state) + (s.error ? ` (${s.error})` : "")],
    ["backend", `${s.backend || "n/a"} on ${trainers} trainer${trainers === 1 ? "" : "s"}`],
    ["mode", `${s.mode || "sync"}${Number(s.resumedFromStep) > 0 ? `, resumed from step ${s.resumedFromStep}` : ""}`],
    ["steps", `${s.step} of ${s.steps} (${int(s.samples)} samples)`],
    ["batches", `${int(Number(s.batchesApplied))} applied, ${int(Number(s.missingBatches))} missing, ${int(Number(s.duplicateBatches))} duplicates ignored, ${int(Number(s.reassignedBatches))} reassigned from ${int(Number(s.deadTrainers))} lost trainer${Number(s.deadTrainers) === 1 ? "" : "s"}${s.mode === "async" ? `; ${int(Number(s.staleGradients))} stale gradients dropped (oldest applied ${s.maxStalenessSeen} updates behind)` : ""}`],
    ["train time", `${s.elapsedSeconds.toFixed(1)} s`],
    ["throughput", `${int(s.samplesPerSecond)} samples/s`],
    ["train loss", `${fmt(s.firstLoss)} at step 1 -> ${fmt(s.smoothedLoss)} (smoothed) at step ${s.step}`],
    [shards > 0 ? `embedding rows (shard 0 of ${shards + 1})` : "embedding rows", int(Number(s.embeddingRows)) + (s.embeddings ? `  (${(Number(s.embeddings.bytes) / 1e6).toFixed(1)} MB; ${int(Number(s.embeddings.filteredLookups))} lookups filtered, ${int(Number(s.embeddings.admittedIds))} ids admitted, ${int(Number(s.embeddings.evictedRows))} rows evicted, ${int(Number(s.embeddings.rejectedGradients))} gradients rejected)` : "")],
  ];
  if (s.eval) {
    const gt = s.source?.hasGroundTruth ? s.source : null;
    rows.push(
      ["held-out AUC", `${fmt(s.eval.auc)}${gt ? `   (ground-truth model ${fmt(gt.groundTruthAuc)}, gap ${fmt(gt.groundTruthAuc - s.eval.auc)})` : ""}`],
      ["held-out logloss", `${fmt(s.eval.logloss)}${gt ? `   (ground-truth model ${fmt(gt.groundTruthLogloss)})` : ""}`],
      ["held-out records", `${int(Number(s.eval.records))} (label rate ${fmt(s.eval.labelRate, 3)}, mean prediction ${fmt(s.eval.meanPrediction, 3)})`],
    );
  }
  if (s.source && Number(s.source.skippedRecords) > 0) rows.push(["skipped records", s.source.skippedSummary]);
  if (s.checkpointPath) rows.push(["checkpoint", s.checkpointPath]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return [`job ${s.jobId}`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join("\n");
}
