import { describe, expect, it } from "vitest";
import { nativeBlas } from "@pangea/blas";
import { addGated } from "@pangea/model";
import { fmForward, fmGradient, gateGradient } from "../src/model/tf-ops.js";

const { blas } = nativeBlas();

/**
 * DeepFM's second-order term and MMoE's mixture run on the addon when it is
 * built and on the JavaScript loops otherwise: the two must give the same
 * bits, so a model trains identically on a machine with or without a C
 * compiler.
 */
describe("the architectures' kernels on the addon", () => {
  it.runIf(blas)("has the JavaScript loops' bits, forward and gradient, on values of every magnitude and sign", () => {
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    // Criteo's shape, a rest after groups of four rows, more columns than the kernel keeps on its stack, one slot.
    for (const [B, S, D] of [[2048, 26, 16], [7, 5, 3], [6, 4, 70], [9, 1, 8]] as const) {
      const x = Float32Array.from({ length: B * S * D }, (_, i) => (i % 97 === 0 ? -0 : rand() * 10 ** ((i % 11) - 5)));
      const g = Float32Array.from({ length: B }, (_, b) => rand() * 10 ** ((b % 5) - 2));
      // Rows whose column sums depend on the order of their additions (1 + 2^60 - 2^60 is 0 one way round, 1 the other),
      // and rows whose squares do (2^52 + 2^52 + 1 + 1 is 2^53 in order, 2^53 + 2 the other way round: y 1 or 0).
      if (S >= 3) for (const r of [0, 5].filter((r) => r < B)) [1, 2 ** 60, -(2 ** 60)].forEach((v, s) => (x[r * S * D + s * D] = v));
      if (S >= 4 && D >= 4) {
        for (const r of [2, 6].filter((r) => r < B)) {
          x.fill(0, r * S * D, (r + 1) * S * D);
          [2 ** 26, 2 ** 26, 1, 1].forEach((v, s) => (x[r * S * D + s * D + s] = v));
        }
      }
      const sums = new Float64Array(D);
      const [yJs, yNative] = [new Float32Array(B), new Float32Array(B)];
      const [dJs, dNative] = [new Float32Array(B * S * D), new Float32Array(B * S * D)];
      fmForward(x, B, S, D, yJs, sums);
      blas!.fmForward(x, B, S, D, yNative);
      fmGradient(x, g, B, S, D, dJs, sums);
      blas!.fmGradient(x, g, B, S, D, dNative);
      expect(Buffer.from(yNative.buffer).equals(Buffer.from(yJs.buffer))).toBe(true);
      expect(Buffer.from(dNative.buffer).equals(Buffer.from(dJs.buffer))).toBe(true);
    }
    // Outputs overlapping their input (a hostile or careless caller): each row read before its output is written, as the loops do.
    for (const [B, S, D] of [[9, 4, 4], [5, 3, 2]] as const) {
      const n = B * S * D;
      const heap = Float32Array.from({ length: n + S * D }, rand);
      // y inside x's second row, at its start, near x's start; dx (as long as x) shifted by a row, and by a few values.
      for (const [yAt, dxAt] of [[S * D + 1, S * D], [S * D, 3], [3, 1]]) {
        const [hJs, hNative] = [Float32Array.from(heap), Float32Array.from(heap)];
        fmForward(hJs.subarray(0, n), B, S, D, hJs.subarray(yAt, yAt + B), new Float64Array(D));
        blas!.fmForward(hNative.subarray(0, n), B, S, D, hNative.subarray(yAt, yAt + B));
        expect(Buffer.from(hNative.buffer).equals(Buffer.from(hJs.buffer))).toBe(true);
        const g = Float32Array.from({ length: B }, rand);
        const [gJs, gNative] = [Float32Array.from(heap), Float32Array.from(heap)];
        fmGradient(gJs.subarray(0, n), g, B, S, D, gJs.subarray(dxAt, dxAt + n), new Float64Array(D));
        blas!.fmGradient(gNative.subarray(0, n), g, B, S, D, gNative.subarray(dxAt, dxAt + n));
        expect(Buffer.from(gNative.buffer).equals(Buffer.from(gJs.buffer))).toBe(true);
      }
    }
  });

  it.runIf(blas)("MMoE's mixture and its gates' gradient have the JavaScript loops' bits", () => {
    let seed = 5;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    // The default experts' shape, a rest after groups of four rows, one expert of one column.
    for (const [B, E, n] of [[2048, 4, 32], [7, 3, 5], [9, 1, 1]] as const) {
      const g = Float32Array.from({ length: B * E }, rand);
      const xs = Array.from({ length: E }, (_, e) => Float32Array.from({ length: B * n }, (_, i) => ((i + e) % 89 === 0 ? -0 : rand() * 10 ** ((i % 9) - 4))));
      const dy = Float32Array.from({ length: B * n }, rand);
      // Rows whose dot products depend on the order of their additions (1 + 2^60 - 2^60 is 0 one way round, 1 the other).
      if (n >= 3) {
        for (const r of [0, 6].filter((r) => r < B)) {
          [1, 2 ** 60, -(2 ** 60)].forEach((v, k) => (dy[r * n + k] = v));
          for (const x of xs) x.fill(1, r * n, r * n + 3);
        }
      }
      const [yJs, yNative] = [Float32Array.from(dy), Float32Array.from(dy)];
      const [dgJs, dgNative] = [new Float32Array(B * E), new Float32Array(B * E)];
      for (let e = 0; e < E; e++) {
        addGated(yJs, xs[e]!, g, e, E, B, n);
        blas!.addGated(yNative, xs[e]!, g, e, E, B, n);
        gateGradient(dgJs, dy, xs[e]!, e, E, B, n);
        blas!.gateGradient(dgNative, dy, xs[e]!, e, E, B, n);
      }
      expect(Buffer.from(yNative.buffer).equals(Buffer.from(yJs.buffer))).toBe(true);
      expect(Buffer.from(dgNative.buffer).equals(Buffer.from(dgJs.buffer))).toBe(true);
    }
    // dg overlapping dy and x (a hostile or careless caller): each row's dot product before its value is written, as the loop does.
    const [B, E, n] = [9, 3, 4];
    const heap = Float32Array.from({ length: B * n + B * E }, rand);
    for (const [at, yAt] of [[n + 1, n + 1], [2, 2], [B * n - 3, B * E - 7]]) {
      const [hJs, hNative] = [Float32Array.from(heap), Float32Array.from(heap)];
      gateGradient(hJs.subarray(at, at + B * E), hJs.subarray(0, B * n), hJs.subarray(0, B * n), 1, E, B, n);
      blas!.gateGradient(hNative.subarray(at, at + B * E), hNative.subarray(0, B * n), hNative.subarray(0, B * n), 1, E, B, n);
      expect(Buffer.from(hNative.buffer).equals(Buffer.from(hJs.buffer))).toBe(true);
      const [aJs, aNative] = [Float32Array.from(heap), Float32Array.from(heap)];
      addGated(aJs.subarray(yAt, yAt + B * n), aJs.subarray(0, B * n), aJs.subarray(B * n), 2, E, B, n);
      blas!.addGated(aNative.subarray(yAt, yAt + B * n), aNative.subarray(0, B * n), aNative.subarray(B * n), 2, E, B, n);
      expect(Buffer.from(aNative.buffer).equals(Buffer.from(aJs.buffer))).toBe(true);
    }
  });
});
