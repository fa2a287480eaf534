import { printable } from "@pangea/kit";
import type { EvalReport__Output, JobStatus__Output, TaskEval__Output, TaskStatus__Output } from "@pangea/schema";

const fmt = (x: number, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
const int = (x: number) => Math.round(x).toLocaleString("en-US");

export function stateName(state: string): string {
  return state.replace("JOB_STATE_", "").toLowerCase();
}

/** Parameter sync to serving as the orchestrator's dashboard reports it (/status.json `serving`); null without --serving-sync. */
export interface SyncSummary {
  /** The model version serving last applied a push to (0 = none yet; an ignored push does not count). */
  version: number;
  rowsSent: number;
  /** Pushes serving acknowledged without applying them (not newer than one it had from this run); 0 from an orchestrator older than the field. */
  ignored: number;
  /** Why the last push to a serving replica failed, while one still fails; null when none does. */
  failing: string | null;
}

/** The sync part of the orchestrator's /status.json at httpAddress (asked with its --metrics-token-file's token), or null when it has none or does not answer. */
export async function fetchSyncSummary(httpAddress: string, token?: string): Promise<SyncSummary | null> {
  try {
    const r = await fetch(`http://${httpAddress}/status.json`, { signal: AbortSignal.timeout(2_000), ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
    const body = (await r.json()) as { serving?: { version?: unknown; rowsSent?: unknown; ignored?: unknown; failing?: unknown } | null };
    const version = Number(body.serving?.version);
    const rowsSent = Number(body.serving?.rowsSent);
    const ignored = Number(body.serving?.ignored ?? 0);
    const failing = typeof body.serving?.failing === "string" ? body.serving.failing : null;
    return body.serving && Number.isFinite(version) && Number.isFinite(rowsSent) ? { version, rowsSent, ignored: Number.isFinite(ignored) ? ignored : 0, failing } : null;
  } catch {
    return null;
  }
}

const NO_HELD_OUT = "0 (no held-out split: the job was not evaluated)";

/** The human summary printed at the end of `pangea run` and by `pangea status`. */
/** `stopped`: pangea run ended the job's processes while the orchestrator still reported it running (a process failed). */
export function formatSummary(s: JobStatus__Output, trainers: number, sync: SyncSummary | null = null, stopped = false): string {
  // Other shards report their tables through ParameterServer/TableStats.
  const shards = s.workers.filter((w) => w.kind === "WORKER_KIND_PS_SHARD").length;
  // Steps, samples, losses, train time and the counters cover the whole job, the part before a --resume included.
  const resumed = Number(s.resumedFromStep) > 0;
  // --resume of a job that had completed: reported from its final checkpoint, nothing trained.
  const atFinalStep = resumed && s.state === "JOB_STATE_COMPLETED" && Number(s.resumedFromStep) === Number(s.step) && !(s.samplesPerSecond > 0);
  // No trainer reported a backend: none joined, so the job had completed. One that did evaluated the final step's
  // checkpoint, which a run ended before completing (killed during its final evaluation) had left.
  const completedBefore = atFinalStep && !s.backend;
  // --resume refused: the checkpoint holds another model or setup, or cannot be read (the orchestrator raises these two
  // codes only while reading a checkpoint, at the start), so nothing resumed.
  const unreadable = s.error.startsWith("ORCH_ERR_CHECKPOINT_CORRUPT");
  const resumeRefused = resumed && s.state === "JOB_STATE_FAILED" && (unreadable || s.error.startsWith("ORCH_ERR_CHECKPOINT_MISMATCH"));
  // A job that ended before its first batch (a model the data cannot take, say): no rate or loss to print.
  // A refused resume trained nothing: the counts the status carries are the checkpoint's, not this run's.
  const untrained = (Number(s.samples) === 0 && !completedBefore) || resumeRefused;
  // The trainers that took part: those launched, or more when others joined (started by hand against the orchestrator);
  // a registration that never trained a step is none.
  const tookPart = new Set(s.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER" && (Number(w.stepsDone) > 0 || Number(w.batchesDone) > 0)).map((w) => w.workerId)).size;
  const onTrainers = Math.max(trainers, tookPart);
  const rows: [string, string][] = [
    ["state", stopped ? "stopped (a process failed while the job ran; see below)" : stateName(s.state) + (s.error ? ` (${s.error})` : "")],
    // An orchestrator older than the field sends none.
    ...(s.model ? [["model", s.model] as [string, string]] : []),
    // A completed job reported again: no trainer ran, so none reported a backend.
    ...(completedBefore && !s.backend ? [] : [["backend", `${s.backend || "n/a"} on ${onTrainers} trainer${onTrainers === 1 ? "" : "s"}${trainerChanges(s, onTrainers, resumeRefused)}`] as [string, string]]),
    ...gone(s, stopped),
    ["mode", `${s.mode || "sync"}${resumeRefused ? `, not resumed: the checkpoint at step ${s.resumedFromStep} ${unreadable ? "could not be read" : "does not fit this job"} (see state)` : resumed ? `, resumed from step ${s.resumedFromStep}` : ""}`],
    // An orchestrator older than the field sends none.
    ...(s.restoredFrom ? [["restored from", `${s.restoredFrom}; its parameters, this job's steps from 0`] as [string, string]] : []),
    ["steps", resumeRefused ? `none of ${s.steps} trained (the checkpoint, at step ${s.resumedFromStep}, was not resumed)` : `${s.step} of ${s.steps} (${int(s.samples)} samples)`],
    ...(resumeRefused ? [] : [["batches", `${batchesTaken(s)}, ${int(Number(s.missingBatches))} missing, ${int(Number(s.duplicateBatches))} duplicate${Number(s.duplicateBatches) === 1 ? "" : "s"} ignored, ${int(Number(s.reassignedBatches))} reassigned from ${int(Number(s.deadTrainers))} lost trainer${Number(s.deadTrainers) === 1 ? "" : "s"}${Number(s.shardPartsSkipped) > 0 ? `; ${int(Number(s.shardPartsSkipped))} applied without their part on another shard (pushed to shard 0 alone)` : ""}`] as [string, string]]),
    ["train time", resumeRefused ? "n/a (no batch was trained)" : `${s.elapsedSeconds.toFixed(1)} s`],
    ["throughput", completedBefore ? "nothing trained since the resume (the job had completed)" : atFinalStep ? "nothing trained since the resume (it resumed from the final step's checkpoint and evaluated it)" : untrained ? "n/a (no batch was trained)" : `${int(s.samplesPerSecond)} samples/s${resumed ? " since the resume" : ""}${s.samplesPerSecondAfterWarmup > 0 ? ` (${int(s.samplesPerSecondAfterWarmup)} after ${resumed ? "the resumed run's" : "its"} first ${s.warmupSteps} steps)` : ""}`],
    // An orchestrator older than first_loss_step reports 0: its first loss was step 1's.
    ["train loss", untrained ? "n/a (no batch was trained)" : `${fmt(s.firstLoss)} at step ${Number(s.firstLossStep) || 1} -> ${fmt(s.smoothedLoss)} (smoothed) at step ${s.step}`],
    embeddingRowsLine(s, shards, completedBefore),
  ];
  // Slots of different widths: each one's table, so the memory of a wide slot is visible.
  const slots = s.embeddings?.slots ?? [];
  if (slots.some((t) => t.rowWidth !== slots[0]!.rowWidth)) {
    const listed = slots.slice(0, 12).map((t) => `${t.slot}: ${t.rowWidth} wide, ${int(Number(t.rows))} rows, ${(Number(t.bytes) / 1e6).toFixed(1)} MB`);
    rows.push(["embedding slots", listed.join("; ") + (slots.length > 12 ? `; ... (${slots.length} slots)` : "")]);
  }
  const tasks = s.tasks ?? [];
  // A source without a held-out split (a Kafka stream, --eval-fraction 0) is evaluated on nothing: no figures to print.
  if (s.eval && Number(s.eval.records) === 0) rows.push(["held-out records", NO_HELD_OUT]);
  // A regression task has no AUC: the task rows give its RMSE even when it is the only one.
  else if (tasks.length > 1 || tasks[0]?.loss === "mse") rows.push(...taskRows(tasks, s.eval !== null));
  else if (s.eval) {
    const gt = s.source?.hasGroundTruth ? s.source : null;
    rows.push(
      ["held-out AUC", `${fmt(s.eval.auc)}${oneLabel(s.eval) ? ` (every held-out record has label ${s.eval.labelRate}: AUC needs both labels)` : ""}${gt ? `   (ground-truth model ${fmt(gt.groundTruthAuc)}, gap ${fmt(gt.groundTruthAuc - s.eval.auc)})` : ""}`],
      ["held-out logloss", `${fmt(s.eval.logloss)}${gt ? `   (ground-truth model ${fmt(gt.groundTruthLogloss)})` : ""}`],
      ["held-out records", `${int(Number(s.eval.records))} (label rate ${fmt(s.eval.labelRate, 3)}, mean prediction ${fmt(s.eval.meanPrediction, 3)})`],
    );
    const e = tasks[0]?.eval;
    if (e?.hasGauc) rows.push(["held-out GAUC", gaucText(e)]);
  }
  rows.push(...evaluationRows(s));
  if (s.source?.skippedSummary) rows.push(["skipped data", s.source.skippedSummary]);
  // An orchestrator older than the field sends none.
  // Escaped with every row below (up to 4 KiB: a warning is read whole).
  for (const w of s.warnings ?? []) rows.push(["warning", w]);
  if (sync) {
    const ignored = sync.ignored > 0 ? `; ${int(sync.ignored)} push${sync.ignored === 1 ? "" : "es"} ignored by serving as not newer than ones it had applied` : "";
    // Rows are counted as sent whether or not serving took them: with no push acknowledged, the line says so and why.
    const failing = sync.failing ? `; the last push failed: ${printable(sync.failing)}` : "";
    const text = sync.version > 0
      ? `${int(sync.rowsSent)} embedding rows pushed to serving; serving acknowledged version ${sync.version}${ignored}${failing}`
      : resumed && !resumeRefused
        ? // The count runs on from the earlier run's, whose pushes serving may have applied.
          `${int(sync.rowsSent)} embedding rows sent to serving since the job began; none applied since the resume from step ${s.resumedFromStep}${ignored}${failing}`
        : `no push was applied by serving (${int(sync.rowsSent)} embedding rows in them)${ignored}${failing}`;
    rows.push(["parameter sync", text]);
  }
  if (s.checkpointPath) rows.push(["checkpoint", s.checkpointPath]);
  // --export-dir (--keep-best's export is on the best checkpoint's line): where the model went, or that it did not.
  if (s.exportError) rows.push(["export", `FAILED: ${s.exportError}`]);
  else if (s.exported && !s.best?.exported) rows.push(["export", s.exported]);
  const width = Math.max(...rows.map(([k]) => k.length));
  // Workers supply the error, backend and source texts: escape them so no control byte reaches the terminal.
  return [`job ${printable(s.jobId)}`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${printable(v, 4096)}`)].join("\n");
}

/** Held-out records all of one label: their AUC is undefined (the summary said "n/a" without saying why). */
function oneLabel(e: { auc: number; labelRate: number; records: unknown }): boolean {
  return !Number.isFinite(e.auc) && Number(e.records) > 0 && (e.labelRate === 0 || e.labelRate === 1);
}

/**
 * A running job whose compute is not connected makes no progress until one registers again, and nothing else on
 * the human summary would say so: the step just stops moving. (A parameter-server shard that goes fails the job.)
 */
function gone(s: JobStatus__Output, stopped: boolean): [string, string][] {
  if (s.state !== "JOB_STATE_RUNNING") return [];
  const compute = s.workers.find((w) => w.kind === "WORKER_KIND_COMPUTE");
  if (!compute || compute.alive) return [];
  // A job pangea run stopped waits for nothing any more: the compute was gone when it stopped.
  const then = stopped ? "gone when the job stopped" : "training waits for a compute to register";
  return [["not connected", `compute ${compute.workerId}${compute.address ? ` at ${compute.address}` : ""}: ${then}`]];
}

/**
 * The trainers launched are not always the ones training: while the job runs, how many are live when that differs;
 * once it ended, how many were lost on the way (the batches line counts the same, the job's whole life).
 */
function trainerChanges(s: JobStatus__Output, launched: number, resumeRefused: boolean): string {
  if (resumeRefused) return "";
  if (s.state === "JOB_STATE_RUNNING") return s.liveTrainers !== launched ? ` (${s.liveTrainers} live now)` : "";
  const lost = Number(s.deadTrainers);
  return lost > 0 ? ` (${int(lost)} lost during the job)` : "";
}

/** The most evaluations listed one per line; beyond it the first two and the newest ones. */
const EVALUATIONS_LISTED = 12;

/**
 * The evaluations during training (--eval-every-steps), one line each with
 * the compared task's figures (--keep-best's task, else the first), the
 * best marked, and --keep-best's checkpoint and export. Nothing for a job
 * evaluated only at the end: the held-out rows above say it all.
 */
function evaluationRows(s: JobStatus__Output): [string, string][] {
  const history = s.evaluations ?? [];
  const best = s.best;
  if (history.length < 2 && !best) return [];
  const task = best?.task || s.tasks?.[0]?.name || "";
  const line = (e: EvalReport__Output) => {
    const t = e.tasks.find((x) => x.name === task);
    const f = t && t.loss === "mse" ? `RMSE ${fmt(t.rmse)}` : `AUC ${fmt(t?.auc ?? e.auc)}, logloss ${fmt(t?.logloss ?? e.logloss)}`;
    return `step ${e.step}: ${f}${best && Number(best.step) === Number(e.step) ? "  (best)" : ""}`;
  };
  const shown = history.length <= EVALUATIONS_LISTED ? history : [...history.slice(0, 2), null, ...history.slice(history.length - (EVALUATIONS_LISTED - 3))];
  const rows: [string, string][] = shown.map((e, i) => [i === 0 ? `held-out by step${s.tasks && s.tasks.length > 1 ? ` (${task})` : ""}` : "", e ? line(e) : `... (${history.length - EVALUATIONS_LISTED + 1} more)`]);
  if (best) {
    const exported = best.exported ? `; exported as ${best.exported}` : "";
    rows.push(["best checkpoint", `step ${best.step} (${best.task} ${best.metric === "auc" ? "AUC" : "logloss"} ${fmt(best.value)})${best.checkpoint ? `: ${best.checkpoint}` : ""}${exported}`]);
  }
  return rows;
}

/** A multi-task job: each task's training loss and, once evaluated, its held-out metrics (ground truth beside AUC when the data knows it). */
function taskRows(tasks: readonly TaskStatus__Output[], evaluated: boolean): [string, string][] {
  const rows: [string, string][] = [];
  if (evaluated && tasks[0]?.eval) rows.push(["held-out records", int(Number(tasks[0].eval.records))]);
  for (const t of tasks) {
    const parts = [`train loss ${fmt(t.smoothedLoss)} (smoothed)`];
    const e = t.eval;
    if (e && t.loss === "mse") {
      parts.push(`RMSE ${fmt(e.rmse)}`, `calibration ${fmt(e.calibration, 3)} (mean prediction ${fmt(e.meanPrediction, 3)}, mean label ${fmt(e.labelRate, 3)})`);
    } else if (e) {
      parts.push(
        `AUC ${fmt(e.auc)}${t.hasGroundTruth ? ` (ground-truth model ${fmt(t.groundTruthAuc)}, gap ${fmt(t.groundTruthAuc - e.auc)})` : ""}`,
        `logloss ${fmt(e.logloss)}${t.hasGroundTruth ? ` (ground-truth model ${fmt(t.groundTruthLogloss)})` : ""}`,
        `calibration ${fmt(e.calibration, 3)} (mean prediction ${fmt(e.meanPrediction, 3)}, label rate ${fmt(e.labelRate, 3)})`,
      );
      if (e.hasGauc) parts.push(`GAUC ${gaucText(e)}`);
    }
    if (e && Number(e.records) !== Number(tasks[0]!.eval?.records)) parts.push(`${int(Number(e.records))} records with its label`);
    rows.push([`task ${t.name} (${t.loss}, weight ${t.weight})`, parts.join("; ")]);
  }
  return rows;
}

function gaucText(e: TaskEval__Output): string {
  const ungrouped = Number(e.ungroupedRecords);
  return `${fmt(e.gauc)} over ${int(Number(e.gaucGroups))} groups with both classes (${int(Number(e.gaucRecords))} records${ungrouped ? `; ${int(ungrouped)} in no group` : ""})`;
}

/**
 * The job status as one line of JSON for `--json`. JSON.stringify escapes C0
 * controls but leaves DEL, the C1 controls (0x9b is a CSI on some terminals),
 * line separators and bidi overrides raw; those become \u escapes too.
 */
export function statusJson(s: JobStatus__Output): string {
  return JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The batches the job took. Async: batchesApplied counts each batch once taken, its gradients applied or dropped as
 * stale, so the dropped ones are told apart (they read "N applied; S stale gradients dropped", S among the N).
 */
function batchesTaken(s: JobStatus__Output): string {
  const taken = Number(s.batchesApplied);
  if (s.mode !== "async") return `${int(taken)} applied`;
  const stale = Number(s.staleGradients);
  return `${int(taken)} taken: ${int(taken - stale)} applied, ${int(stale)} dropped as stale (the oldest applied ${s.maxStalenessSeen} updates behind)`;
}

/**
 * The embedding rows: shard 0's while a job on several shards runs (each shard holds its own), every shard's once the
 * orchestrator counted them from the final checkpoint; the table figures (MB, filtered, ...) are shard 0's.
 */
function embeddingRowsLine(s: JobStatus__Output, shards: number, completedBefore: boolean): [string, string] {
  const every = s.embeddingRowsEveryShard || completedBefore;
  const e = s.embeddings;
  const table = e ? `${(Number(e.bytes) / 1e6).toFixed(1)} MB; ${int(Number(e.filteredLookups))} lookups filtered, ${int(Number(e.admittedIds))} ids admitted, ${int(Number(e.evictedRows))} rows evicted, ${int(Number(e.rejectedGradients))} gradients rejected` : "";
  const note = every ? `in the final checkpoint, every shard's${table ? `; shard 0's table: ${table}` : ""}` : table;
  return [shards > 0 && !every ? `embedding rows (shard 0 of ${shards + 1})` : "embedding rows", int(Number(s.embeddingRows)) + (note ? `  (${note})` : "")];
}
