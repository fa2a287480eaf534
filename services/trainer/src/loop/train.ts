import type { Logger } from "@pangea/kit";
import type { Work__Output } from "@pangea/schema";
import type { CtrModel } from "../model/ctr-model.js";
import { DropoutMasks } from "../model/dropout-masks.js";
import { decodeBatch, toModelBatch } from "../cluster/batches.js";
import type { BatchFeed } from "../cluster/batch-feed.js";
import type { ClusterSession } from "../cluster/session.js";
import type { ShardedParameterClient as ParameterClient } from "../cluster/sharded-parameters.js";
import type { Pulled } from "../cluster/parameters.js";
import { IdDeduper } from "../features/dedup.js";
import { StreamingAuc, taskColumn, type RowLayout } from "@pangea/model";
import { TrainerErrors } from "../errors.js";
import type { Phase, TrainerMetrics } from "../monitor/trainer-metrics.js";
import { ReadAhead, type Prepared } from "./read-ahead.js";

export interface TrainStats {
  batches: number;
  samples: number;
  seconds: number;
  lastLoss: number;
  stale: number;
  duplicates: number;
  /** How training ended for this trainer: it evaluates next, or it is done. */
  evaluate: boolean;
  /** Where compute is now (it may have moved since the job started). */
  computeAddress: string;
}

export interface TrainContext {
  model: CtrModel;
  /** Where each pulled row sits when slots' rows differ in width. */
  layout: RowLayout;
  session: ClusterSession;
  feed: BatchFeed;
  params: ParameterClient;
  mode: string;
  steps: number;
  log: Logger;
  logEvery: number;
  /** The job's seed: with a batch's index, it seeds the batch's dropout masks. */
  seed: number;
  /** Global batches per step (the job spec's batches_per_step): with `steps`, the job's last batch index. */
  batchesPerStep: number;
  /** sync/hybrid: send the next step's first pull ahead, held by the orchestrator until the step is planned. */
  pullAhead: boolean;
  /** How long compute may stay unreachable before the trainer gives up. */
  computeGraceMs: number;
  metrics?: TrainerMetrics;
  /** Scores the held-out split with the parameters of `step` and reports it (an evaluation during training). */
  evaluate: (step: number, computeAddress: string) => Promise<void>;
}

/**
 * Trains whatever the orchestrator hands out: for each batch index, fetch the
 * batch from compute, pull the parameters its ids need, compute gradients and
 * push them. Asking for work is the step barrier in sync and hybrid modes
 * (the orchestrator answers once the step is applied). Work may also be an
 * evaluation during training (--eval-every-steps): score the held-out split,
 * report, and ask again.
 */
