import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { JobSpec__Output, JobStatus__Output } from "@pangea/schema";
import { MessageType, decodeMessage, encodeMessage } from "@pangea/schema";
import { shardOfId } from "@pangea/kit";
import { RowLayout, denseParams, modelSpecFromWire, paramSize } from "@pangea/model";
import { PARAMETER_SERVER_SERVICE_NAME, TrainerTokens, parameterServerClient, sealBatchIds, startServer, unary, type RunningServer } from "@pangea/rpc";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { BatchFeed } from "../../services/trainer/src/cluster/batch-feed.js";
import { BatchTickets } from "../../services/trainer/src/cluster/batch-tickets.js";
import { ParameterClient, type PullBatch } from "../../services/trainer/src/cluster/parameters.js";
import { waitFor } from "../support/processes.js";
import { joinAsTrainer } from "../support/hand-made-trainer.js";
import { ParameterServer } from "../../services/orchestrator/src/server/parameter-server.js";
import { defaultSlotConfig } from "../../services/orchestrator/src/job/job-model.js";
import { ShardHost } from "../../services/orchestrator/src/shard/shard-host.js";
import { recordingLog, tempDir } from "../../services/orchestrator/test/fakes/job-fixture.js";

/**
 * A registered trainer holding a batch (and its ticket) pulls made-up ids
 * from both parameter-server shards of a real plaintext cluster, as a hostile
 * retrial did (10 pulls of 200,000 made-up ids took a shard from 2,140 to
 * 2,002,140 rows). Compute seals each batch's count of ids; a pull naming
 * more ids than its batch holds, a forged count, a seal for a larger batch
 * than the job's, and rows past the batch's count are refused, so each
 * shard makes at most the batch's count of rows for it; the same pull again
 * (an honest retry) is served. The job completes.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-pull-rows-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const BATCH = 64;

/** Rows of every slot on the parameter server at `address` (TableStats). */
async function rowsAt(address: string): Promise<number> {
  const c = parameterServerClient(address);
  try {
    const bytes = await unary<Buffer, Buffer>("shard", c.tableStats.bind(c), encodeMessage(MessageType.TABLE_STATS_REQUEST, "t", (r) => r._initSlots(0)));
    return Number(decodeMessage(bytes, MessageType.TABLE_STATS).payload.rows);
  } finally {
    c.close();
  }
}

/** Made-up ids of `slot` living on shard `shard` of 2, never the same twice: `count` of them, as words. */
function madeUpIds(slot: number) {
  let lo = 10_000_000;
  return (count: number, shard: number): Uint32Array => {
    const words = new Uint32Array(2 * count);
    for (let k = 0; k < count; lo++) {
      if (shardOfId(lo, slot << 16, 2) !== shard) continue;
      words[2 * k] = lo;
      words[2 * k + 1] = (slot << 16) >>> 0;
      k++;
    }
    return words;
  };
}

