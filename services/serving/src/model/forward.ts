import type { DlrmSpec } from "@pangea/model";
import { nativeBlas, type NativeBlas } from "@pangea/blas";

/**
 * The native BLAS when built (one thread: serving's products are small and
 * concurrent requests already use the cores), else null and the JS kernel.
 */
const blas: NativeBlas | null = (() => {
  const b = nativeBlas().blas;
  b?.setThreads(1);
  return b;
})();

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
 * batch (see layer).
 */
export class DlrmForward {
  private readonly bottom: Layer[] = [];
  private readonly top: Layer[] = [];
  /** Scratch reused across calls (predict runs to completion, one at a time), so serving makes little garbage. */
  private scratch = new Map<string, Float32Array>();

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
    let x: Float32Array = dense;
    this.bottom.forEach((l, i) => {
      x = layer(x, B, l, true, this.buffer(`b${i}`, B * l.outW));
    });
    // h = [bottom output, dots of the pairs of z = (bottom output, pooled slot embeddings)].
    const hw = this.top[0]!.inW;
    const h = this.buffer("h", B * hw);
    for (let e = 0; e < B; e++) for (let k = 0; k < D; k++) h[e * hw + k] = x[e * D + k]!;
    // The pairs kernel writes each example's dots straight into its row of h, after x.
    if (blas) blas.dotInteractionSplit(x, 0, pooled, 0, B, S, D, h, D, hw);
    else {
      // Straight from x and pooled, no per-example copies or views: this loop is most of a request's CPU.
      for (let e = 0; e < B; e++) {
        const xb = e * D;
        const pb = e * S * D;
        let p = e * hw + D;
        for (let j = 0; j < S; j++) {
          const jb = pb + j * D;
          let dot = 0;
          for (let k = 0; k < D; k++) dot += x[xb + k]! * pooled[jb + k]!;
          h[p++] = dot;
        }
        for (let i = 0; i < S; i++) {
          const ib = pb + i * D;
          for (let j = i + 1; j < S; j++) {
            const jb = pb + j * D;
            let dot = 0;
            for (let k = 0; k < D; k++) dot += pooled[ib + k]! * pooled[jb + k]!;
            h[p++] = dot;
          }
        }
      }
    }
    let y: Float32Array = h;
    this.top.forEach((l, idx) => {
      y = layer(y, B, l, idx < this.top.length - 1, this.buffer(`t${idx}`, B * l.outW));
    });
    for (let e = 0; e < B; e++) out[e] = 1 / (1 + Math.exp(-y[e]!));
  }

  /** A scratch array of at least n values (a view of exactly n). */
  private buffer(name: string, n: number): Float32Array {
    let b = this.scratch.get(name);
    if (!b || b.length < n) this.scratch.set(name, (b = new Float32Array(Math.max(n, (b?.length ?? 0) * 2))));
    return b.subarray(0, n);
  }
}

/**
 * Y[B, out] = X[B, in] W[in, out] + b, optionally ReLU: one native sgemm
 * when @pangea/blas is built. The JS fallback is register-blocked:
 * four examples by four outputs are summed in locals over the whole input,
 * so each step loads 4 inputs and 4 weights for 16 multiply-adds.
 */
function layer(x: Float32Array, B: number, l: Layer, relu: boolean, y: Float32Array): Float32Array {
  const { w, b, inW, outW } = l;
  if (blas) {
    blas.gemm(false, false, B, outW, inW, x, 0, w, 0, y, 0, 1, 0, 0, 0, b, 0, 0, relu);
    return y;
  }
  const o4 = outW - (outW % 4);
  const e4 = B - (B % 4);
  for (let e = 0; e < e4; e += 4) {
    const x0 = e * inW, x1 = x0 + inW, x2 = x1 + inW, x3 = x2 + inW;
    for (let o = 0; o < o4; o += 4) {
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let i = 0, wi = o; i < inW; i++, wi += outW) {
        const w0 = w[wi]!, w1 = w[wi + 1]!, w2 = w[wi + 2]!, w3 = w[wi + 3]!;
        const a0 = x[x0 + i]!, a1 = x[x1 + i]!, a2 = x[x2 + i]!, a3 = x[x3 + i]!;
        s00 += a0 * w0; s01 += a0 * w1; s02 += a0 * w2; s03 += a0 * w3;
        s10 += a1 * w0; s11 += a1 * w1; s12 += a1 * w2; s13 += a1 * w3;
        s20 += a2 * w0; s21 += a2 * w1; s22 += a2 * w2; s23 += a2 * w3;
        s30 += a3 * w0; s31 += a3 * w1; s32 += a3 * w2; s33 += a3 * w3;
      }
      const y0 = e * outW + o, y1 = y0 + outW, y2 = y1 + outW, y3 = y2 + outW;
      const b0 = b[o]!, b1 = b[o + 1]!, b2 = b[o + 2]!, b3 = b[o + 3]!;
      y[y0] = s00 + b0; y[y0 + 1] = s01 + b1; y[y0 + 2] = s02 + b2; y[y0 + 3] = s03 + b3;
      y[y1] = s10 + b0; y[y1 + 1] = s11 + b1; y[y1 + 2] = s12 + b2; y[y1 + 3] = s13 + b3;
      y[y2] = s20 + b0; y[y2 + 1] = s21 + b1; y[y2 + 2] = s22 + b2; y[y2 + 3] = s23 + b3;
      y[y3] = s30 + b0; y[y3 + 1] = s31 + b1; y[y3 + 2] = s32 + b2; y[y3 + 3] = s33 + b3;
    }
  }
  // What the blocks leave: the last outputs of every example, and the last examples.
  for (let e = 0; e < B; e++) {
    const from = e < e4 ? o4 : 0;
    const xe = e * inW;
    for (let o = from; o < outW; o++) {
      let sum = b[o]!;
      for (let i = 0, wi = o; i < inW; i++, wi += outW) sum += x[xe + i]! * w[wi]!;
      y[e * outW + o] = sum;
    }
  }
  if (relu) for (let k = 0; k < y.length; k++) if (y[k]! < 0) y[k] = 0;
  return y;
}
