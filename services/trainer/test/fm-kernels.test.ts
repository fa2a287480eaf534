import { describe, expect, it } from "vitest";
import { nativeBlas } from "@pangea/blas";
import { fmForward, fmGradient } from "../src/model/tf-ops.js";

const { blas } = nativeBlas();

/**
 * DeepFM's second-order term runs on the addon when it is built and on the
 * JavaScript loops otherwise: the two must give the same bits, so a model
 * trains identically on a machine with or without a C compiler.
 */
describe("DeepFM's FM term on the addon", () => {
  it.runIf(blas)("has the JavaScript loops' bits, forward and gradient, on values of every magnitude and sign", () => {
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    // Criteo's shape, a rest after groups of four rows, more columns than the kernel keeps on its stack, one slot.
    for (const [B, S, D] of [[2048, 26, 16], [7, 5, 3], [6, 4, 70], [9, 1, 8]] as const) {
      const x = Float32Array.from({ length: B * S * D }, (_, i) => (i % 97 === 0 ? -0 : rand() * 10 ** ((i % 11) - 5)));
      const g = Float32Array.from({ length: B }, (_, b) => rand() * 10 ** ((b % 5) - 2));
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
  });
});
