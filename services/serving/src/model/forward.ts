import type { DlrmSpec } from "@pangea/model";

interface Layer {
  w: Float32Array;
  b: Float32Array;
  inW: number;
  outW: number;
}

/**
 * The DLRM forward pass in plain JavaScript, the same function the trainer
 * computes with TensorFlow.js: bottom MLP (ReLU) over the dense features, the
 * pairwise dot products of [bottom output, one pooled embedding per slot] in
 * upper-triangle order, concatenated with the bottom output, top MLP (ReLU
 * except the last, width-1 logit layer), sigmoid. Layers run over the whole
 * batch, four examples at a time, so each weight row is loaded once per four.
 */
export class DlrmForward {
  private readonly bottom: Layer[] = [];
  private readonly top: Layer[] = [];

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
    const { numSlots: S, embeddingDim: D } = this.spec;
    const n = S + 1;
    let x: Float32Array = dense;
    for (const l of this.bottom) x = layer(x, B, l, true);
    // h = [bottom output, dots of the pairs of z = (bottom output, pooled slot embeddings)].
    const hw = this.top[0]!.inW;
    const h = new Float32Array(B * hw);
    const z = new Float32Array(n * D);
    for (let e = 0; e < B; e++) {
      z.set(x.subarray(e * D, (e + 1) * D), 0);
      z.set(pooled.subarray(e * S * D, (e + 1) * S * D), D);
      const base = e * hw;
      h.set(x.subarray(e * D, (e + 1) * D), base);
      let p = base + D;
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < D; k++) dot += z[i * D + k]! * z[j * D + k]!;
          h[p++] = dot;
        }
      }
    }
    let y: Float32Array = h;
    this.top.forEach((l, idx) => {
      y = layer(y, B, l, idx < this.top.length - 1);
    });
    for (let e = 0; e < B; e++) out[e] = 1 / (1 + Math.exp(-y[e]!));
  }
}

/** Y[B, out] = X[B, in] W[in, out] + b, optionally ReLU; four examples share each pass over a weight row. */
function layer(x: Float32Array, B: number, l: Layer, relu: boolean): Float32Array {
  const { w, b, inW, outW } = l;
  const y = new Float32Array(B * outW);
  for (let e = 0; e < B; e++) y.set(b, e * outW);
  let e = 0;
  for (; e + 4 <= B; e += 4) {
    const x0 = e * inW, x1 = x0 + inW, x2 = x1 + inW, x3 = x2 + inW;
    const y0 = e * outW, y1 = y0 + outW, y2 = y1 + outW, y3 = y2 + outW;
    for (let i = 0; i < inW; i++) {
      const a0 = x[x0 + i]!, a1 = x[x1 + i]!, a2 = x[x2 + i]!, a3 = x[x3 + i]!;
      if (a0 === 0 && a1 === 0 && a2 === 0 && a3 === 0) continue;
      const row = i * outW;
      for (let o = 0; o < outW; o++) {
        const wv = w[row + o]!;
        y[y0 + o]! += a0 * wv;
        y[y1 + o]! += a1 * wv;
        y[y2 + o]! += a2 * wv;
        y[y3 + o]! += a3 * wv;
      }
    }
  }
  for (; e < B; e++) {
    const xe = e * inW, ye = e * outW;
    for (let i = 0; i < inW; i++) {
      const a = x[xe + i]!;
      if (a === 0) continue;
      const row = i * outW;
      for (let o = 0; o < outW; o++) y[ye + o]! += a * w[row + o]!;
    }
  }
  if (relu) for (let k = 0; k < y.length; k++) if (y[k]! < 0) y[k] = 0;
  return y;
}
