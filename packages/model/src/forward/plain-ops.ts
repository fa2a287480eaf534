import { nativeBlas, type NativeBlas } from "@pangea/blas";
import type { LinearLayer, Ops } from "../architectures/ops.js";

/** A row-major [rows, cols] matrix over a Float32Array. */
export interface Mat {
  data: Float32Array;
  rows: number;
  cols: number;
}

/**
 * Ops on plain arrays, forward only: what serving computes a model with,
 * without TensorFlow.js. Products use the native BLAS when it is built,
 * else a register-blocked JS kernel. Each op writes into scratch kept
 * across calls (slot k for the k-th op of a pass, which has the same shape
 * every pass of the same batch size), so a request makes little garbage;
 * begin() starts a pass, and a pass's results are valid until the next.
 */
export class PlainOps implements Ops<Mat> {
  private readonly blas: NativeBlas | null;
  private readonly gated: typeof addGated;
  private scratch: Float32Array[] = [];
  private next = 0;

  constructor(blas: NativeBlas | null = defaultBlas()) {
    this.blas = blas;
    this.gated = addGatedOn(blas);
  }

  begin(): void {
    this.next = 0;
  }

  private out(rows: number, cols: number): Mat {
    const n = rows * cols;
    let b = this.scratch[this.next];
    if (!b || b.length < n) this.scratch[this.next] = b = new Float32Array(Math.max(n, (b?.length ?? 0) * 2));
    this.next++;
    return { data: b.subarray(0, n), rows, cols };
  }

  linear(x: Mat, w: Mat, b: Mat | null, relu: boolean): Mat {
    const y = this.out(x.rows, w.cols);
    if (this.blas) this.blas.gemm(false, false, x.rows, w.cols, x.cols, x.data, 0, w.data, 0, y.data, 0, 1, 0, 0, 0, b ? b.data : null, 0, 0, relu);
    else matmulBias(x.data, x.rows, x.cols, w.data, w.cols, b?.data ?? null, relu, y.data);
    return y;
  }

  linears(x: Mat, layers: readonly LinearLayer<Mat>[]): Mat[] {
    return layers.map((l) => this.linear(x, l.w, l.b, l.relu));
  }

  /** Serving never trains: the identity. */
  dropout(x: Mat): Mat {
    return x;
  }

