import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dlrmSpec } from "@pangea/model";
import { Checkpointer, type CheckpointSettings } from "../src/checkpoint/checkpointer.js";
import { loadShardedCheckpoint } from "../src/checkpoint/checkpoint.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job-model.js";
import { DenseStore } from "../src/params/dense-store.js";
import { recordingLog, tempDir } from "./fakes/job-fixture.js";

const spec = dlrmSpec(2, 1, 2, [2], [2]);

afterEach(() => {
  vi.useRealTimers();
});

function setup(over: Partial<CheckpointSettings>) {
  const { log, lines } = recordingLog();
  const s: CheckpointSettings = { checkpointDir: tempDir("pangea-ckpt-unit-"), jobId: "j", psShards: 1, checkpointEverySteps: 0, checkpointEverySeconds: 0, keepCheckpoints: 0, ...over };
  const dense = new DenseStore(spec, 1, 0.01);
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 2), new Map(), 1);
  store.declareSlots([0]);
  const content = (step: number) => () => ({
    spec,
    dense,
    store,
    slotIds: [0],
    progress: { mode: "sync", batchesPerStep: 1, step, finishedBatches: step, outstanding: [], denseUpdates: step, batchSize: 4, samples: 4 * step },
  });
  return { ck: new Checkpointer(s, log), s, content, lines };
}

