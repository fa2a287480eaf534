import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dlrmSpec } from "@pangea/model";
import { latestCheckpoint, loadCheckpoint, loadShardedCheckpoint, restoreStore, restoreStoreCounters, saveCheckpoint, storeCountersOf, type CheckpointData, type TrainingProgress } from "../src/checkpoint/checkpoint.js";
import { readCounters, saveCounters, zeroCounters } from "../src/job/job-counters.js";
import { TaskLosses } from "../src/job/task-status.js";
import { DenseStore } from "../src/params/dense-store.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { OrchestratorErrors } from "../src/errors.js";

const spec = dlrmSpec(3, 2, 4, [8, 4], [5]);

function trained() {
  const dense = new DenseStore(spec, 5, 0.01);
  dense.apply(dense.values.map((v) => new Float32Array(v.length).fill(0.3)));
  const store = new EmbeddingStore({ ...defaultSlotConfig({ sparseOptimizer: "adam", sparseLr: 0.01 }, 4) }, new Map([[2, { ...defaultSlotConfig({ sparseOptimizer: "ftrl", sparseLr: 0.01 }, 4), occurrenceThreshold: 3 }]]), 5);
  for (let i = 0; i < 100; i++) store.rowForTraining(i * 31, i % 2 ? 0x10000 : 0x20000);
  for (let i = 0; i < 3; i++) store.rowForTraining(99, 0x20000);
  store.table(1).state[7] = 3.5;
  return { dense, store };
}