export async function trainAssigned(c: TrainContext): Promise<TrainStats> {
  const { model, session, feed, params, log } = c;
  const dedup = new IdDeduper();
  const tasks = model.tasks;
  const T = tasks.length;
  // One window per binary task; a regression task has no AUC.
  const streaming = tasks.map((t) => (t.loss === "bce" ? new StreamingAuc() : null));
  const aucs = new Float32Array(T).fill(Number.NaN);
  const started = performance.now();
  const stats: TrainStats = { batches: 0, samples: 0, seconds: 0, lastLoss: Number.NaN, stale: 0, duplicates: 0, evaluate: false, computeAddress: "" };
  let computeLostAt = 0;
  let lastLogged = 0;
  const m = c.metrics;
  let mark = performance.now();
  // Seconds since the last mark, attributed to a phase.
  const lap = (phase: Phase) => {
    const now = performance.now();
    m?.phase(phase, (now - mark) / 1000);
    mark = now;
  };
  const totalBatches = c.steps * c.batchesPerStep;
  // Reading ahead needs a plan that says which batches come next: not async's queue.
  const readsAhead = c.mode !== "async" && c.batchesPerStep > 0;
  /** A batch read from compute, decoded, its ids deduplicated (see Prepared). */
  const prepare = async (j: number): Promise<Prepared> => {
    const bytes = await feed.next(j);
    // A batch read ahead mostly arrives while a step computes: its decoding waits one turn of the event loop, so the
    // step's push, started just before, is written to the socket first (the push is on the step's critical path;
    // measured: compute's end to the push's arrival at the orchestrator, median 5.5 -> 4.0-4.3 ms).
    await new Promise((r) => setImmediate(r));
    const batch = decodeBatch(bytes, model.spec, "compute");
    if (batch.batchIndex !== j) throw TrainerErrors.create("TRAINER_ERR_BAD_BATCH", `compute sent batch ${batch.batchIndex} where batch ${j} was wanted`);
    // Compute serves while it registers, and seals a batch's count of ids only once the orchestrator gave it the key:
    // the parameter servers refuse a pull without the seal, so the batch is asked for again, as from a compute gone.
    if (!batch.idsSeal) throw TrainerErrors.create("TRAINER_ERR_LOST_PEER", `compute sent batch ${j} without its seal on the batch's ids: it has not registered with the orchestrator yet`);
    const { unique, uniqueCount, inverse } = dedup.dedup(batch.idWords, batch.nnz);
    return { batch, unique, uniqueCount, inverse, offsets: c.layout.offsets(unique, uniqueCount) };
  };
  const readAhead = new ReadAhead(feed, params, prepare, c.batchesPerStep, totalBatches, c.pullAhead);
  try {
    for (;;) {
      mark = performance.now();
      const pending = readAhead.pending;
      const served = pending?.pulled ? await session.guard(pending.pulled.answer()) : null;
      const work: Work__Output = served && pending
        ? { done: false, evaluate: false, state: "JOB_STATE_RUNNING", error: "", step: pending.step, batchIndices: [...pending.indices], batchTickets: [], computeAddress: pending.address }
        : await session.getWork();
      // Of the time waited for a pull sent ahead, the part it was not held for is the pull's (recorded with its batch below).
      const servedPullMs = served ? Math.min(performance.now() - mark, served.aheadMs ?? 0) : 0;
      mark += servedPullMs;
      lap("wait");
      if (work.done) {
        if (work.state === "JOB_STATE_FAILED") throw TrainerErrors.create("TRAINER_ERR_JOB_FAILED", `the orchestrator ended the job: ${work.error}`);
        stats.evaluate = work.evaluate;
        stats.computeAddress = work.computeAddress;
        break;
      }
      if (work.evaluate) {
        await c.evaluate(Number(work.step), work.computeAddress);
        // Training is paused for it: to the phases of training this is waiting.
        lap("wait");
        continue;
      }
      const indices = work.batchIndices.map(Number);
      if (!indices.length) continue;
      // A served pull sent ahead comes with no tickets: it is sent to one shard only, shard 0, which needs none.
      params.tickets.note(indices, work.batchTickets);
      try {
        // Served ahead: the rows of this step's first batch (checked against its ids, should it be read again).
        const early = served ? pending?.pulled ?? null : null;
        // The batches read ahead are these ones (the usual case): they are decoded and deduplicated already.
        let batches = await readAhead.take(work.computeAddress, indices);
        if (!batches) {
          // After compute was lost (here, or by a read ahead), its address may be a dead one: tried briefly.
          await session.guard(feed.connect(work.computeAddress, computeLostAt || feed.lost ? 2_000 : undefined));
          feed.want(indices);
          batches = readAhead.read(indices);
        }
        for (let i = 0; i < indices.length; i++) {
          const j = indices[i]!;
          const { batch, unique, uniqueCount, inverse, offsets } = await session.guard(batches[i]!);
          lap("fetch");
          computeLostAt = 0;
          // sync/hybrid: once this step's batches are in, the next steps' are asked for and the next pull sent ahead.
          if (i === indices.length - 1 && readsAhead) await readAhead.readOn(Number(work.step), work.computeAddress, indices);
          let pulled: Pulled;
          if (i === 0 && served && early?.pulledFor(unique, uniqueCount)) {
            pulled = served;
            m?.phase("pull", servedPullMs / 1000);
          } else {
            pulled = await session.guard(params.pull(Number(work.step), unique, uniqueCount, true, false, offsets, batch));
            lap("pull");
          }
          const out = model.trainStep(pulled.dense!, pulled.rows, uniqueCount, { ...toModelBatch(batch, inverse), rowOffsets: offsets }, new DropoutMasks(c.seed, j));
          lap("compute");
          streaming.forEach((s, t) => s?.add(taskColumn(out.predictions, T, t), taskColumn(batch.labels, T, t)));
          // Sorting a window costs a few milliseconds: refresh the AUCs every 10 batches.
          if (stats.batches % 10 === 0) {
            streaming.forEach((s, t) => (aucs[t] = s ? s.auc() : Number.NaN));
            m?.streamingAuc(tasks, aucs);
          }
          if (!Number.isFinite(out.loss)) throw TrainerErrors.create("TRAINER_ERR_NON_FINITE", `loss is ${out.loss} on batch ${j}`);
          // One task: the scalars say it all, and the message keeps its single-task bytes.
          const perTask = T > 1 ? { losses: out.taskLosses, streamingAuc: aucs } : null;
          // The version pulled is what async staleness is measured from; in sync mode it is the step.
          const ack = await session.guard(params.push(pulled.step, j, batch.size, out.loss, out.denseGrads, unique, uniqueCount, out.rowGrads, c.mode === "async", aucs[0]!, offsets, perTask));
          lap("push");
          m?.batch(batch.size, out.loss, ack.stale, tasks, out.taskLosses);
          feed.ack();
          stats.batches++;
          stats.samples += batch.size;
          stats.lastLoss = out.loss;
          if (ack.stale) stats.stale++;
          if (ack.duplicate) stats.duplicates++;
        }
      } catch (err) {
        if (!TrainerErrors.is(err, "TRAINER_ERR_LOST_PEER") || session.failure) throw err;
        // Compute is gone (or restarting): the same batches are still ours; ask again after a pause.
        const now = Date.now();
        if (!computeLostAt) computeLostAt = now;
        if (now - computeLostAt > c.computeGraceMs) throw err;
        log.warn({ err: (err as Error).message }, "lost compute; retrying the same batches");
        feed.reset();
        // A pull sent ahead for the next step must not be served while this step is tried again.
        readAhead.drop();
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      const step = Number(work.step);
      if (step - lastLogged >= c.logEvery) {
        lastLogged = step;
        const seconds = (performance.now() - started) / 1000;
        log.info({ step, steps: c.steps, batches: stats.batches, loss: stats.lastLoss, samplesPerSec: Math.round(stats.samples / seconds) }, "training");
      }
    }
  } finally {
    // Leaving with a pull still held (the job ended, this trainer failed or must register again): nobody will use its rows.
    readAhead.drop();
  }
  stats.seconds = (performance.now() - started) / 1000;
  return stats;
}