describe("a trainer holding a batch pulls made-up ids", () => {
  it("makes at most its batch's count of rows on each shard; more ids than the batch holds, a forged count, a larger batch's seal and rows past the count are refused", async () => {
    const cluster = await LocalCluster.start({
      trainers: 1,
      psShards: 2,
      logDir: join(tmp, "logs"),
      orchestratorArgs: ["--trainers", "2", "--job-id", "rows-bound", "--steps", "6", "--batch-size", String(BATCH), "--checkpoint-dir", join(tmp, "ckpt"), "--heartbeat-timeout-ms", "5000"],
      computeArgs: ["--eval-records", "500"],
      trainerArgs: [],
    });
    const status = new StatusClient(cluster.orchestratorAddress);
    const workerId = "made-up-ids";
    const closers: Array<() => void> = [];
    try {
      await status.connect(10_000);
      const trainer = await joinAsTrainer(cluster.orchestratorAddress, workerId);
      closers.push(() => trainer.leave());
      const { job, token, rank } = trainer;
      const spec = modelSpecFromWire(job.model!);
      const layout = RowLayout.of(spec, job.model!.slotIds);
      const slot = job.model!.slotIds[0]!;
      const tickets = new BatchTickets();
      const shards = job.psShards.map((address, k) => new ParameterClient(k === 0 ? cluster.orchestratorAddress : address, workerId, rank, denseParams(spec), layout, false, k === 0, null, () => token, tickets));
      closers.push(...shards.map((s) => () => s.close()));
      const registration = { token, rank };
      const feed = new BatchFeed(workerId, BATCH, 10_000, registration);
      closers.push(() => feed.reset());
      /** Batch j as compute serves it for `size` records: its count of ids and compute's seal. */
      const fetch = async (f: BatchFeed, j: number): Promise<PullBatch> => {
        await f.connect(cluster.computeAddress);
        f.want([j]);
        const bytes = await f.next(j);
        f.ack();
        const { payload: b } = decodeMessage(bytes, MessageType.TRAINING_BATCH, "compute");
        return { batchIndex: j, nnz: b.featureIds.shape.get(0), idsSeal: b.idsSeal };
      };
      const zeros = denseParams(spec).map((p) => new Float32Array(paramSize(p)));
      const refusal = (p: Promise<unknown>) => p.then(() => null, (e: Error & { code?: string }) => e);
      const startRows = await Promise.all(shards.map((_, k) => rowsAt(k === 0 ? cluster.orchestratorAddress : job.psShards[k]!)));
      let attacked = false;
      const madeUp = madeUpIds(slot);
      for (;;) {
        const work = await trainer.getWork();
        if (work.done) break;
        tickets.note(work.batchIndices.map(Number), work.batchTickets);
        for (const j of work.batchIndices.map(Number)) {
          const step = Number(work.step);
          const batch = await fetch(feed, j);
          expect(batch.idsSeal).toMatch(/^[A-Za-z0-9_-]{22}$/);
          if (!attacked) {
            attacked = true;
            const n = batch.nnz;
            for (const [k, shard] of shards.entries()) {
              const where = k === 0 ? "" : ` by parameter-server shard ${k}`;
              // Ten pulls of 20,000 made-up ids: each names more ids than the batch holds.
              for (let i = 0; i < 10; i++) {
                const err = await refusal(shard.pull(step, madeUp(20_000, k), 20_000, false, false, null, batch));
                expect(err?.message).toContain(`refused${where}: it names 20000 ids, and batch ${j} holds ${n} (compute's seal)`);
                expect(err?.message).toContain("PERMISSION_DENIED");
              }
              // A count made up under the batch's seal; a seal compute gives for the batch at a larger size than the job's.
              const forged = await refusal(shard.pull(step, madeUp(2 * n, k), 2 * n, false, false, null, { ...batch, nnz: 2 * n }));
              expect(forged?.message).toContain(`refused${where}: its batch_ids_seal is not compute's seal on batch ${j} of the job's batch size ${BATCH} holding ${2 * n} ids`);
              const wide = new BatchFeed(`${workerId}-wide`, 16 * BATCH, 10_000, registration);
              const larger = await fetch(wide, j);
              wide.reset();
              expect(larger.nnz).toBeGreaterThan(n);
              const big = await refusal(shard.pull(step, madeUp(larger.nnz, k), larger.nnz, false, false, null, larger));
              expect(big?.message).toContain(`its batch_ids_seal is not compute's seal on batch ${j} of the job's batch size ${BATCH} holding ${larger.nnz} ids`);
              // As many made-up ids as the batch holds: served (rows made), and again (an honest retry makes none);
              // one more made-up id would take the batch past its count.
              const ids = madeUp(n, k);
              await shard.pull(step, ids, n, false, false, null, batch);
              await shard.pull(step, ids, n, false, false, null, batch);
              const more = await refusal(shard.pull(step, madeUp(1, k), 1, false, false, null, batch));
              expect(more?.message).toContain(`refused${where}: its 1 ids without a row would take the rows made for batch ${j} to ${n + 1}, above the ${n} ids the batch holds (compute's seal)`);
            }
            // Each shard grew by this batch's count and the honest trainer's rows (at most 6 steps of 64 records' ids),
            // far from the 200,000 made-up ids named to each.
            const rows = await Promise.all(shards.map((_, k) => rowsAt(k === 0 ? cluster.orchestratorAddress : job.psShards[k]!)));
            for (const k of [0, 1]) expect(rows[k]! - startRows[k]!).toBeLessThanOrEqual(n + 6 * BATCH * job.model!.slotIds.length);
            for (const k of [0, 1]) expect(rows[k]! - startRows[k]!).toBeGreaterThanOrEqual(n);
          }
          for (const [k, shard] of shards.entries()) {
            // Its batch pushed (zero gradients, no rows) so the job goes on: the other shards first, shard 0 last.
            if (k > 0) await shard.push(step, j, BATCH, 0.69, [], new Uint32Array(0), 0, new Float32Array(0));
          }
          await shards[0]!.push(step, j, BATCH, 0.69, zeros, new Uint32Array(0), 0, new Float32Array(0));
        }
      }
      expect(attacked).toBe(true);
      // It leaves: the final evaluation goes to the other trainer once its session is gone.
      for (const close of closers.splice(0)) close();
      const end = await waitFor<JobStatus__Output>("the job to end", async () => {
        const st = await status.get().catch(() => null);
        return st && (st.state === "JOB_STATE_COMPLETED" || st.state === "JOB_STATE_FAILED") ? st : null;
      }, 120_000);
      expect([end.state, end.error]).toEqual(["JOB_STATE_COMPLETED", ""]);
    } finally {
      for (const close of closers) close();
      status.close();
      await cluster.stop(1_000);
    }
  }, 300_000);
});

