import { describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { SPARSE_OPTIMIZERS, makeSparseOptimizer, type SparseOptimizerName } from "../src/optim/sparse-optimizers.js";

/**
 * Each embedding optimizer against a straightforward float64 transcription of
 * its formula (Monolith's rules and defaults), over many steps of one row.
 */
type Ref = (w: number[], grads: number[][]) => number[];
const D = 8;

const references: Record<SparseOptimizerName, Ref> = {
  sgd: (w, gs) => {
    const x = [...w];
    for (const g of gs) for (let i = 0; i < D; i++) x[i]! -= 0.01 * g[i]!;
    return x;
  },
  adagrad: (w, gs) => {
    const x = [...w];
    const n = Array(D).fill(0.1);
    for (const g of gs) for (let i = 0; i < D; i++) {
      n[i] += g[i]! ** 2;
      x[i]! -= (0.001 * g[i]!) / Math.sqrt(n[i]);
    }
    return x;
  },
  ftrl: (w, gs) => {
    const x = [...w];
    const n = Array(D).fill(0.1);
    const z = Array(D).fill(0);
    for (const g of gs) for (let i = 0; i < D; i++) {
      const nn = n[i] + g[i]! ** 2;
      z[i] += g[i]! - ((Math.sqrt(nn) - Math.sqrt(n[i])) / 0.01) * x[i]!;
      n[i] = nn;
      x[i] = (-z[i] * 0.01) / Math.sqrt(nn); // beta, l1, l2 = 0
    }
    return x;
  },
  adam: (w, gs) => adamRef(w, gs, false),
  amsgrad: (w, gs) => adamRef(w, gs, true),
  momentum: (w, gs) => {
    const x = [...w];
    const n = Array(D).fill(0);
    for (const g of gs) for (let i = 0; i < D; i++) {
      n[i] = 0.9 * n[i] - 0.01 * g[i]!;
      x[i]! += n[i];
    }
    return x;
  },
  rmsprop: (w, gs) => {
    const x = [...w];
    const n = Array(D).fill(0);
    for (const g of gs) for (let i = 0; i < D; i++) {
      n[i] = 0.9 * n[i] + 0.1 * g[i]! ** 2;
      x[i]! -= (0.01 / (Math.sqrt(n[i]) + 1)) * g[i]!;
    }
    return x;
  },
  adadelta: (w, gs) => {
    const x = [...w];
    const acc = Array(D).fill(0);
    const upd = Array(D).fill(0);
    for (const g of gs) for (let i = 0; i < D; i++) {
      acc[i] = 0.9 * acc[i] + 0.1 * g[i]! ** 2;
      const u = (Math.sqrt(upd[i] + 0.01) / Math.sqrt(acc[i] + 0.01)) * g[i]!;
      x[i]! -= 0.01 * u;
      upd[i] = 0.9 * upd[i] + 0.1 * u * u;
    }
    return x;
  },
};

function adamRef(w: number[], gs: number[][], ams: boolean): number[] {
  const x = [...w];
  const m = Array(D).fill(0);
  const v = Array(D).fill(0);
  const vh = Array(D).fill(0);
  let p1 = 0.9;
  let p2 = 0.99;
  for (const g of gs) {
    const lr = (0.01 * Math.sqrt(1 - p2)) / (1 - p1);
    for (let i = 0; i < D; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i]!;
      v[i] = 0.99 * v[i] + 0.01 * g[i]! ** 2;
      vh[i] = Math.max(vh[i], v[i]);
      x[i]! -= (m[i] * lr) / (Math.sqrt(ams ? vh[i] : v[i]) + 0.01);
    }
    p1 *= 0.9;
    p2 *= 0.99;
  }
  return x;
}

const rng = new Rng(5);
const start = Array.from({ length: D }, () => rng.normal() * 0.1);
const grads = Array.from({ length: 300 }, () => Array.from({ length: D }, () => rng.normal() * 0.5));

describe("embedding optimizers follow their formulas with Monolith's defaults", () => {
  it.each(SPARSE_OPTIMIZERS)("%s over 300 steps", (name) => {
    const opt = makeSparseOptimizer(name);
    // Two rows side by side: only the updated one may change.
    const w = new Float32Array(2 * D);
    w.set(start, D);
    const ss = opt.stateSize(D);
    const state = new Float32Array(2 * ss);
    opt.init(state, 0, D);
    opt.init(state, ss, D);
    const g = new Float32Array(D);
    for (const step of grads) {
      g.set(step);
      opt.apply(w, D, state, ss, g, 0, D);
    }
    const ref = references[name](start, grads);
    ref.forEach((r, i) => expect(w[D + i], `${name} element ${i}`).toBeCloseTo(r, 4));
    expect(Array.from(w.subarray(0, D)).every((x) => x === 0)).toBe(true);
    expect(ref.some((r, i) => Math.abs(r - start[i]!) > 1e-4)).toBe(true); // the row did move
  });

  it("the hyper-parameters given override the defaults", () => {
    const w = Float32Array.from([1]);
    makeSparseOptimizer("sgd", { learningRate: 0.5 }).apply(w, 0, new Float32Array(0), 0, Float32Array.from([2]), 0, 1);
    expect(w[0]).toBe(0);
  });
});
