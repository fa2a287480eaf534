import { CounterFrom, Gauge, type Registry } from "@pangea/observe";
import type { Job } from "../job/job.js";
import { WARMUP_STEPS } from "../job/step-coordinator.js";
import type { JobStatus__Output } from "@pangea/schema";

/**
 * The job's Prometheus metrics, read from its status at each scrape:
 * progress, loss and AUC, throughput, the data accounting (stale, duplicate,
 * reassigned batches), trainers, embedding tables per slot, parameter sync.
 */
export function registerJobMetrics(registry: Registry, job: Job): void {
  const g = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers: [registry] });
  // prom-client starts a gauge without labels at 0; a figure that does not exist yet (the held-out AUC
  // during training) must be absent, not a 0 a dashboard or an alert would take for a value.
  const absentUntilSet = (name: string, help: string) => {
    const gauge = g(name, help);
    gauge.remove();
    return gauge;
  };
  // Registered first, so its collect (which refreshes every metric from one status snapshot) runs before the others are read.
  const step = new Gauge({ name: "pangea_job_step", help: "Training steps done.", registers: [registry], collect: () => refresh() });
  const steps = g("pangea_job_steps", "Training steps the job runs.");
  const state = g("pangea_job_state", "1 for the job's current state.", ["state"]);
  const loss = g("pangea_training_loss", "Training loss, exponentially smoothed over steps.");
  const lastLoss = g("pangea_training_last_loss", "Mean training loss of the last step.");
  const rate = g("pangea_training_samples_per_second", "Samples trained per second since the job started.");
  const rateAfterWarmup = absentUntilSet(
    "pangea_training_samples_per_second_after_warmup",
    `Samples trained per second since the end of this orchestrator's first ${WARMUP_STEPS} steps of the job (absent until then): the rate without the start-up a job pays once.`,
  );
  const auc = absentUntilSet("pangea_eval_auc", "AUC on the held-out split (the latest evaluation: every --eval-every-steps steps, and after training).");
  const streamingAuc = absentUntilSet("pangea_training_streaming_auc", "Progressive-validation AUC: each batch scored before its update, over the trainers' recent batches.");
  const logloss = absentUntilSet("pangea_eval_logloss", "Log loss on the held-out split (the latest evaluation).");
  // Per task (a single-task job has one, its "ctr" task): absent until measured, like the scalars.
  const perTask = {
    loss: g("pangea_task_training_loss", "Each task's training loss (unweighted), exponentially smoothed over steps.", ["task"]),
    lastLoss: g("pangea_task_training_last_loss", "Each task's mean training loss (unweighted) over the last step.", ["task"]),
    streamingAuc: g("pangea_task_streaming_auc", "Each binary task's progressive-validation AUC, over the trainers' recent batches.", ["task"]),
    auc: g("pangea_task_eval_auc", "Each binary task's AUC on the held-out split.", ["task"]),
    logloss: g("pangea_task_eval_logloss", "Each binary task's log loss on the held-out split.", ["task"]),
    gauc: g("pangea_task_eval_gauc", "Each binary task's GAUC on the held-out split: per-group AUC averaged with the groups' record counts as weights.", ["task"]),
    rmse: g("pangea_task_eval_rmse", "Each regression task's root mean squared error on the held-out split.", ["task"]),
    calibration: g("pangea_task_eval_calibration", "Each task's mean prediction over its mean label on the held-out split (1 = calibrated).", ["task"]),
  };
  const live = g("pangea_trainers_live", "Trainers currently members of the job.");
  const maxStale = g("pangea_gradient_staleness_max", "Async mode: the oldest gradient applied, in updates behind.");
  const rows = g("pangea_embedding_rows", "Embedding rows held (parameter-server shard 0), by slot.", ["slot"]);
  const bytes = g("pangea_embedding_bytes", "Memory of the embedding tables (shard 0).");
  const slotBytes = g("pangea_embedding_slot_bytes", "Memory of each slot's embedding table (shard 0).", ["slot"]);
  const syncLag = absentUntilSet("pangea_parameter_sync_lag_seconds", "Seconds since serving last acknowledged a parameter sync push (absent without --serving-sync).");
  const samples = new CounterFrom(registry, "pangea_training_samples_total", "Samples trained.");
  const stale = new CounterFrom(registry, "pangea_gradients_stale_total", "Async mode: gradients dropped as too stale.");
  const dup = new CounterFrom(registry, "pangea_batches_duplicate_total", "Gradients that arrived again for a batch already applied (ignored).");
  const reassigned = new CounterFrom(registry, "pangea_batches_reassigned_total", "Batches handed to another trainer after theirs died.");
  const dead = new CounterFrom(registry, "pangea_trainers_dead_total", "Trainers declared dead.");
  const skipped = new CounterFrom(registry, "pangea_records_skipped_total", "Bad records (read whole, refused) compute skipped (--on-bad-record=skip).");
  const stretches = new CounterFrom(registry, "pangea_stretches_skipped_total", "Damaged stretches of file compute skipped (--on-bad-record=skip); the records in them are not counted.");
  const evicted = new CounterFrom(registry, "pangea_embedding_evicted_rows_total", "Rows evicted for expiry, by slot.", ["slot"]);
  const admitted = new CounterFrom(registry, "pangea_embedding_filter_admissions_total", "Ids given a row after passing their slot's occurrence threshold, by slot.", ["slot"]);
  const filtered = new CounterFrom(registry, "pangea_embedding_filtered_lookups_total", "Lookups of ids still below their occurrence threshold.");
  const syncRows = new CounterFrom(registry, "pangea_parameter_sync_rows_total", "Embedding rows pushed to serving.");
  const pullsAhead = new CounterFrom(
    registry,
    "pangea_pulls_ahead_total",
    "Pulls trainers sent ahead for their next step (sync/hybrid), by outcome: served_after_hold (waited for the step's update: the overlap they are for), served_on_arrival (came after it: the trainer waited), withdrawn (not served: the work went another way, or the trainer dropped it).",
    ["outcome"],
  );
  const refresh = () => {
    // status() fills every field, so it reads as the decoded (output) form.
    const s = job.status() as unknown as JobStatus__Output;
    step.set(Number(s.step));
    steps.set(Number(s.steps));
    const ahead = job.pullsAhead();
    pullsAhead.update(ahead.servedAfterHold, { outcome: "served_after_hold" });
    pullsAhead.update(ahead.servedOnArrival, { outcome: "served_on_arrival" });
    pullsAhead.update(ahead.withdrawn, { outcome: "withdrawn" });
    state.reset();
    state.set({ state: s.state.replace("JOB_STATE_", "").toLowerCase() }, 1);
    if (Number.isFinite(s.smoothedLoss)) loss.set(s.smoothedLoss);
    if (Number.isFinite(s.lastLoss)) lastLoss.set(s.lastLoss);
    rate.set(s.samplesPerSecond);
    if (s.samplesPerSecondAfterWarmup > 0) rateAfterWarmup.set(s.samplesPerSecondAfterWarmup);
    if (Number.isFinite(s.streamingAuc)) streamingAuc.set(s.streamingAuc);
    // The latest evaluation: during training (--eval-every-steps) as well as the final one.
    const latest = s.evaluations?.at(-1) ?? s.eval;
    if (latest) {
      auc.set(latest.auc);
      logloss.set(latest.logloss);
    }
    for (const gauge of Object.values(perTask)) gauge.reset();
    const set = (gauge: Gauge<string>, task: string, v: number) => Number.isFinite(v) && gauge.set({ task }, v);
    for (const t of s.tasks ?? []) {
      set(perTask.loss, t.name, t.smoothedLoss);
      set(perTask.lastLoss, t.name, t.lastLoss);
      set(perTask.streamingAuc, t.name, t.streamingAuc);
      const e = latest?.tasks.find((x) => x.name === t.name) ?? t.eval;
      if (!e) continue;
      set(perTask.auc, t.name, e.auc);
      set(perTask.logloss, t.name, e.logloss);
      if (e.hasGauc) set(perTask.gauc, t.name, e.gauc);
      set(perTask.rmse, t.name, e.rmse);
      set(perTask.calibration, t.name, e.calibration);
    }
    live.set(s.liveTrainers ?? 0);
    maxStale.set(Number(s.maxStalenessSeen ?? 0));
    samples.update(Number(s.samples));
    stale.update(Number(s.staleGradients ?? 0));
    dup.update(Number(s.duplicateBatches ?? 0));
    reassigned.update(Number(s.reassignedBatches ?? 0));
    dead.update(Number(s.deadTrainers ?? 0));
    skipped.update(Number(s.source?.skippedRecords ?? 0));
    stretches.update(Number(s.source?.skippedStretches ?? 0));
    if (s.embeddings) {
      bytes.set(Number(s.embeddings.bytes));

      filtered.update(Number(s.embeddings.filteredLookups));
      for (const p of job.model?.store.stats().perSlot ?? []) {
        slotBytes.set({ slot: String(p.slot) }, p.bytes);
        admitted.update(p.admitted, { slot: String(p.slot) });
      }
      for (const t of s.embeddings.slots) {
        rows.set({ slot: String(t.slot) }, Number(t.rows));
        evicted.update(Number(t.evictedRows), { slot: String(t.slot) });
      }
    }
    const sync = job.syncState();
    if (sync) {
      if (sync.lastAckAt > 0) syncLag.set((Date.now() - sync.lastAckAt) / 1000);
      syncRows.update(sync.rowsSent);
    }
  };
}
