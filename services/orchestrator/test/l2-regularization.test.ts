import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { nativeBlas } from "@pangea/blas";
import { adagradUpdate, adamUpdate } from "../src/optim/optimizers.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { makeSparseOptimizer, type SparseHyper } from "../src/optim/sparse-optimizers.js";
import { readSlotConfig } from "@pangea/service-flags";
import { slotConfigOver } from "../src/embeddings/slot-config.js";
import { defaultSlotConfig } from "../src/job/job.js";
import { OrchestratorErrors } from "../src/errors.js";

/**
 * L2 on dense weights (--dense-l2) and on embedding rows (--sparse-l2, hyper
 * l2) against torch.optim's weight_decay in float64
 * (test/support/python/torch_optim.py), from the same weights and gradients.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PYTHON = "/usr/bin/python3";
const available = spawnSync(PYTHON, ["-c", "import torch"]).status === 0;

const rng = new Rng(17);
const N = 12;
const start = Array.from({ length: N }, () => rng.normal());
const denseGrads = Array.from({ length: 3 }, () => Array.from({ length: N }, () => rng.normal() * 0.1));
const DENSE = [
  { optimizer: "adam", lr: 0.01, l2: 0.5 },
  { optimizer: "adagrad", lr: 0.05, l2: 0.5 },
] as const;

/** 4 rows of width D; 3 steps, each touching some rows (row 3 never: it must not decay). */
const D = 4;
const ROWS = 4;
const touched = [[0, 1], [1, 2], [0, 2]];
const rowGrads = touched.map((rows) => rows.map((r) => [r, Array.from({ length: D }, () => rng.normal() * 0.2)] as [number, number[]]));
const SPARSE = [
  { optimizer: "sgd", lr: 0.1, l2: 0.3 },
  { optimizer: "momentum", lr: 0.1, l2: 0.3 },
  { optimizer: "adagrad", lr: 0.1, l2: 0.3 },
] as const;

let refs: { w?: number[]; rows?: number[][] }[] = [];

/** The slot-0 ids of the rows: id i is (lo i + 1, hi 0). */
function sparseRun(optimizer: (typeof SPARSE)[number]["optimizer"], lr: number, l2: number): { store: EmbeddingStore; start: number[][]; end: number[][] } {
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: optimizer, sparseLr: lr, sparseL2: l2 }, D), new Map(), 3);
  const rows = Array.from({ length: ROWS }, (_, i) => store.rowForTraining(i + 1, 0).row);
  const table = store.table(0);
  const read = () => rows.map((r) => Array.from(table.weights.subarray(r * D, (r + 1) * D)));
  const first = read();
  for (const step of rowGrads) for (const [i, g] of step) table.applyGradient(rows[i]!, Float32Array.from(g), 0);
  return { store, start: first, end: read() };
}

beforeAll(() => {
  if (!available) return;
  const cases = [
    ...DENSE.map((c) => ({ kind: "dense", ...c, w: start, grads: denseGrads })),
    ...SPARSE.map((c) => ({ kind: "sparse", ...c, rows: sparseRun(c.optimizer, c.lr, c.l2).start, steps: rowGrads })),
  ];
  const run = spawnSync(PYTHON, [join(ROOT, "test/support/python/torch_optim.py")], { input: JSON.stringify(cases), encoding: "utf8" });
  if (run.status !== 0) throw new Error(`torch_optim.py exited ${run.status}: ${run.stderr}`);
  refs = JSON.parse(run.stdout);
});

/** Within 1e-4 of the reference's largest magnitude (float32 against float64). */
function expectClose(ours: ArrayLike<number>, ref: readonly number[], what: string): void {
  const scale = Math.max(...ref.map(Math.abs));
  ref.forEach((r, i) => expect(Math.abs(ours[i]! - r) / scale, `${what}[${i}]: ${ours[i]} vs ${r}`).toBeLessThan(1e-4));
}

