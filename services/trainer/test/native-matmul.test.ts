import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { nativeBlas } from "@pangea/blas";
import { selectBackend } from "../src/backend/select-backend.js";

/**
 * The native BLAS kernels against TensorFlow.js's own: each case runs on the
 * cpu backend (the reference) and on wasm with BatchMatMul/_FusedMatMul
 * re-registered natively, forward and gradients.
 */
let seed = 11;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;

interface Case {
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
  bias?: boolean;
  relu?: boolean;
  /** TensorFlow.js's BatchMatMul gradient does not reduce broadcast batch dimensions (on any backend): forward only. */
  forwardOnly?: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const [M, N, K] of [[1, 1, 1], [7, 5, 3], [33, 17, 65], [128, 64, 256], [3, 250, 1], [61, 1, 127]]) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        out.push({ a: ta ? [K!, M!] : [M!, K!], b: tb ? [N!, K!] : [K!, N!], ta, tb });
        out.push({ a: ta ? [K!, M!] : [M!, K!], b: tb ? [N!, K!] : [K!, N!], ta, tb, bias: true, relu: (M! + N!) % 2 === 0 });
      }
    }
  }
  // Batched (the DLRM interaction's shape), and one operand broadcast over the batch.
  out.push({ a: [9, 27, 16], b: [9, 27, 16], ta: false, tb: true });
  out.push({ a: [9, 27, 27], b: [9, 27, 16], ta: false, tb: false });
  out.push({ a: [2, 3, 5, 4], b: [4, 6], ta: false, tb: false, forwardOnly: true });
  out.push({ a: [5, 4], b: [3, 4, 7], ta: false, tb: false, forwardOnly: true });
  out.push({ a: [4, 5], b: [3, 7, 4], ta: true, tb: true, forwardOnly: true });
  return out;
}

interface Result {
  y: Float32Array;
  grads: Float32Array[];
}

function run(c: Case, values: { a: Float32Array; b: Float32Array; bias: Float32Array }): Result {
  return tf.tidy(() => {
    const a = tf.tensor(values.a, c.a);
    const b = tf.tensor(values.b, c.b);
    const bias = tf.tensor1d(values.bias);
    const f = (x: tf.Tensor, w: tf.Tensor, bi: tf.Tensor) =>
      c.bias
        ? tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, transposeA: c.ta, transposeB: c.tb, bias: bi, activation: c.relu ? "relu" : "linear" })
        : tf.matMul(x, w, c.ta, c.tb);
    const y = f(a, b, bias);
    // A weighted sum makes every output element's gradient distinct.
    const weights = tf.tensor(Float32Array.from({ length: y.size }, (_, i) => Math.sin(i)), y.shape);
    const loss = (...xs: tf.Tensor[]) => tf.sum(tf.mul(f(xs[0]!, xs[1]!, xs[2] ?? bias), weights));
    const grads = c.forwardOnly ? [] : tf.grads(loss)(c.bias ? [a, b, bias] : [a, b]);
    return { y: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);

describe("native BLAS matmul kernels for TensorFlow.js", () => {
  const { blas, reason } = nativeBlas();

  it.runIf(blas)("agree with the cpu backend on random shapes, transposes, odd sizes, batches, bias and relu, forward and gradients", async () => {
    const all = cases();
    const inputs = all.map((c) => {
      const n = (s: number[]) => s.reduce((x, y) => x * y, 1);
      const N = c.tb ? c.b.at(-2)! : c.b.at(-1)!;
      return { a: Float32Array.from({ length: n(c.a) }, rand), b: Float32Array.from({ length: n(c.b) }, rand), bias: Float32Array.from({ length: N }, rand) };
    });
    await selectBackend("cpu");
    const expected = all.map((c, i) => run(c, inputs[i]!));
    const backend = await selectBackend("wasm", 2);
    expect(backend.name).toBe("wasm+blas");
    const [, flops0] = blas!.counters();
    for (let i = 0; i < all.length; i++) {
      const got = run(all[i]!, inputs[i]!);
      const scale = 1e-4 * (1 + Math.sqrt(all[i]!.a.at(-1)! * all[i]!.a.at(-2)!));
      expect(got.y.length, JSON.stringify(all[i])).toBe(expected[i]!.y.length);
      expect(maxDiff(got.y, expected[i]!.y), `forward ${JSON.stringify(all[i])}`).toBeLessThan(scale);
      got.grads.forEach((g, k) => expect(maxDiff(g, expected[i]!.grads[k]!), `gradient ${k} of ${JSON.stringify(all[i])}`).toBeLessThan(scale));
    }
    // The products really ran natively (not through the kept wasm kernels).
    expect(blas!.counters()[1] - flops0).toBeGreaterThan(1e6);
  });

  it.runIf(!blas)("fall back to the wasm kernels, saying why, when the addon is absent", async () => {
    const backend = await selectBackend("wasm");
    expect(backend.name).toBe("wasm");
    expect(backend.detail).toContain(reason);
  });
});