describe("Checkpointer", () => {
  it("every N steps, and the final step once", () => {
    const { ck, s, content } = setup({ checkpointEverySteps: 2 });
    for (const step of [1, 2, 3]) ck.maybeSave(false, step, content(step));
    ck.maybeSave(true, 3, content(3));
    ck.maybeSave(true, 3, content(3));
    expect(ck.list()).toEqual([join(s.checkpointDir, "j", "step-2"), join(s.checkpointDir, "j", "step-3")]);
    expect(loadShardedCheckpoint(ck.path)[0]!.manifest.training?.step).toBe(3);
  });

  it("time-based: at the first step boundary N seconds after the last checkpoint (or the start)", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { ck, content } = setup({ checkpointEverySeconds: 10 });
    ck.startClock(Date.now());
    vi.advanceTimersByTime(9_000);
    ck.maybeSave(false, 1, content(1));
    vi.advanceTimersByTime(1_000);
    ck.maybeSave(false, 2, content(2));
    vi.advanceTimersByTime(9_999);
    ck.maybeSave(false, 3, content(3));
    vi.advanceTimersByTime(1);
    ck.maybeSave(false, 4, content(4));
    expect(ck.list().map((p) => p.split("/").at(-1))).toEqual(["step-2", "step-4"]);
  });

  it("removes what a killed writer left half-written, for steps up to the one just written, and nothing else", () => {
    const { ck, s, content, lines } = setup({ checkpointEverySteps: 2 });
    const dir = join(s.checkpointDir, "j");
    // A process killed while writing step 2, one killed at step 6 (later than what is written next), another shard's.
    for (const name of ["step-2.tmp-4242", "step-6.tmp-4243", "step-2.shard-1.tmp-4242", "notes"]) mkdirSync(join(dir, name), { recursive: true });
    ck.maybeSave(false, 2, content(2));
    expect(readdirSync(dir).sort()).toEqual(["notes", "step-2", "step-2.shard-1.tmp-4242", "step-6.tmp-4243"]);
    expect(lines.some((l) => l.msg === "removed checkpoint directories a killed process left half-written")).toBe(true);
    ck.maybeSave(false, 6, content(6));
    expect(readdirSync(dir).sort()).toEqual(["notes", "step-2", "step-2.shard-1.tmp-4242", "step-6"]);
  });

  it("keeps the newest --keep-checkpoints and forgets the pruned ones", () => {
    const { ck, content, lines } = setup({ checkpointEverySteps: 1, keepCheckpoints: 2 });
    for (const step of [1, 2, 3]) ck.maybeSave(false, step, content(step));
    expect(ck.list().map((p) => p.split("/").at(-1))).toEqual(["step-2", "step-3"]);
    expect(existsSync(ck.list()[0]!)).toBe(true);
    expect(lines.filter((l) => l.msg === "checkpoint saved").map((l) => l.fields.step)).toEqual([1, 2, 3]);
  });

  it("a checkpoint of another job (copied in) or of another step (renamed) is neither pruned nor overwritten: moved aside when its step is written", () => {
    const other = setup({ jobId: "other", checkpointEverySteps: 1 });
    other.ck.maybeSave(false, 1, other.content(1));
    other.ck.maybeSave(false, 2, other.content(2));
    const { ck, s, content } = setup({ checkpointEverySteps: 1, keepCheckpoints: 1 });
    const dir = join(s.checkpointDir, "j");
    mkdirSync(dir, { recursive: true });
    // Another job's step-1 copied in, and another job's step-2 renamed to step-3 (its manifest says step 2).
    cpSync(join(other.s.checkpointDir, "other", "step-1"), join(dir, "step-1"), { recursive: true });
    cpSync(join(other.s.checkpointDir, "other", "step-2"), join(dir, "step-3"), { recursive: true });
    for (const step of [2, 3, 4, 5]) ck.maybeSave(false, step, content(step));
    const names = readdirSync(dir).sort();
    // Only this job's own are pruned to the newest one; step-1 stays, and step-3 was moved aside when this job wrote its step 3.
    expect(names.filter((n) => !n.includes(".unreadable-"))).toEqual(["step-1", "step-5"]);
    const aside = names.filter((n) => n.startsWith("step-3.unreadable-"));
    expect(aside).toHaveLength(1);
    expect(loadShardedCheckpoint(join(dir, aside[0]!))[0]!.manifest.step).toBe(2);
    expect(loadShardedCheckpoint(join(dir, "step-1"))[0]!.manifest.jobId).toBe("other");
  });

  it("a checkpoint pruned from an earlier run (a resumed job) leaves the list of this run's checkpoints as it is", () => {
    const first = setup({ checkpointEverySteps: 1, keepCheckpoints: 2 });
    for (const step of [1, 2]) first.ck.maybeSave(false, step, first.content(step));
    const resumed = new Checkpointer(first.s, recordingLog().log);
    resumed.maybeSave(false, 3, first.content(3)); // prunes step-1, written by the first run
    expect(resumed.list().map((p) => p.split("/").at(-1))).toEqual(["step-3"]);
    resumed.maybeSave(false, 3, first.content(3)); // the same step is not written twice
    expect(resumed.list()).toHaveLength(1);
  });

  it("another shard writes its part beside shard 0's, prunes only its own, and says so", () => {
    const { s, content } = setup({});
    const { log, lines } = recordingLog();
    const shard = new Checkpointer({ ...s, psShards: 2, shardIndex: 1, checkpointEverySteps: 1, keepCheckpoints: 1 }, log);
    const rows = () => ({ ...content(1)(), dense: null, progress: undefined });
    shard.maybeSave(false, 1, rows);
    shard.maybeSave(false, 2, rows);
    expect(shard.path).toBe(join(s.checkpointDir, "j", "step-2.shard-1"));
    expect(existsSync(join(s.checkpointDir, "j", "step-1.shard-1"))).toBe(false);
    expect(lines.map((l) => [l.msg, Object.keys(l.fields)])).toEqual([["shard checkpoint saved", ["path", "rows"]], ["shard checkpoint saved", ["path", "rows"]]]);
  });

  it("a job resumed on fewer shards: shard 0 removes the retired shards' parts of the checkpoints it prunes, and nothing else", () => {
    const { ck, s, content, lines } = setup({ checkpointEverySteps: 1, keepCheckpoints: 1, psShards: 2 });
    const dir = join(s.checkpointDir, "j");
    // A 3-shard run's checkpoints of steps 1 and 2 (shard 2's parts, one half-written), one set aside as unreadable, and this run's shard 1's part.
    for (const name of ["step-1.shard-2", "step-2.shard-2", "step-2.shard-2.tmp-77", "step-1.shard-1", "step-0.unreadable-2026", "step-0.shard-2", "step-9.shard-2"]) mkdirSync(join(dir, name), { recursive: true });
    ck.maybeSave(false, 1, content(1));
    ck.maybeSave(false, 2, content(2));
    // step-1 pruned: its retired part goes; step-2's is the newest checkpoint's; the unreadable one's and a later step's stay; shard 1 prunes its own.
    expect(readdirSync(dir).sort()).toEqual(["step-0.shard-2", "step-0.unreadable-2026", "step-1.shard-1", "step-2", "step-2.shard-2", "step-2.shard-2.tmp-77", "step-9.shard-2"]);
    ck.maybeSave(false, 3, content(3));
    expect(readdirSync(dir).sort()).toEqual(["step-0.shard-2", "step-0.unreadable-2026", "step-1.shard-1", "step-3", "step-9.shard-2"]);
    expect(lines.filter((l) => l.msg.startsWith("removed the parts of shards this job no longer has (it runs on 2)")).map((l) => (l.fields.removed as string[]).map((p) => p.split("/").at(-1)).sort())).toEqual([["step-1.shard-2"], ["step-2.shard-2", "step-2.shard-2.tmp-77"]]);
  });

  // An old checkpoint that cannot be removed: made immutable (chattr +i, as root on a file system that has the attribute).
  const immutable = (dir: string) => spawnSync("chattr", ["+i", dir]).status === 0;
  it("an old checkpoint that cannot be pruned is warned of and kept; the new one stands and the job goes on", (ctx) => {
    const { ck, content, lines } = setup({ checkpointEverySteps: 1, keepCheckpoints: 1 });
    ck.maybeSave(false, 1, content(1));
    const first = ck.path;
    if (!immutable(first)) ctx.skip();
    try {
      ck.maybeSave(false, 2, content(2));
      expect(ck.path.endsWith("step-2")).toBe(true);
      expect(existsSync(first)).toBe(true);
      const warn = lines.find((l) => l.level === "warn")!;
      expect(warn.msg).toBe(`cannot remove older checkpoints beside ${ck.path} (--keep-checkpoints 1); they are kept`);
      expect(warn.fields.err).toMatch(/^E[A-Z]+: /);
    } finally {
      spawnSync("chattr", ["-i", first]);
    }
  });

  it("a failed export is logged with the command to redo it; the checkpoint stands", () => {
    const file = join(tempDir("pangea-export-unit-"), "a-file");
    writeFileSync(file, "not a directory");
    const base = join(file, "models");
    const { ck, content, lines } = setup({ exportDir: base });
    ck.maybeSave(true, 1, content(1));
    expect(existsSync(ck.path)).toBe(true);
    const err = lines.find((l) => l.level === "error")!;
    expect(err.msg.startsWith(`export to ${base} failed: `)).toBe(true);
    expect(err.msg.endsWith(`; run pangea export --checkpoint ${ck.path} --out ${base}`)).toBe(true);
  });

  it("--keep-best: a best checkpoint that was exported already (the first, while the base was empty) is not exported again", () => {
    const base = join(tempDir("pangea-export-unit-"), "models");
    const { ck, content } = setup({ exportDir: base, exportBest: true });
    ck.maybeSave(true, 2, content(2));
    const first = ck.exportCheckpoint(ck.path);
    expect(first).toBe(join(base, "1"));
    expect(ck.exportCheckpoint(ck.path)).toBe(first);
    expect(readdirSync(base)).toEqual(["1"]);
  });

  it("a restarted job exporting the checkpoint an earlier run exported (killed in its final evaluation) gets that version, not a copy", () => {
    const base = join(tempDir("pangea-export-unit-"), "models");
    const { ck, s, content } = setup({ exportDir: base });
    ck.maybeSave(true, 2, content(2));
    expect(readdirSync(base)).toEqual(["1"]);
    // The next run of the job (a new Checkpointer: nothing in memory) exports the same final checkpoint.
    const again = new Checkpointer(s, recordingLog().log);
    expect(again.exportCheckpoint(ck.path)).toBe(join(base, "1"));
    expect(readdirSync(base)).toEqual(["1"]);
    // Another checkpoint, or the same one with another feature list, is a new version.
    const list = join(tempDir("pangea-export-list-"), "list.json");
    writeFileSync(list, JSON.stringify({ slots: [{ name: "s0", slot: 0, type: "fid_v2" }], dense: [{ name: "d", size: 2 }] }));
    const withList = new Checkpointer({ ...s, exportFeatureList: list }, recordingLog().log);
    expect(withList.exportCheckpoint(ck.path)).toBe(join(base, "2"));
    expect(new Checkpointer({ ...s, exportFeatureList: list }, recordingLog().log).exportCheckpoint(ck.path)).toBe(join(base, "2"));
    // A new job of the same id writes other weights under the same path: a new version, not the old job's.
    const next = setup({ exportDir: base, checkpointDir: s.checkpointDir });
    next.content(2)().dense.values[0]![0] = 7;
    next.ck.maybeSave(true, 2, next.content(2));
    expect(next.ck.path).toBe(ck.path);
    expect(readdirSync(base).sort()).toEqual(["1", "2", "3"]);
  });
});
