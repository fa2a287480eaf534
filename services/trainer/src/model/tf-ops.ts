import { tf } from "../backend/tfjs-core.js";
import { addGatedOn, type LinearLayer, type Ops } from "@pangea/model";
import { nativeMatMulActive } from "../backend/native-matmul.js";
import { dense } from "./dense-layer.js";
import { interactionFeatures, upperTriangleIndex } from "./interaction.js";
import { readFloats, withOutput } from "../backend/wasm-heap.js";
import { nativeBlas } from "@pangea/blas";
import type { DropoutMasks } from "./dropout-masks.js";

const blas = nativeBlas().blas;

/**
 * A step's pulled rows standing behind the pooled block an architecture is
 * given (`emb`, [B, S x W], every value a cell of its own, every slot W
 * wide): slotColumns and concat take the block's columns straight from the
 * rows, and their gradients go straight back to them, so the pooled block
 * and its gradient are not written for Wide&Deep, DeepFM, shared-bottom,
 * MMoE or DCN-v2. The block is allocated, and written only when another op
 * reads it (`fill`: every other op calls ready() on the tensors it reads).
 *
 * The gradients have the pooled path's bits as long as no column of the
 * block is read twice in a step (each read's gradient is scattered into the
 * rows on its own, where the pooled path summed the reads' gradients per
 * cell first): true of every architecture here; an architecture that reads
 * a column twice gets the same gradient summed in another order, which
 * services/trainer/test/rows-sourced.test.ts would show.
 */
export interface RowSource {
  emb: tf.Tensor2D;
  /** The pulled rows [U, W], the step's differentiated input. */
  rows: tf.Tensor2D;
  /** Each value's row among them, value v = b * S + s. */
  inverse: Int32Array;
  S: number;
  W: number;
  /** Writes the pooled block into emb, once. */
  fill: () => void;
}

/**
 * Ops on TensorFlow.js: what the trainer runs an architecture with, inside
 * tf.valueAndGrads. Linear layers, DLRM's interaction, the FM term, the
 * gated mixture, concatenation and slot columns have hand-written gradients
 * (on the native kernels when built, see dense-layer and interaction); the
 * rest are tfjs ops with its own gradients.
 */
export class TfOps implements Ops<tf.Tensor2D> {
  /** DLRM's upper-triangle indexes by slot count (kept: they outlive the tidy of a step). */
  private readonly triangles = new Map<number, tf.Tensor1D>();
  /** The training step's dropout masks; null outside a training step (evaluation, predictions): dropout is the identity. */
  masks: DropoutMasks | null = null;
  /** The FM term's per-row column sums (scratch, reused by every step). */
  private fmSums = new Float64Array(0);
  /** During a step or prediction over pulled rows (CtrModel), what its pooled block stands for; else null. */
  rowSource: RowSource | null = null;
  /** How many slotColumns and concat calls took the block's columns straight from the rows (tests check the path is taken). */
  rowSourcedCalls = 0;

  /** Writes the pooled block before an op reads it whole (every op but a row-sourced slotColumns or concat). */
  private ready(...xs: readonly (tf.Tensor | null)[]): void {
    const src = this.rowSource;
    if (src && xs.includes(src.emb)) src.fill();
  }

  linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor2D | null, relu: boolean): tf.Tensor2D {
    this.ready(x, w, b);
    if (b) return dense(x, w, tf.reshape(b, [w.shape[1]]) as tf.Tensor1D, relu);
    const y: tf.Tensor2D = tf.matMul(x, w);
    return relu ? tf.relu(y) : y;
  }

  linears(x: tf.Tensor2D, layers: readonly LinearLayer<tf.Tensor2D>[]): tf.Tensor2D[] {
    this.ready(x);
    // On the native kernels: the layers' weights side by side, one product (and one for x's gradient, instead of
    // one a layer and their sum: MMoE's experts and gates), each layer's columns taken out of it.
    if (layers.length < 2 || !nativeMatMulActive() || layers.some((l) => !l.b)) return layers.map((l) => this.linear(x, l.w, l.b, l.relu));
    const widths = layers.map((l) => l.w.shape[1]);
    const total = widths.reduce((a, w) => a + w, 0);
    const w = this.concat(layers.map((l) => l.w));
    const b = this.concat(layers.map((l, i) => tf.reshape(l.b!, [1, widths[i]!]) as tf.Tensor2D));
    const y = dense(x, w, tf.reshape(b, [total]) as tf.Tensor1D, false);
    let at = 0;
    return layers.map((l, i) => {
      const block = this.slotColumns(y, [total], at, [widths[i]!]);
      at += widths[i]!;
      return l.relu ? tf.relu(block) : block;
    });
  }

  dropout(x: tf.Tensor2D, rate: number, name: string): tf.Tensor2D {
    this.ready(x);
    if (!this.masks) return x;
    const [B, n] = x.shape;
    // The mask is a constant of the step: the gradient is the upstream one times the same mask.
    return tf.mul(x, tf.tensor2d(this.masks.mask(name, B, n, rate), [B, n]));
  }

  concat(xs: readonly tf.Tensor2D[]): tf.Tensor2D {
    // Row by row copies with a hand-written gradient: on wasm, tf.concat's gradient (a split into slices) reads
    // every part back to JS per step. With the pooled block among the parts (shared-bottom's, MMoE's and DCN-v2's
    // [dense, embeddings]) its columns are gathered straight from the rows behind it, which take its place as the
    // op's last input: its part of the gradient is added straight into the rows' (in the order the pooled block's
    // gradient would be: the same bits).
    const src = blas && this.rowSource && xs.includes(this.rowSource.emb) ? this.rowSource : null;
    if (src) this.rowSourcedCalls++;
    else this.ready(...xs);
    const B = xs[0]!.shape[0];
    const widths = xs.map((x) => x.shape[1]);
    const total = widths.reduce((a, w) => a + w, 0);
    const others = src ? xs.filter((x) => x !== src.emb) : xs;
    const f = tf.customGrad(((...args: tf.Tensor[]) => {
      const parts = args.slice(0, others.length);
      const rows = src ? args[others.length]! : null;
      return {
        value: withOutput([B, total], false, (y) => {
          let at = 0;
          let o = 0;
          xs.forEach((x, i) => {
            const w = widths[i]!;
            if (src && x === src.emb) blas!.gatherColumns(readFloats(rows!), src.W, 0, src.W, src.inverse, y, src.S, total, at);
            else moveColumns(y, total, at, [w], readFloats(parts[o++]!), w, 0, [w], B, true);
            at += w;
          });
        }),
        gradFunc: (dy: tf.Tensor) => {
          const grads: tf.Tensor[] = [];
          const blockAt: number[] = [];
          let at = 0;
          xs.forEach((x, i) => {
            const w = widths[i]!;
            const from = at;
            if (src && x === src.emb) blockAt.push(from);
            else grads.push(withOutput([B, w], false, (dx) => moveColumns(readFloats(dy), total, from, [w], dx, w, 0, [w], B, false)));
            at += w;
          });
          if (src) {
            const { rows: r, inverse, S, W } = src;
            grads.push(withOutput([r.shape[0], W], true, (dr) => blockAt.forEach((from) => blas!.scatterAddColumns(readFloats(dy), W, inverse, W, 0, dr, S, total, from))));
          }
          return grads;
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(...others, ...(src ? [src.rows] : [])) as tf.Tensor2D;
  }

  add(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
    this.ready(a, b);
    return tf.add(a, b);
  }

  mul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
    this.ready(a, b);
    return tf.mul(a, b);
  }

  dotInteraction(x: tf.Tensor2D, emb: tf.Tensor2D, S: number, D: number): tf.Tensor2D {
    this.ready(x, emb);
    let tri = this.triangles.get(S);
    if (!tri) this.triangles.set(S, (tri = tf.keep(tf.tensor1d(upperTriangleIndex(S + 1), "int32"))));
    return interactionFeatures(x, tf.reshape(emb, [x.shape[0], S, D]), tri);
  }

  slotColumns(emb: tf.Tensor2D, rowWidths: readonly number[], from: number, take: readonly number[]): tf.Tensor2D {
    const src = this.rowSource;
    if (blas && src && emb === src.emb && take.length === src.S && take.every((t) => t === take[0]) && rowWidths.every((w) => w === src.W)) return this.rowColumns(src, from, take[0] ?? 0);
    this.ready(emb);
    const B = emb.shape[0];
    const cols = emb.shape[1];
    const out = take.reduce((a, t) => a + t, 0);
    // A copy loop with a hand-written gradient (a scatter back): tfjs's wasm Slice of a 3-d view runs in JS reading the whole
    // tensor back per call, which made DeepFM and Wide&Deep steps 2-3x slower than DLRM's.
    const f = tf.customGrad(((xi: tf.Tensor) => ({
      value: withOutput([B, out], false, (y) => moveColumns(readFloats(xi), cols, from, rowWidths, y, out, 0, take, B, false)),
      gradFunc: (dy: tf.Tensor) => [withOutput([B, cols], true, (dx) => moveColumns(dx, cols, from, rowWidths, readFloats(dy), out, 0, take, B, true))],
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(emb) as tf.Tensor2D;
  }

  /**
   * Every slot's columns from .. from+take of the rows behind the pooled block, [B, S x take], straight from the
   * rows; the gradient is added straight into theirs, values in order (the pooled path's order: the same bits).
   */
  private rowColumns(src: RowSource, from: number, take: number): tf.Tensor2D {
    const { rows, inverse, S, W } = src;
    const B = src.emb.shape[0];
    this.rowSourcedCalls++;
    const U = rows.shape[0];
    const f = tf.customGrad(((r: tf.Tensor) => ({
      value: withOutput([B, S * take], false, (y) => blas!.gatherColumns(readFloats(r), W, from, take, inverse, y, S, S * take, 0)),
      gradFunc: (dy: tf.Tensor) => [withOutput([U, W], true, (dr) => blas!.scatterAddColumns(readFloats(dy), take, inverse, W, from, dr, S, S * take, 0))],
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(rows) as tf.Tensor2D;
  }

  sumSlots(x: tf.Tensor2D, S: number, width: number): tf.Tensor2D {
    this.ready(x);
    return tf.sum(tf.reshape(x, [x.shape[0], S, width]), 1);
  }

  fmInteraction(v: tf.Tensor2D, S: number, D: number): tf.Tensor2D {
    this.ready(v);
    // By hand, forward and gradient (d/dv_sk = sum_s' v_s'k - v_sk): tfjs's sum and square gradients
    // build tensors of ones in JS per step, most of a DeepFM step's time on wasm. Both read their input in
    // place and write straight into their output (views taken inside the fill, after its allocation).
    const B = v.shape[0];
    const sums = this.fmSums.length >= D ? this.fmSums : (this.fmSums = new Float64Array(D));
    const f = tf.customGrad(((vi: tf.Tensor, save: tf.GradSaveFunc) => {
      save([vi]);
      return {
        // On the addon when built (the same bits, 3-4.5x faster than these loops, which were a third of a DeepFM step).
        value: withOutput([B, 1], false, (y) => (blas ? blas.fmForward(readFloats(vi), B, S, D, y) : fmForward(readFloats(vi), B, S, D, y, sums))),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
          withOutput([B, S * D], false, (dx) => (blas ? blas.fmGradient(readFloats(saved[0]!), readFloats(dy), B, S, D, dx) : fmGradient(readFloats(saved[0]!), readFloats(dy), B, S, D, dx, sums))),
        ],
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(v) as tf.Tensor2D;
  }

  softmax(x: tf.Tensor2D): tf.Tensor2D {
    this.ready(x);
    // tfjs's Softmax kernel and its gradient (mul, sum, sub) all exist on wasm.
    return tf.softmax(x);
  }

  mixture(g: tf.Tensor2D, xs: readonly tf.Tensor2D[]): tf.Tensor2D {
    this.ready(g, ...xs);
    // By hand, forward and gradient (d/dg_be = dy_b . x_e,b; d/dx_e = g_e * dy): with tfjs's ops it would be a
    // stack or a column slice of g per expert, whose gradients (unstack, pad) copy through JS per step on wasm.
    const [B, E] = g.shape;
    const n = xs[0]!.shape[1];
    const f = tf.customGrad(((...args: tf.Tensor[]) => {
      const save = args[args.length - 1] as unknown as tf.GradSaveFunc;
      const inputs = args.slice(0, E + 1);
      save(inputs);
      return {
        // Views of the heap are taken inside each fill, after its output's allocation (which may move the heap).
        // On the addon when built: the same bits (its loops do these loops' operations in their order).
        value: withOutput([B, n], true, (y) => {
          const gv = readFloats(inputs[0]!);
          for (let e = 0; e < E; e++) gated(y, readFloats(inputs[e + 1]!), gv, e, E, B, n);
        }),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
          withOutput([B, E], false, (dg) => {
            const dyv = readFloats(dy);
            for (let e = 0; e < E; e++) gateGrad(dg, dyv, readFloats(saved[e + 1]!), e, E, B, n);
          }),
          ...xs.map((_, e) => withOutput([B, n], true, (dx) => gated(dx, readFloats(dy), readFloats(saved[0]!), e, E, B, n))),
        ],
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(g, ...xs) as tf.Tensor2D;
  }
}

/** A mixture's expert term and the gates' gradient column: the addon's when built, else the JavaScript loops. */
const gated = addGatedOn(blas);
const gateGrad: typeof gateGradient = blas ? (dg, dy, x, e, E, B, n) => blas.gateGradient(dg, dy, x, e, E, B, n) : gateGradient;

/** Column e of the gates' gradient: dg[b, e] = dy_b . x_b. */
export function gateGradient(dg: Float32Array, dy: Float32Array, x: Float32Array, e: number, E: number, B: number, n: number): void {
  for (let b = 0; b < B; b++) {
    let dot = 0;
    for (let k = 0, at = b * n; k < n; k++, at++) dot += dy[at]! * x[at]!;
    dg[b * E + e] = dot;
  }
}

/**
 * The FM term of each of B rows of S slot vectors of width D: 0.5 * sum_k ((sum_s x_sk)^2 - sum_s x_sk^2).
 * Row-major passes over each row's S * D values (contiguous), the column sums in `sums` (>= D, doubles).
 */
export function fmForward(x: Float32Array, B: number, S: number, D: number, y: Float32Array, sums: Float64Array): void {
  for (let b = 0, at = 0; b < B; b++) {
    sums.fill(0, 0, D);
    let squares = 0;
    for (let s = 0; s < S; s++) {
      for (let k = 0; k < D; k++, at++) {
        const v = x[at]!;
        sums[k] += v;
        squares += v * v;
      }
    }
    let total = -squares;
    for (let k = 0; k < D; k++) total += sums[k]! * sums[k]!;
    y[b] = 0.5 * total;
  }
}

/** Its gradient into dx: g_b * (sum_s' x_s'k - x_sk). */
export function fmGradient(x: Float32Array, g: Float32Array, B: number, S: number, D: number, dx: Float32Array, sums: Float64Array): void {
  const width = S * D;
  for (let b = 0, row = 0; b < B; b++, row += width) {
    sums.fill(0, 0, D);
    for (let at = row, s = 0; s < S; s++) for (let k = 0; k < D; k++, at++) sums[k] += x[at]!;
    const gb = g[b]!;
    for (let at = row, s = 0; s < S; s++) for (let k = 0; k < D; k++, at++) dx[at] = gb * (sums[k]! - x[at]!);
  }
}

/**
 * Copies, for each of B rows, each slot's `take[s]` columns from `from`
 * within its `wide[s]`-wide block of the wide matrix (`wideCols` a row) to
 * the narrow one (`narrowCols` a row, from `narrowFrom`) side by side, or
 * back (`back`, the gradient's scatter). Module-level, not a closure per
 * call, so V8 optimizes it once for every step.
 */
function moveColumns(wideM: Float32Array, wideCols: number, from: number, wide: readonly number[], narrowM: Float32Array, narrowCols: number, narrowFrom: number, take: readonly number[], B: number, back: boolean): void {
  // On the addon when built: B x S blocks of a few floats each, where a subarray per block costs more than its copy.
  if (blas) return blas.copyColumns(wideM, wideCols, from, Int32Array.from(wide), narrowM, narrowCols, narrowFrom, Int32Array.from(take), B, back);
  const S = wide.length;
  for (let r = 0; r < B; r++) {
    let w = r * wideCols + from;
    let n = r * narrowCols + narrowFrom;
    for (let s = 0; s < S; s++) {
      const t = take[s]!;
      // set() of a subarray: a memcpy per block, fast whatever state the JIT is in (an element loop over heap views ran 10x slower here).
      if (back) wideM.set(narrowM.subarray(n, n + t), w);
      else narrowM.set(wideM.subarray(w, w + t), n);
      w += wide[s]!;
      n += t;
    }
  }
}
