import type { Logger } from "@pangea/kit";
import type { Work__Output } from "@pangea/schema";
import type { CtrModel } from "../model/ctr-model.js";
import { DropoutMasks } from "../model/dropout-masks.js";
import { decodeBatch, toModelBatch, type DecodedBatch } from "../cluster/batches.js";
import type { BatchFeed } from "../cluster/batch-feed.js";
import type { ClusterSession } from "../cluster/session.js";
import type { ShardedParameterClient as ParameterClient } from "../cluster/sharded-parameters.js";
import type { Pulled } from "../cluster/parameters.js";
import { PulledAhead } from "../cluster/pulled-ahead.js";
import { IdDeduper } from "../features/dedup.js";
import { StreamingAuc, taskColumn, type RowLayout } from "@pangea/model";
import { TrainerErrors } from "../errors.js";
import type { Phase, TrainerMetrics } from "../monitor/trainer-metrics.js";

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

interface Prepared {
  batch: DecodedBatch;
  unique: Uint32Array;
  uniqueCount: number;
  inverse: Int32Array;
  offsets: Int32Array | null;
}

const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Batches asked for two steps ahead (trainAssigned's `later`). */
interface Later {
  step: number;
  indices: number[];
  batches: Promise<Prepared>[];
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
  const readAhead = c.mode !== "async" && c.batchesPerStep > 0;
  /** A batch read from compute, decoded, its ids deduplicated: all the step needs before pulling. */
  const prepare = async (j: number): Promise<Prepared> => {
    const bytes = await feed.next(j);
    const batch = decodeBatch(bytes, model.spec, "compute");
    if (batch.batchIndex !== j) throw TrainerErrors.create("TRAINER_ERR_BAD_BATCH", `compute sent batch ${batch.batchIndex} where batch ${j} was wanted`);
    const { unique, uniqueCount, inverse } = dedup.dedup(batch.idWords, batch.nnz);
    return { batch, unique, uniqueCount, inverse, offsets: c.layout.offsets(unique, uniqueCount) };
  };
  /**
   * Reads `indices` one after the other, after `start` (the stream delivers
   * them in the order wanted); a failure nobody awaits is not unhandled.
   */
  const readInOrder = (indices: readonly number[], start: Promise<unknown> = Promise.resolve()): Promise<Prepared>[] => {
    let previous: Promise<unknown> = start;
    return indices.map((j) => {
      const p = previous.then(() => prepare(j));
      p.catch(() => {});
      previous = p;
      return p;
    });
  };
  /**
   * The batches read ahead for the next step and, in sync/hybrid mode, the
   * first one's pull sent ahead: held by the orchestrator until the step is
   * planned, then served (those are this trainer's batches: no GetWork is
   * needed) or withdrawn (null: ask for work as usual).
   */
  let ahead: { address: string; step: number; indices: number[]; batches: Promise<Prepared>[]; pulled: PulledAhead | null } | null = null;
  /**
   * The batches of the step after `ahead`'s, asked for a step earlier still:
   * compute makes a batch when it is asked, on cores the trainers keep busy,
   * and a batch asked for only one step ahead often came after its trainer
   * had pushed, too late for its pull to go ahead (measured: the pulls came
   * 4-25 ms after the step's update).
   */
  // (Declared through `as`: an initial null would narrow it to null where the loop reads it.)
  let later = null as Later | null;
  /** The batches `step` steps on from `indices` (the plan deals each step's batches round-robin over the same trainers). */
  const stepsOn = (indices: readonly number[], step: number) => indices.map((x) => x + step * c.batchesPerStep).filter((x) => x < totalBatches);
  try {
    for (;;) {
      mark = performance.now();
      const served = ahead?.pulled ? await session.guard(ahead.pulled.answer()) : null;
      const work: Work__Output = served && ahead
        ? { done: false, evaluate: false, state: "JOB_STATE_RUNNING", error: "", step: ahead.step, batchIndices: ahead.indices, computeAddress: ahead.address }
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
      try {
        // The batches read ahead are these ones (the usual case): they are decoded and deduplicated already.
        let batches = ahead?.address === work.computeAddress && sameList(ahead.indices, indices) && feed.connectedTo(work.computeAddress) ? ahead.batches : null;
        // Served ahead: the rows of this step's first batch (checked against its ids, should it be read again).
        const early = served ? ahead?.pulled ?? null : null;
        if (!batches && ahead) {
          // Work went elsewhere (a trainer joined or left), or compute did: drop the stream with the batches read ahead.
          feed.reset();
          await Promise.allSettled([...ahead.batches, ...(later?.batches ?? [])]);
          later = null;
        }
        ahead = null;
        if (!batches) {
          // After compute was lost (here, or by a read ahead), its address may be a dead one: tried briefly.
          await session.guard(feed.connect(work.computeAddress, computeLostAt || feed.lost ? 2_000 : undefined));
          feed.want(indices);
          batches = readInOrder(indices);
        }
        for (let i = 0; i < indices.length; i++) {
          const j = indices[i]!;
          const { batch, unique, uniqueCount, inverse, offsets } = await session.guard(batches[i]!);
          lap("fetch");
          computeLostAt = 0;
          // sync/hybrid: the next step's batches are most likely these same positions one step on
          // (the plan deals each step's batches round-robin over the same trainers): ask compute
          // for them now, so they arrive and are decoded while this step computes and waits.
          if (i === indices.length - 1 && readAhead) {
            const step = Number(work.step) + 1;
            const next = stepsOn(indices, 1);
            const asked = later;
            later = null;
            const askedNext = asked && asked.step === step && sameList(asked.indices, next) ? asked.batches : null;
            if (!feed.connectedTo(work.computeAddress)) {
              // Compute went away after this step's batches came: nothing to read ahead from (the next step
              // connects again); the reads asked for are done with before anything reads from a new stream.
              if (asked) await Promise.allSettled(asked.batches);
            } else if (asked && !askedNext) {
              // Not the batches the plan comes to next (it cannot be, while the plan deals as predicted). They stay
              // the stream's next ones: the next step, finding its batches are not these, starts the stream again
              // once this step's batch has been acknowledged.
              ahead = { address: work.computeAddress, step: asked.step, indices: asked.indices, batches: asked.batches, pulled: null };
            } else if (next.length) {
              let nextBatches = askedNext;
              if (!nextBatches) {
                feed.want(next);
                nextBatches = readInOrder(next);
              }
              const pulled = c.pullAhead && params.pullsAhead ? new PulledAhead(params, step, { batches: next, workingOn: indices }, nextBatches[0]!) : null;
              ahead = { address: work.computeAddress, step, indices: next, batches: nextBatches, pulled };
              const after = stepsOn(indices, 2);
              if (after.length) {
                feed.want(after);
                later = { step: step + 1, indices: after, batches: readInOrder(after, nextBatches.at(-1)) };
              }
              // The pull goes out before this step computes (a call is written once the event loop turns), so the
              // orchestrator holds it when the step's update is made, instead of waiting for it afterwards.
              if (pulled) await new Promise((resolve) => setImmediate(resolve));
            }
          }
          let pulled: Pulled;
          if (i === 0 && served && early?.pulledFor(unique, uniqueCount)) {
            pulled = served;
            m?.phase("pull", servedPullMs / 1000);
          } else {
            pulled = await session.guard(params.pull(Number(work.step), unique, uniqueCount, true, false, offsets));
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
        ahead?.pulled?.abandon();
        ahead = null;
        later = null;
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
    ahead?.pulled?.abandon();
  }
  stats.seconds = (performance.now() - started) / 1000;
  return stats;
}
