import { describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { nativeBlas } from "@pangea/blas";
import { adagradUpdate, adamUpdate } from "../src/optim/optimizers.js";

/** Straightforward float64 implementations of the published formulas, for comparison. */
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

/** torch.optim.Adagrad's update (lr_decay 0, initial accumulator 0, eps 1e-10), in float64. */
function referenceAdagrad(w: number[], g: number[][], lr: number): number[] {
  const acc = w.map(() => 0);
  const x = [...w];
  for (const grad of g) {
    for (let i = 0; i < x.length; i++) {
      acc[i]! += grad[i]! ** 2;
      x[i]! -= (lr * grad[i]!) / (Math.sqrt(acc[i]!) + 1e-10);
    }
  }
  return x;
}

const rng = new Rng(9);
const start = Array.from({ length: 16 }, () => rng.normal());
const grads = Array.from({ length: 200 }, () => Array.from({ length: 16 }, () => rng.normal() * 0.1));

describe("the dense optimizer matches its formula over many steps", () => {
  it("adam", () => {
    const w = Float32Array.from(start);
    const state = { m: new Float32Array(16), v: new Float32Array(16), t: 0 };
    grads.forEach((g, t) => adamUpdate(w, state, Float32Array.from(g), 0.01, t + 1));
    const ref = referenceAdam(start, grads, 0.01);
    ref.forEach((r, i) => expect(w[i]).toBeCloseTo(r, 4));
  });

  it("adagrad", () => {
    const w = Float32Array.from(start);
    const state = { m: new Float32Array(16), v: new Float32Array(16), t: 0 };
    for (const g of grads) adagradUpdate(w, state, Float32Array.from(g), 0.05);
    const ref = referenceAdagrad(start, grads, 0.05);
    ref.forEach((r, i) => expect(w[i]).toBeCloseTo(r, 4));
    // The accumulator holds the squared-gradient sums (what a checkpoint saves as dense-adam-v).
    expect(state.v[3]).toBeCloseTo(grads.reduce((a, g) => a + g[3]! ** 2, 0), 4);
  });

  it.runIf(nativeBlas().blas)("adagrad on the native addon gives the same bits as the JavaScript loop, with and without L2, and refuses mismatched lengths", () => {
    const run = (native: ReturnType<typeof nativeBlas>["blas"], l2: number) => {
      const w = Float32Array.from(start);
      const state = { m: new Float32Array(16), v: new Float32Array(16), t: 0 };
      for (const g of grads) adagradUpdate(w, state, Float32Array.from(g), 0.05, l2, 1e-10, native);
      return [w, state.v];
    };
    for (const l2 of [0, 0.3]) {
      const [wNative, vNative] = run(nativeBlas().blas, l2);
      const [wJs, vJs] = run(null, l2);
      expect(Array.from(wNative!)).toEqual(Array.from(wJs!));
      expect(Array.from(vNative!)).toEqual(Array.from(vJs!));
    }
    expect(() => nativeBlas().blas!.adagrad(new Float32Array(3), new Float32Array(2), new Float32Array(3), 0.1, 1e-10, 0)).toThrow("adagrad: w, acc and g must have the same length (3, 2, 3)");
  });
});
