import type { DlrmSpec } from "@pangea/model";

/**
 * The DLRM forward pass in plain JavaScript, the same function the trainer
 * computes with TensorFlow.js: bottom MLP (ReLU) over the dense features, the
 * pairwise dot products of [bottom output, one pooled embedding per slot] in
 * upper-triangle order, concatenated with the bottom output, top MLP (ReLU
 * except the last, width-1 logit layer), sigmoid. Small enough per example
 * that serving needs no tensor library.
 */
export class DlrmForward {
  private readonly bottom: { w: Float32Array; b: Float32Array; inW: number; outW: number }[] = [];
  private readonly top: { w: Float32Array; b: Float32Array; inW: number; outW: number }[] = [];

  constructor(readonly spec: DlrmSpec, params: readonly Float32Array[]) {
    let k = 0;
    let width = spec.numDense;
    for (const out of spec.bottomMlp) {
      this.bottom.push({ w: params[k++]!, b: params[k++]!, inW: width, outW: out });
      width = out;
    }
    const n = spec.numSlots + 1;
    width = spec.embeddingDim + (n * (n - 1)) / 2;
    for (const out of [...spec.topMlp, 1]) {
      this.top.push({ w: params[k++]!, b: params[k++]!, inW: width, outW: out });
      width = out;
    }
  }

  /**
   * Click probabilities of B examples: dense [B, numDense] and pooled
   * embeddings [B, numSlots, dim] (a slot without a row reads as zeros).
   */
  predict(B: number, dense: Float32Array, pooled: Float32Array, out: Float32Array): void {
    const { numDense, numSlots: S, embeddingDim: D } = this.spec;
    const n = S + 1;
    const maxWidth = Math.max(numDense, ...this.spec.bottomMlp, ...this.spec.topMlp, this.top[0]!.inW);
    let a = new Float32Array(maxWidth);
    let b = new Float32Array(maxWidth);
    const z = new Float32Array(n * D);
    for (let e = 0; e < B; e++) {
      a.set(dense.subarray(e * numDense, (e + 1) * numDense));
      for (const l of this.bottom) {
        layer(a, l.w, l.b, l.inW, l.outW, b, true);
        [a, b] = [b, a];
      }
      // z = [bottom output, pooled slot embeddings]; h = [bottom output, dots of z's pairs].
      z.set(a.subarray(0, D), 0);
      z.set(pooled.subarray(e * S * D, (e + 1) * S * D), D);
      const h = b;
      h.set(a.subarray(0, D), 0);
      let p = D;
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < D; k++) dot += z[i * D + k]! * z[j * D + k]!;
          h[p++] = dot;
        }
      }
      [a, b] = [b, a];
      this.top.forEach((l, idx) => {
        layer(a, l.w, l.b, l.inW, l.outW, b, idx < this.top.length - 1);
        [a, b] = [b, a];
      });
      out[e] = 1 / (1 + Math.exp(-a[0]!));
    }
  }
}

/** y = x W + b (W is [in, out], row-major), optionally ReLU. */
function layer(x: Float32Array, w: Float32Array, bias: Float32Array, inW: number, outW: number, y: Float32Array, relu: boolean): void {
  for (let o = 0; o < outW; o++) y[o] = bias[o]!;
  for (let i = 0; i < inW; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    const row = i * outW;
    for (let o = 0; o < outW; o++) y[o]! += xi * w[row + o]!;
  }
  if (relu) for (let o = 0; o < outW; o++) if (y[o]! < 0) y[o] = 0;
}