/** A parameter-server shard (index 1 of 2) serving over gRPC in this process, for a job of batch size 4. */
async function shardOf(mode: "sync" | "async", servers: RunningServer[]) {
  const { log, lines } = recordingLog();
  const host = new ShardHost({ index: 1, defaults: defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), perSlot: new Map(), seed: 1, maxEmbeddingBytes: 0, maxGradientAbs: 1e6, checkpointDir: tempDir("pangea-rows-shard-") }, log);
  const model = { numDense: 2, slotIds: [0, 1], embeddingDim: 2, bottomMlp: [2], topMlp: [2], architectureJson: "", slotDims: [] };
  const job = { jobId: "j", batchSize: 4, model, steps: 100_000, worldSize: 2, batchesPerStep: 2, mode, psShards: ["h:0", "h:1"], resumedFromStep: 0, heartbeatTimeoutMs: 5000, servingSync: [] } as unknown as JobSpec__Output;
  const server = await startServer("127.0.0.1", 0, (x) => new ParameterServer(host, "ps-shard-1", null, log).addToServer(x), [PARAMETER_SERVER_SERVICE_NAME], undefined, { security: null });
  servers.push(server);
  const layout = RowLayout.of(modelSpecFromWire(model as never), model.slotIds);
  /** A registration's client under an orchestrator's keys (each orchestrator start draws new ones), given `batches`' tickets. */
  const trainer = (tokens: TrainerTokens, batches: number[]) => {
    const token = tokens.issue(0);
    const tickets = new BatchTickets(1 << 20);
    tickets.note(batches, batches.map((j) => tokens.ticket(0, token, j)));
    return new ParameterClient(server.address, "trainer-0", 0, [], layout, false, false, null, () => token, tickets);
  };
  /** What the shard's registration with an orchestrator does (run-shard): the job forgotten, that orchestrator's keys taken (each start draws new ones), the job started. */
  const registered = () => {
    const tokens = new TrainerTokens();
    host.reset();
    host.pushKey = tokens.key;
    host.ticketKey = tokens.ticketKey;
    host.start(job);
    return tokens;
  };
  return { host, trainer, registered, lines };
}

describe("a shard's count of a batch's rows", () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.shutdown(100);
  });
  const ids = (...lo: number[]) => Uint32Array.from(lo.flatMap((x) => [x, (1 << 16) >>> 0]));
  const outcome = (p: Promise<unknown>) => p.then(() => "served", (e: Error) => e.message);

  it("starts again when its orchestrator comes back (a resume reloads the tables under the same job id): the batch replayed is served", async () => {
    const { trainer, registered, lines } = await shardOf("sync", servers);
    const life = async () => {
      const tokens = registered();
      const c = trainer(tokens, [0]);
      try {
        // Batch 0 holds 6 ids, 4 of them this shard's, all new.
        return await outcome(c.pull(0, ids(11, 12, 13, 14), 4, false, false, null, { batchIndex: 0, nnz: 6, idsSeal: sealBatchIds(tokens.key, 0, 4, 6) }));
      } finally {
        c.close();
      }
    };
    expect(await life()).toBe("served");
    // Its orchestrator lost (run-shard forgets the job), then resumed from before batch 0's rows: counted from nothing.
    expect(await life()).toBe("served");
    // A pull past the count is refused, and logged by the shard.
    const tokens = registered();
    const c = trainer(tokens, [0]);
    expect(await outcome(c.pull(0, ids(11, 12, 13, 14, 15, 16, 17), 7, false, false, null, { batchIndex: 0, nnz: 6, idsSeal: sealBatchIds(tokens.key, 0, 4, 6) }))).toContain(
      "training pull for rank 0 refused by parameter-server shard 1: it names 7 ids, and batch 0 holds 6 (compute's seal)",
    );
    c.close();
    expect(lines.some((l) => l.level === "warn" && l.msg.includes("refused by parameter-server shard 1: it names 7 ids"))).toBe(true);
  });

  it("async: is kept for every batch not yet pushed there, however many (a trainer keeping 4,097 tickets cannot have the first forgotten)", async () => {
    const { host, trainer, registered } = await shardOf("async", servers);
    const tokens = registered();
    const N = 4097;
    const c = trainer(tokens, Array.from({ length: N }, (_, j) => j));
    let lo = 1_000_000;
    const pull = (j: number) => outcome(c.pull(0, ids(lo++, lo++, lo++, lo++), 4, false, false, null, { batchIndex: j, nnz: 4, idsSeal: sealBatchIds(tokens.key, j, 4, 4) }));
    expect(await pull(0)).toBe("served");
    expect(await pull(0)).toContain("above the 4 ids the batch holds");
    for (let j = 1; j < N; j++) await pull(j);
    const rows = host.requireModel(true).store.size();
    expect(await pull(0)).toContain("above the 4 ids the batch holds");
    expect(host.requireModel(true).store.size()).toBe(rows);
    c.close();
  }, 120_000);
});
