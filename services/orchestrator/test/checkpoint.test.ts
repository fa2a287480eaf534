import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DlrmSpec } from "@pangea/model";
import { loadCheckpoint, saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { DenseStore } from "../src/params/dense-store.js";
import { EmbeddingTable } from "../src/embeddings/embedding-table.js";
import { makeSparseOptimizer } from "../src/optim/sparse-optimizers.js";
import { OrchestratorErrors } from "../src/errors.js";

const spec: DlrmSpec = { numDense: 3, numSlots: 2, embeddingDim: 4, bottomMlp: [8, 4], topMlp: [5] };

function trained() {
  const dense = new DenseStore(spec, 5, 0.01);
  dense.apply(dense.values.map((v) => new Float32Array(v.length).fill(0.3)));
  const table = new EmbeddingTable(4, 5, makeSparseOptimizer("adam"), 0.05, 4);
  for (let i = 0; i < 100; i++) table.findOrInsert(i * 31, i % 2 ? 0x10000 : 0x20000);
  table.state[7] = 3.5;
  return { dense, table };
}

describe("checkpoints", () => {
  it("round-trip every parameter, optimizer state and row", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, table } = trained();
    const dir = saveCheckpoint(root, "job-a", 10, spec, dense, table);
    expect(dir).toBe(join(root, "job-a", "step-10"));
    expect(readdirSync(join(root, "job-a"))).toEqual(["step-10"]); // no temp directory left behind
    const ck = loadCheckpoint(dir);
    expect(ck.manifest.step).toBe(10);
    expect(ck.manifest.model).toEqual(spec);
    expect(ck.manifest.embeddingRows).toBe(100);
    ck.dense.forEach((v, i) => expect(v).toEqual(dense.values[i]));
    ck.adamV.forEach((v, i) => expect(v).toEqual(dense.adam[i]!.v));
    expect(ck.ids).toEqual(table.rowIds.subarray(0, 200));
    expect(ck.weights).toEqual(table.weights.subarray(0, 400));
    expect(ck.manifest.sparseOptimizer).toEqual({ name: "adam", stateSize: 2 * 4 + 2 });
    expect(ck.state).toEqual(table.state.subarray(0, 100 * 10));
    expect(ck.state[7]).toBe(3.5);
    const restored = new EmbeddingTable(4, 99, makeSparseOptimizer("adam"));
    for (let r = 0; r < 100; r++) {
      restored.restoreRow(ck.ids[2 * r]!, ck.ids[2 * r + 1]!, ck.weights.subarray(r * 4, r * 4 + 4), ck.state.subarray(r * 10, r * 10 + 10));
    }
    const row = restored.find(31 * 7, 0x10000);
    expect(restored.weights.subarray(row * 4, row * 4 + 4)).toEqual(table.weights.subarray(7 * 4, 7 * 4 + 4));
  });

  const corruptions: [string, (dir: string) => void, RegExp][] = [
    ["a flipped byte", (d) => {
      const p = join(d, "embedding-weights.f32");
      const b = readFileSync(p);
      b[3] ^= 0xff;
      writeFileSync(p, b);
    }, /embedding-weights\.f32 fails its SHA-256 check/],
    ["a truncated file", (d) => writeFileSync(join(d, "dense.f32"), readFileSync(join(d, "dense.f32")).subarray(0, 10)), /dense\.f32 has 10 bytes, manifest says \d+/],
    ["a missing file", (d) => rmSync(join(d, "embedding-ids.u64")), /embedding-ids\.u64 is missing/],
    ["no manifest (partial write)", (d) => rmSync(join(d, "manifest.json")), /no manifest\.json \(incomplete checkpoint\)/],
    ["a garbled manifest", (d) => writeFileSync(join(d, "manifest.json"), "{"), /manifest\.json is not valid JSON/],
  ];

  it.each(corruptions)("refuse %s with ORCH_ERR_CHECKPOINT_CORRUPT, leaving other checkpoints usable", (_what, corrupt, message) => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    const { dense, table } = trained();
    const good = saveCheckpoint(root, "job", 1, spec, dense, table);
    const bad = saveCheckpoint(root, "job", 2, spec, dense, table);
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

  it("reports an unwritable location as ORCH_ERR_CHECKPOINT_IO and leaves no temp files", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-ckpt-"));
    writeFileSync(join(root, "job"), "a file where a directory should be");
    const { dense, table } = trained();
    expect(() => saveCheckpoint(root, "job", 1, spec, dense, table)).toThrow(/cannot write checkpoint .*step-1/);
    expect(existsSync(join(root, "job", "step-1"))).toBe(false);
  });
});
