import { describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { adagradUpdate, adamUpdate } from "../src/optim/optimizers.js";

/** Straightforward float64 implementations of the published formulas, for comparison. */
function referenceAdagrad(w: number[], g: number[][], lr: number, init: number): number[] {
  const acc = w.map(() => init);
  const x = [...w];
  for (const grad of g) {
    for (let i = 0; i < x.length; i++) {
      acc[i]! += grad[i]! ** 2;
      x[i]! -= (lr * grad[i]!) / (Math.sqrt(acc[i]!) + 1e-8);
    }
  }
  return x;
}

function referenceAdam(w: number[], g: number[][], lr: number): number[] {
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  const x = [...w];
  g.forEach((grad, t) => {
    for (let i = 0; i < x.length; i++) {
      m[i] = 0.9 * m[i]! + 0.1 * grad[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * grad[i]! ** 2;
      const mh = m[i]! / (1 - 0.9 ** (t + 1));
      const vh = v[i]! / (1 - 0.999 ** (t + 1));
      x[i]! -= (lr * mh) / (Math.sqrt(vh) + 1e-8);
    }
  });
  return x;
}

const rng = new Rng(9);
const start = Array.from({ length: 16 }, () => rng.normal());
const grads = Array.from({ length: 200 }, () => Array.from({ length: 16 }, () => rng.normal() * 0.1));

describe("optimizers match their formulas over many steps", () => {
  it("adagrad", () => {
    const w = Float32Array.from(start);
    const acc = new Float32Array(16).fill(0.1);
    for (const g of grads) adagradUpdate(w, acc, 0, Float32Array.from(g), 0, 16, 0.05);
    const ref = referenceAdagrad(start, grads, 0.05, 0.1);
    ref.forEach((r, i) => expect(w[i]).toBeCloseTo(r, 4));
  });

  it("adagrad updates only the addressed slice", () => {
    const w = new Float32Array(8).fill(1);
    const acc = new Float32Array(8).fill(0.1);
    adagradUpdate(w, acc, 4, new Float32Array([9, 9, 1, 1]), 2, 2, 0.1);
    expect(Array.from(w.subarray(0, 4))).toEqual([1, 1, 1, 1]);
    expect(w[4]).toBeLessThan(1);
  });

  it("adam", () => {
    const w = Float32Array.from(start);
    const state = { m: new Float32Array(16), v: new Float32Array(16), t: 0 };
    grads.forEach((g, t) => adamUpdate(w, state, Float32Array.from(g), 0.01, t + 1));
    const ref = referenceAdam(start, grads, 0.01);
    ref.forEach((r, i) => expect(w[i]).toBeCloseTo(r, 4));
  });
});