/** What f throws (a test failure if it does not). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw");
}

describe("checkpoints", () => {
  it("round-trip every parameter, optimizer state and row", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const dir = saveCheckpoint(root, "job-a", 10, spec, dense, store);
    expect(dir).toBe(join(root, "job-a", "step-10"));
    expect(readdirSync(join(root, "job-a"))).toEqual(["step-10"]); // no temp directory left behind
    const ck = loadCheckpoint(dir);
    expect(ck.manifest.step).toBe(10);
    expect(ck.manifest.model).toEqual(spec);
    expect(ck.manifest.embeddingRows).toBe(store.size());
    expect(ck.manifest.tables.map((t) => [t.slot, t.optimizer, t.stateSize])).toEqual([[1, "adam", 10], [2, "ftrl", 8]]);
    ck.dense.forEach((v, i) => expect(v).toEqual(dense.values[i]));
    ck.momentV.forEach((v, i) => expect(v).toEqual(dense.state[i]!.v));
    // Slot 2 has threshold 3: of its 50 ids seen once none has a row; id 99 seen 4 times has one.
    expect(ck.tables[1]!.rows).toBe(1);
    expect(ck.tables[0]!.state[7]).toBe(3.5);
    const restored = new EmbeddingStore(store.configOf(1), new Map([[2, store.configOf(2)]]), 99);
    restoreStore(ck, restored);
    expect(restored.size()).toBe(store.size());
    const t1 = store.table(1);
    const r1 = restored.table(1);
    const row = r1.find(31 * 7, 0x10000);
    expect(r1.weights.subarray(row * 4, row * 4 + 4)).toEqual(t1.weights.subarray(t1.find(31 * 7, 0x10000) * 4, t1.find(31 * 7, 0x10000) * 4 + 4));
    expect(r1.state.subarray(row * 10, row * 10 + 10)).toEqual(t1.state.subarray(t1.find(31 * 7, 0x10000) * 10, t1.find(31 * 7, 0x10000) * 10 + 10));
    expect(Buffer.from(restored.filter.counters.buffer).equals(Buffer.from(store.filter.counters.buffer))).toBe(true);
    // A store whose slot 2 uses another optimizer cannot take these rows.
    const other = new EmbeddingStore(store.configOf(1), new Map(), 1);
    expect(() => restoreStore(ck, other)).toThrow(/slot 2 was saved with dim 4 and ftrl state 8; this job's slot has dim 4 and adam state 10/);
  });

  it("record the dense optimizer, whose state a resumed job must share", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { store } = trained();
    const adagrad = new DenseStore(spec, 5, 0.01, "adagrad");
    adagrad.apply(adagrad.values.map((v) => new Float32Array(v.length).fill(0.5)));
    const ck = loadCheckpoint(saveCheckpoint(root, "job-b", 1, spec, adagrad, store));
    expect(ck.manifest.denseOptimizer).toBe("adagrad");
    // Adagrad's accumulator after one step of 0.5 is 0.25 everywhere.
    expect(Array.from(ck.momentV[0]!.subarray(0, 3))).toEqual([0.25, 0.25, 0.25]);
    rmSync(root, { recursive: true, force: true });
  });

  const corruptions: [string, (dir: string) => void, RegExp][] = [
    ["a flipped byte", (d) => {
      const p = join(d, "slot-1.weights.f32");
      const b = readFileSync(p);
      b[3] ^= 0xff;
      writeFileSync(p, b);
    }, /slot-1\.weights\.f32 fails its SHA-256 check/],
    ["a truncated file", (d) => writeFileSync(join(d, "dense.f32"), readFileSync(join(d, "dense.f32")).subarray(0, 10)), /dense\.f32 has 10 bytes, manifest says \d+/],
    ["a missing file", (d) => rmSync(join(d, "slot-2.ids.u64")), /slot-2\.ids\.u64 is missing/],
    ["no manifest (partial write)", (d) => rmSync(join(d, "manifest.json")), /no manifest\.json \(incomplete checkpoint\)/],
    ["a garbled manifest", (d) => writeFileSync(join(d, "manifest.json"), "{"), /manifest\.json is not valid JSON/],
    ["a manifest without format and version", (d) => writeFileSync(join(d, "manifest.json"), "{}"), /manifest\.json has no format and version; a checkpoint's is pangea-checkpoint v\d+$/],
    ["a manifest of another format", (d) => writeFileSync(join(d, "manifest.json"), '{"format": "other", "version": 9}'), /manifest\.json has format "other" v9; a checkpoint's is pangea-checkpoint v\d+$/],
  ];

  it.each(corruptions)("refuse %s with ORCH_ERR_CHECKPOINT_CORRUPT, leaving other checkpoints usable", (_what, corrupt, message) => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const good = saveCheckpoint(root, "job", 1, spec, dense, store);
    const bad = saveCheckpoint(root, "job", 2, spec, dense, store);
    corrupt(bad);
    try {
      loadCheckpoint(bad);
      expect.unreachable();
    } catch (err) {
      expect(OrchestratorErrors.is(err, "ORCH_ERR_CHECKPOINT_CORRUPT")).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    expect(loadCheckpoint(good).manifest.step).toBe(1);
  });

  it("a checkpoint written before architectures (DLRM's widths beside the shape) loads as a dlrm model; a broken old form is corrupt, naming the field", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const dir = saveCheckpoint(root, "job-old", 7, spec, dense, store);
    // The manifest is not among the hashed files: write its model as older versions did.
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    manifest.model = { numDense: 3, numSlots: 2, embeddingDim: 4, bottomMlp: [8, 4], topMlp: [5] };
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    const ck = loadCheckpoint(dir);
    expect(ck.manifest.model).toEqual({ numDense: 3, numSlots: 2, embeddingDim: 4, architecture: { name: "dlrm", bottomMlp: [8, 4], topMlp: [5] } });
    ck.dense.forEach((v, i) => expect(v).toEqual(dense.values[i]));
    manifest.model.bottomMlp = [8, 3];
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    expect(() => loadCheckpoint(dir)).toThrow(`checkpoint ${dir}: model: dlrm's bottomMlp must end in the embedding dim 4, ends in 3`);
    rmSync(root, { recursive: true, force: true });
  });

  it("--resume passes over a checkpoint of another job, or whose manifest's step is not its directory's, for the newest that is the job's own", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    saveCheckpoint(root, "job", 150, spec, dense, store);
    // Another job's step-100, copied in as step-900; this job's step-300 renamed step-400; its step-500 made the other's.
    cpSync(saveCheckpoint(root, "other", 100, spec, dense, store), join(root, "job", "step-900"), { recursive: true });
    renameSync(saveCheckpoint(root, "job", 300, spec, dense, store), join(root, "job", "step-400"));
    cpSync(saveCheckpoint(root, "other", 500, spec, dense, store), join(root, "job", "step-500"), { recursive: true });
    // A manifest whose training progress is of another step (step 30's, saved as step-600).
    saveCheckpoint(root, "job", 600, spec, dense, store, undefined, { mode: "sync", batchesPerStep: 2, step: 30, finishedBatches: 60, outstanding: [], denseUpdates: 30, batchSize: 64, samples: 3840 });
    const { from, unreadable } = latestCheckpoint(root, "job");
    expect(from![0]!.manifest.step).toBe(150);
    expect(unreadable.map((u) => u.reason)).toEqual([
      `checkpoint ${join(root, "job", "step-900")}: its manifest says it is of job other, not job (--restore-from it to start a new job from its parameters)`,
      `checkpoint ${join(root, "job", "step-600")}: its manifest says it is of step 600, but its training progress is of step 30`,
      `checkpoint ${join(root, "job", "step-500")}: its manifest says it is of job other, not job (--restore-from it to start a new job from its parameters)`,
      `checkpoint ${join(root, "job", "step-400")}: its manifest says it is of step 300, not 400 as its directory's name says`,
    ]);
  });

  it("a path that does not exist is ORCH_ERR_CHECKPOINT_NOT_FOUND; an empty step-N directory is corrupt, another directory not a checkpoint", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const missing = join(root, "job", "step-7");
    for (const load of [loadCheckpoint, loadShardedCheckpoint]) {
      const err = thrown(() => load(missing));
      expect(OrchestratorErrors.is(err, "ORCH_ERR_CHECKPOINT_NOT_FOUND")).toBe(true);
      expect(err.message).toBe(`checkpoint ${missing} not found`);
    }
    const empty = join(root, "other", "step-7");
    mkdirSync(empty, { recursive: true });
    const err = thrown(() => loadCheckpoint(empty));
    expect(OrchestratorErrors.is(err, "ORCH_ERR_CHECKPOINT_CORRUPT")).toBe(true);
    expect(err.message).toBe(`checkpoint ${empty}: no manifest.json (incomplete checkpoint)`);
    // A save's temporary directory, a shard's part, or any directory holding a checkpoint's data: incomplete too.
    for (const part of [join(root, "other", "step-7.tmp-123"), join(root, "other", "step-7.shard-1"), join(root, "copied")]) {
      mkdirSync(part, { recursive: true });
      if (part.endsWith("copied")) writeFileSync(join(part, "dense.f32"), "");
      expect(OrchestratorErrors.is(thrown(() => loadCheckpoint(part)), "ORCH_ERR_CHECKPOINT_CORRUPT"), part).toBe(true);
    }
    // A directory of something else (a config directory given by mistake): not a checkpoint, the caller's mistake (exit 2).
    const config = join(root, "cfg");
    mkdirSync(config);
    writeFileSync(join(config, "model.json"), "{}");
    const other = thrown(() => loadCheckpoint(config));
    expect(OrchestratorErrors.is(other, "ORCH_ERR_NOT_A_CHECKPOINT")).toBe(true);
    expect(other.message).toBe(`checkpoint ${config}: no manifest.json: this is not a checkpoint (a checkpoint is a step-N directory a job writes under --checkpoint-dir/<job id>/)`);
    // A job's directory (its checkpoints are step-N inside): the newest is named.
    const job = join(root, "job");
    for (const step of [5, 40, 10]) mkdirSync(join(job, `step-${step}`), { recursive: true });
    const jobErr = thrown(() => loadCheckpoint(job));
    expect(OrchestratorErrors.is(jobErr, "ORCH_ERR_NOT_A_CHECKPOINT")).toBe(true);
    expect(jobErr.message).toBe(`checkpoint ${job}: this is a job's checkpoint directory, not a checkpoint; give one of its step-N directories, e.g. the newest, ${join(job, "step-40")}`);
  });

  it("a checkpoint's manifest.json, or another shard's part, given for the checkpoint: NOT_A_CHECKPOINT naming what to give", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const dir = saveCheckpoint(root, "job", 3, spec, dense, store, { index: 0, count: 2 });
    const part = saveCheckpoint(root, "job", 3, spec, dense, store, { index: 1, count: 2 });
    const file = thrown(() => loadShardedCheckpoint(join(dir, "manifest.json")));
    expect(OrchestratorErrors.is(file, "ORCH_ERR_NOT_A_CHECKPOINT")).toBe(true);
    expect(file.message).toBe(`checkpoint ${join(dir, "manifest.json")}: this is a file; a checkpoint is a directory (step-N: ${dir})`);
    const shard = thrown(() => loadShardedCheckpoint(part));
    expect(OrchestratorErrors.is(shard, "ORCH_ERR_NOT_A_CHECKPOINT")).toBe(true);
    expect(shard.message).toBe(`checkpoint ${part} is shard 1's part; give shard 0's directory (${dir})`);
  });

  it("a sharded checkpoint whose shard 0 exists but a sibling does not is corrupt, not not-found", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const dir = saveCheckpoint(root, "job", 3, spec, dense, store, { index: 0, count: 2 });
    try {
      loadShardedCheckpoint(dir);
      expect.unreachable();
    } catch (err) {
      expect(OrchestratorErrors.is(err, "ORCH_ERR_CHECKPOINT_CORRUPT")).toBe(true);
      expect((err as Error).message).toBe(`checkpoint ${dir} was saved by 2 shards; ${dir}.shard-1 is missing (incomplete checkpoint)`);
    }
  });

  it("a sharded checkpoint whose sibling is another shard's part (copied to its name) is corrupt, naming both", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const dir = saveCheckpoint(root, "job", 3, spec, dense, store, { index: 0, count: 2 });
    cpSync(dir, `${dir}.shard-1`, { recursive: true });
    const err = thrown(() => loadShardedCheckpoint(dir));
    expect(OrchestratorErrors.is(err, "ORCH_ERR_CHECKPOINT_CORRUPT")).toBe(true);
    expect(err.message).toBe(`checkpoint ${dir}.shard-1 holds shard 0 of 2's part, not shard 1 of 2's`);
  });

  it("reports an unwritable location as ORCH_ERR_CHECKPOINT_IO and leaves no temp files", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    writeFileSync(join(root, "job"), "a file where a directory should be");
    const { dense, store } = trained();
    expect(() => saveCheckpoint(root, "job", 1, spec, dense, store)).toThrow(/cannot write checkpoint .*step-1/);
    expect(existsSync(join(root, "job", "step-1"))).toBe(false);
  });
});

describe("checkpointed running totals", () => {
  const progress = (counters?: TrainingProgress["counters"]): TrainingProgress => ({ mode: "sync", batchesPerStep: 2, step: 30, finishedBatches: 60, outstanding: [], denseUpdates: 30, batchSize: 64, samples: 3840, ...(counters ? { counters } : {}) });
  const totals = { ...zeroCounters(), duplicateBatches: 1, reassignedBatches: 3, deadTrainers: 2, trainSeconds: 12.5, firstLoss: 0.6931, firstLossStep: 1, lastLoss: 0.52, smoothedLoss: 0.55, syncRowsSent: 400 };

  it("round-trip the job's counters and the store's, which a resumed store takes on", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    // Slot 2's threshold of 3 filtered its 50 ids seen once and id 99's first two sightings, then admitted id 99.
    expect(store.counters()).toEqual({ filtered: 52, admitted: 1, evicted: 0, rejectedGradients: 0, memoryLimitHits: 0, slots: [{ slot: 2, evicted: 0, admitted: 1 }] });
    const ck = loadCheckpoint(saveCheckpoint(root, "job", 30, spec, dense, store, undefined, progress(saveCounters(totals))));
    expect(readCounters(ck.manifest.training!.counters)).toEqual(totals);
    expect(storeCountersOf(ck)).toEqual(store.counters());
    const resumed = new EmbeddingStore(store.configOf(1), new Map([[2, store.configOf(2)]]), 5);
    restoreStoreCounters([ck], 1, 0, resumed);
    expect(resumed.stats()).toMatchObject({ filtered: 52, admitted: 1 });
    rmSync(root, { recursive: true, force: true });
  });

  it("round-trip each task's losses, so a resumed multi-task job reports them before its first step", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const losses = TaskLosses.from(undefined);
    losses.add([0.5, Number.NaN], true);
    const ck = loadCheckpoint(saveCheckpoint(root, "job", 30, spec, dense, store, undefined, { ...progress(saveCounters(totals)), taskLosses: losses.save() }));
    const back = TaskLosses.from(ck.manifest.training!.taskLosses);
    expect([back.last, back.smoothed]).toEqual([[0.5, Number.NaN], [0.5, Number.NaN]]);
    // Older checkpoints have none: not measured yet.
    expect(TaskLosses.from(undefined).last).toEqual([]);
    rmSync(root, { recursive: true, force: true });
  });

  it("a loss not measured yet is saved as null (JSON has no NaN) and read back as NaN", () => {
    const saved = saveCounters(zeroCounters());
    expect(JSON.parse(JSON.stringify(saved)).firstLoss).toBeNull();
    expect(readCounters(JSON.parse(JSON.stringify(saved)))).toEqual(zeroCounters());
  });

  it("a checkpoint written before the totals existed still loads, its totals reading as zero", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, store } = trained();
    const dir = saveCheckpoint(root, "job", 30, spec, dense, store, undefined, progress(saveCounters(totals)));
    // The manifest is not among the hashed files: drop the fields as an older version would never have written them.
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    delete manifest.storeCounters;
    delete manifest.training.counters;
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    const ck = loadCheckpoint(dir);
    expect(ck.manifest.training!.samples).toBe(3840);
    expect(readCounters(ck.manifest.training!.counters)).toEqual(zeroCounters());
    expect(storeCountersOf(ck)).toEqual({ filtered: 0, admitted: 0, evicted: 0, rejectedGradients: 0, memoryLimitHits: 0, slots: [] });
    // Partly written or garbled totals: each unusable field reads as zero, the rest are kept.
    expect(readCounters({ deadTrainers: 2, reassignedBatches: "3", duplicateBatches: -1, firstLoss: 0.7 } as never)).toEqual({ ...zeroCounters(), deadTrainers: 2, firstLoss: 0.7 });
    rmSync(root, { recursive: true, force: true });
  });

  it("resharded, shard 0 takes the sum of every shard's store totals and the others none", () => {
    const shardCk = (index: number, filtered: number, admitted: number) =>
      ({ manifest: { shard: { index, count: 2 }, storeCounters: { filtered, admitted, evicted: 0, rejectedGradients: index, memoryLimitHits: 0, slots: [{ slot: 1, evicted: 0, admitted }] } } }) as unknown as CheckpointData;
    const saved = [shardCk(0, 10, 4), shardCk(1, 7, 2)];
    const fresh = () => new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adam", sparseLr: 0.01 }, 4), new Map(), 1);
    const same = [0, 1].map((i) => {
      const st = fresh();
      restoreStoreCounters(saved, 2, i, st);
      return st.counters();
    });
    expect(same.map((c) => [c.filtered, c.admitted, c.rejectedGradients])).toEqual([[10, 4, 0], [7, 2, 1]]);
    const [zero, one, two] = [0, 1, 2].map((i) => {
      const st = fresh();
      restoreStoreCounters(saved, 3, i, st);
      return st.counters();
    });
    expect(zero).toEqual({ filtered: 17, admitted: 6, evicted: 0, rejectedGradients: 1, memoryLimitHits: 0, slots: [{ slot: 1, evicted: 0, admitted: 6 }] });
    expect([one!.filtered, two!.filtered]).toEqual([0, 0]);
  });
});

describe("shard of an id", () => {
  it("property: equals the 64-bit id modulo the shard count", async () => {
    const fc = (await import("fast-check")).default;
    const { shardOfId } = await import("@pangea/kit");
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 64 }), (lo, hi, n) => {
        const l = lo >>> 0;
        const h = hi >>> 0;
        expect(shardOfId(l, h, n)).toBe(Number(((BigInt(h) << 32n) | BigInt(l)) % BigInt(n)));
      }),
    );
  });
});