  concat(xs: readonly Mat[]): Mat {
    const rows = xs[0]!.rows;
    const y = this.out(rows, xs.reduce((a, m) => a + m.cols, 0));
    let at = 0;
    for (const m of xs) {
      for (let r = 0; r < rows; r++) y.data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), r * y.cols + at);
      at += m.cols;
    }
    return y;
  }

  add(a: Mat, b: Mat): Mat {
    if (a.cols !== b.cols) return a.cols === 1 ? this.addColumn(b, a) : this.addColumn(a, b);
    const y = this.out(a.rows, a.cols);
    for (let i = 0; i < y.data.length; i++) y.data[i] = a.data[i]! + b.data[i]!;
    return y;
  }

  /** x [B, n] plus column c [B, 1] in every column. */
  private addColumn(x: Mat, c: Mat): Mat {
    const y = this.out(x.rows, x.cols);
    for (let r = 0, i = 0; r < x.rows; r++) for (let k = 0; k < x.cols; k++, i++) y.data[i] = x.data[i]! + c.data[r]!;
    return y;
  }

  mul(a: Mat, b: Mat): Mat {
    const y = this.out(a.rows, a.cols);
    for (let i = 0; i < y.data.length; i++) y.data[i] = a.data[i]! * b.data[i]!;
    return y;
  }

  dotInteraction(x: Mat, emb: Mat, S: number, D: number): Mat {
    const B = x.rows;
    const n = S + 1;
    const hw = D + (n * (n - 1)) / 2;
    const y = this.out(B, hw);
    const h = y.data;
    const xs = x.data;
    const pooled = emb.data;
    for (let e = 0; e < B; e++) for (let k = 0; k < D; k++) h[e * hw + k] = xs[e * D + k]!;
    // The pairs kernel writes each example's dots straight into its row, after x.
    if (this.blas) {
      this.blas.dotInteractionSplit(xs, 0, pooled, 0, B, S, D, h, D, hw);
      return y;
    }
    // Straight from x and the embeddings, no per-example copies or views: this loop is most of a DLRM request's CPU.
    for (let e = 0; e < B; e++) {
      const xb = e * D;
      const pb = e * S * D;
      let p = e * hw + D;
      for (let j = 0; j < S; j++) {
        const jb = pb + j * D;
        let dot = 0;
        for (let k = 0; k < D; k++) dot += xs[xb + k]! * pooled[jb + k]!;
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
    return y;
  }

  slotColumns(emb: Mat, rowWidths: readonly number[], from: number, take: readonly number[]): Mat {
    const y = this.out(emb.rows, take.reduce((a, t) => a + t, 0));
    for (let r = 0; r < emb.rows; r++) {
      let src = r * emb.cols + from;
      let dst = r * y.cols;
      for (let s = 0; s < rowWidths.length; s++) {
        y.data.set(emb.data.subarray(src, src + take[s]!), dst);
        src += rowWidths[s]!;
        dst += take[s]!;
      }
    }
    return y;
  }

  sumSlots(x: Mat, S: number, width: number): Mat {
    const y = this.out(x.rows, width);
    y.data.fill(0);
    for (let r = 0; r < x.rows; r++) for (let s = 0; s < S; s++) for (let k = 0; k < width; k++) y.data[r * width + k]! += x.data[r * x.cols + s * width + k]!;
    return y;
  }

  fmInteraction(v: Mat, S: number, D: number): Mat {
    const y = this.out(v.rows, 1);
    for (let r = 0; r < v.rows; r++) {
      let total = 0;
      for (let k = 0; k < D; k++) {
        let sum = 0;
        let squares = 0;
        for (let s = 0; s < S; s++) {
          const a = v.data[r * v.cols + s * D + k]!;
          sum += a;
          squares += a * a;
        }
        total += sum * sum - squares;
      }
      y.data[r] = 0.5 * total;
    }
    return y;
  }

  softmax(x: Mat): Mat {
    const y = this.out(x.rows, x.cols);
    const n = x.cols;
    for (let r = 0; r < x.rows; r++) {
      const at = r * n;
      let max = -Infinity;
      for (let k = 0; k < n; k++) max = Math.max(max, x.data[at + k]!);
      let sum = 0;
      for (let k = 0; k < n; k++) sum += y.data[at + k] = Math.exp(x.data[at + k]! - max);
      for (let k = 0; k < n; k++) y.data[at + k]! /= sum;
    }
    return y;
  }

  mixture(g: Mat, xs: readonly Mat[]): Mat {
    const n = xs[0]!.cols;
    const y = this.out(g.rows, n);
    y.data.fill(0);
    xs.forEach((x, e) => this.gated(y.data, x.data, g.data, e, g.cols, g.rows, n));
    return y;
  }
}

/**
 * y += g[:, e] * x, row by row, for gates g [B, E] and x, y [B, n] (also the trainer's mixture and its gradient): the
 * path without the addon, whose addGated has these bits.
 */
export function addGated(y: Float32Array, x: Float32Array, g: Float32Array, e: number, E: number, B: number, n: number): void {
  for (let b = 0; b < B; b++) {
    const ge = g[b * E + e]!;
    for (let k = 0, at = b * n; k < n; k++, at++) y[at]! += ge * x[at]!;
  }
}

/** addGated on the addon when given one (the same bits), else the loop above: serving's mixture and the trainer's. */
export function addGatedOn(blas: NativeBlas | null): typeof addGated {
  return blas ? (y, x, g, e, E, B, n) => blas.addGated(y, x, g, e, E, B, n) : addGated;
}

/** The native BLAS when built (one thread: serving's products are small and concurrent requests already use the cores), else null. */
function defaultBlas(): NativeBlas | null {
  const b = nativeBlas().blas;
  b?.setThreads(1);
  return b;
}

/**
 * Y[B, out] = X[B, in] W[in, out] + b, optionally ReLU, in JS: register
 * blocked, four examples by four outputs summed in locals over the whole
 * input, so each step loads 4 inputs and 4 weights for 16 multiply-adds.
 */
export function matmulBias(x: Float32Array, B: number, inW: number, w: Float32Array, outW: number, b: Float32Array | null, relu: boolean, y: Float32Array): void {
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
      const b0 = b ? b[o]! : 0, b1 = b ? b[o + 1]! : 0, b2 = b ? b[o + 2]! : 0, b3 = b ? b[o + 3]! : 0;
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
      let sum = b ? b[o]! : 0;
      for (let i = 0, wi = o; i < inW; i++, wi += outW) sum += x[xe + i]! * w[wi]!;
      y[e * outW + o] = sum;
    }
  }
  if (relu) for (let k = 0; k < B * outW; k++) if (y[k]! < 0) y[k] = 0;
}