describe.runIf(available)("L2 against torch.optim's weight_decay", () => {
  it.each(DENSE.map((c, i) => [c.optimizer, c, i] as const))("dense %s with --dense-l2 equals torch's weight_decay over 3 steps (on the native addon and in JavaScript), and differs from no L2", (_n, c, i) => {
    const natives = c.optimizer === "adagrad" && nativeBlas().blas ? [nativeBlas().blas, null] : [null];
    for (const native of natives) {
      const run = (l2: number) => {
        const w = Float32Array.from(start);
        const state = { m: new Float32Array(N), v: new Float32Array(N) };
        denseGrads.forEach((g, t) => (c.optimizer === "adam" ? adamUpdate(w, state, Float32Array.from(g), c.lr, t + 1, l2) : adagradUpdate(w, state, Float32Array.from(g), c.lr, l2, 1e-10, native)));
        return w;
      };
      const w = run(c.l2);
      expectClose(w, refs[i]!.w!, `${c.optimizer}${native ? " (native)" : ""}`);
      // Not a vacuous check: without L2 the weights end elsewhere.
      expect(Math.max(...Array.from(run(0)).map((x, k) => Math.abs(x - w[k]!)))).toBeGreaterThan(1e-3);
    }
  });

  it.each(SPARSE.map((c, i) => [c.optimizer, c, DENSE.length + i] as const))("sparse %s with --sparse-l2 equals torch's weight_decay on the touched rows, and leaves an untouched row as it was (lazy)", (_n, c, i) => {
    const { start: first, end } = sparseRun(c.optimizer, c.lr, c.l2);
    end.forEach((row, r) => expectClose(row, refs[i]!.rows![r]!, `${c.optimizer} row ${r}`));
    expect(end[3]).toEqual(first[3]);
    const plain = sparseRun(c.optimizer, c.lr, 0).end;
    expect(Math.abs(plain[0]![0]! - end[0]![0]!)).toBeGreaterThan(1e-4);
  });
});

describe("l2 on the sparse optimizers torch has no twin of", () => {
  it.each(["adam", "amsgrad", "rmsprop", "adadelta"] as const)("%s: l2 is Monolith's weightDecay term (row gradient + λ row), and moves the row", (name) => {
    const run = (h: SparseHyper) => {
      const opt = makeSparseOptimizer(name, h);
      const w = Float32Array.from(start.slice(0, D));
      const state = new Float32Array(opt.stateSize(D));
      opt.init(state, 0, D);
      for (const step of rowGrads) opt.apply(w, 0, state, 0, Float32Array.from(step[0]![1]), 0, D);
      return Array.from(w);
    };
    expect(run({ l2: 0.3 })).toEqual(run({ weightDecay: 0.3 }));
    expect(run({ l2: 0.3 })).not.toEqual(run({}));
  });
});

describe("the l2 hyper-parameter in --slot-config", () => {
  const dir = mkdtempSync(join(tmpdir(), "pangea-l2-"));
  const file = (body: unknown) => {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(body));
    return path;
  };

  it("--sparse-l2 is every slot's default, a slot's own l2 overrides it, and a slot on another optimizer keeps it", () => {
    const base = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05, sparseL2: 0.01 }, 4);
    const { defaults, perSlot } = slotConfigOver(readSlotConfig(file({ slots: { "3": { hyper: { l2: 0.2 } }, "4": { optimizer: "sgd" } } })), base);
    expect(defaults.hyper).toEqual({ learningRate: 0.05, l2: 0.01 });
    expect(perSlot.get(3)!.hyper).toEqual({ learningRate: 0.05, l2: 0.2 });
    expect(perSlot.get(4)!.hyper).toEqual({ l2: 0.01 });
    // No --sparse-l2: the hyper carries no l2 (the optimizers' update is today's).
    expect(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.05 }, 4).hyper).toEqual({ learningRate: 0.05 });
  });

  it.each([
    [-1, "slots.3.hyper.l2: expected an L2 strength >= 0, got -1"],
    ["0.1", 'slots.3.hyper.l2: expected an L2 strength (a number >= 0), got "0.1"'],
  ])("refuses l2 %j with one line naming the field", (l2, message) => {
    const path = file({ slots: { "3": { hyper: { l2 } } } });
    let err: unknown;
    try {
      readSlotConfig(path);
    } catch (e) {
      err = e;
    }
    expect(OrchestratorErrors.is(err, "ORCH_ERR_BAD_SLOT_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(`slot config ${path}: ${message}`);
  });
});
