import { tf } from "../backend/tfjs-core.js";
import { nativeBlas } from "@pangea/blas";
import { nativeMatMulActive } from "../backend/native-matmul.js";
import { heapF32, heapIndex, wasmBackend } from "../backend/wasm-heap.js";

/**
 * DLRM's dot interaction: for each sample, the vectors Z = [x; e_1 .. e_S]
 * (the bottom MLP's output and the slots' pooled embeddings, n = S + 1 of
 * width D), the dot products of every pair i < j, [B, n(n-1)/2], in
 * upper-triangle order.
 *
 * On the native addon the pairs are computed directly from x and the
 * embeddings, and the gradient goes straight back to both: no concatenation
 * and no split of its gradient, and on wasm no copies off the heap.
 *
 * Otherwise the gradient is hand-written: dZ = S Z, where S [B, n, n] is the
 * symmetric matrix holding each pair's incoming gradient at (i, j) and
 * (j, i). Building S in JS avoids both transposed matmuls (10-30x slower on
 * wasm) and the gather gradient (UnsortedSegmentSum, which the wasm backend
 * lacks).
 */
export function pairwiseDots(x: tf.Tensor2D, emb: tf.Tensor3D, triIndex: tf.Tensor1D, native = nativeBlas().blas !== null): tf.Tensor2D {
  const blas = nativeBlas().blas;
  if (native && blas) return nativePairwiseDots(x, emb, blas);
  const [B, S, D] = emb.shape;
  const n = S + 1;
  const z = tf.concat([tf.reshape(x, [B, 1, D]), emb], 1) as tf.Tensor3D;
  const P = (n * (n - 1)) / 2;
  const f = tf.customGrad(((zi: tf.Tensor, save: tf.GradSaveFunc) => {
    const zt = zi as tf.Tensor3D;
    const gram = nativeMatMulActive() && native ? tf.matMul(zt, zt, false, true) : tf.matMul(zt, tf.transpose(zt, [0, 2, 1]) as tf.Tensor3D);
    save([zi]);
    // Picking the upper triangle in JS: the wasm backend's gather is ~20x slower than this loop.
    const g = gram.dataSync();
    const tri = triIndex.dataSync();
    const picked = new Float32Array(B * P);
    for (let b = 0, k = 0; b < B; b++) {
      const base = b * n * n;
      for (let p = 0; p < P; p++) picked[k++] = g[base + tri[p]!]!;
    }
    return {
      value: tf.tensor2d(picked, [B, P]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const d = dy.dataSync();
        const sym = new Float32Array(B * n * n);
        for (let b = 0; b < B; b++) {
          const base = b * n * n;
          let k = b * P;
          for (let i = 0; i < n; i++) {
            for (let j = i + 1; j < n; j++) {
              const g = d[k++]!;
              sym[base + i * n + j] = g;
              sym[base + j * n + i] = g;
            }
          }
        }
        return [tf.matMul(tf.tensor3d(sym, [B, n, n]), saved[0] as tf.Tensor3D)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(z) as tf.Tensor2D;
}

/** Flat indexes (i * n + j, i < j) of the upper triangle of an n x n matrix. */
export function upperTriangleIndex(n: number): Int32Array {
  const idx = new Int32Array((n * (n - 1)) / 2);
  let k = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) idx[k++] = i * n + j;
  return idx;
}

/**
 * The same op on the native addon: each pair's dot product directly (half
 * the products of z z^T, no triangle gather) and its gradient in one pass,
 * from x and the embeddings as they are. On the wasm backend the kernels
 * read and write the tensors on the WebAssembly heap in place; elsewhere
 * (cpu) through copies.
 */
function nativePairwiseDots(x: tf.Tensor2D, emb: tf.Tensor3D, blas: NonNullable<ReturnType<typeof nativeBlas>["blas"]>): tf.Tensor2D {
  const [B, S, D] = emb.shape;
  const n = S + 1;
  const P = (n * (n - 1)) / 2;
  if (wasmBackend() && x.dtype === "float32" && emb.dtype === "float32") return inHeapInteraction(x, emb, false, blas);
  const f = tf.customGrad(((xi: tf.Tensor, ei: tf.Tensor) => {
    const xv = xi.dataSync() as Float32Array;
    const ev = ei.dataSync() as Float32Array;
    const pairs = new Float32Array(B * P);
    blas.dotInteractionSplit(xv, 0, ev, 0, B, S, D, pairs, 0, P);
    return {
      value: tf.tensor2d(pairs, [B, P]),
      gradFunc: (dy: tf.Tensor) => {
        const dx = new Float32Array(B * D);
        const de = new Float32Array(B * S * D);
        blas.dotInteractionSplitGrad(xv, 0, ev, 0, B, S, D, dy.dataSync() as Float32Array, 0, P, dx, 0, de, 0);
        return [tf.tensor2d(dx, [B, D]), tf.tensor3d(de, [B, S, D])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, emb) as tf.Tensor2D;
}

/**
 * The top MLP's input h = [x, pairwiseDots(x, emb)] ([B, D + P]). On wasm
 * with the addon the pairs are written straight into h's rows and the
 * gradient read straight from them (no concat, and no slices of its
 * gradient); elsewhere a concat of the two.
 */
export function interactionFeatures(x: tf.Tensor2D, emb: tf.Tensor3D, triIndex: tf.Tensor1D): tf.Tensor2D {
  const blas = nativeBlas().blas;
  if (!blas || !wasmBackend() || x.dtype !== "float32" || emb.dtype !== "float32") return tf.concat([x, pairwiseDots(x, emb, triIndex)], 1) as tf.Tensor2D;
  return inHeapInteraction(x, emb, true, blas);
}

/**
 * The pairs of [x; emb] (withX: preceded by x's own columns, the top MLP's
 * input) computed on the wasm heap in place: the kernel writes each
 * example's pairs straight into its output row and reads the gradient
 * straight from it, and x's columns pass theirs through.
 */
function inHeapInteraction(x: tf.Tensor2D, emb: tf.Tensor3D, withX: boolean, blas: NonNullable<ReturnType<typeof nativeBlas>["blas"]>): tf.Tensor2D {
  const wasm = wasmBackend()!;
  const [B, S, D] = emb.shape;
  const n = S + 1;
  const P = (n * (n - 1)) / 2;
  const off = withX ? D : 0;
  const W = off + P;
  const f = tf.customGrad(((xi: tf.Tensor, ei: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi, ei]);
    const out = wasm.makeOutput([B, W], "float32");
    const h = heapF32(wasm);
    const at = heapIndex(wasm, out);
    const xAt = heapIndex(wasm, xi);
    blas.dotInteractionSplit(h, xAt, h, heapIndex(wasm, ei), B, S, D, h, at + off, W);
    if (withX) for (let b = 0; b < B; b++) for (let k = 0; k < D; k++) h[at + b * W + k] = h[xAt + b * D + k]!;
    return {
      value: tf.engine().makeTensorFromTensorInfo(out),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, es] = saved as [tf.Tensor, tf.Tensor];
        const dx = wasm.makeOutput([B, D], "float32");
        const de = wasm.makeOutput([B, S, D], "float32");
        const hg = heapF32(wasm);
        const dyAt = heapIndex(wasm, dy);
        const dxAt = heapIndex(wasm, dx);
        blas.dotInteractionSplitGrad(hg, heapIndex(wasm, xs), hg, heapIndex(wasm, es), B, S, D, hg, dyAt + off, W, hg, dxAt, hg, heapIndex(wasm, de));
        if (withX) for (let b = 0; b < B; b++) for (let k = 0; k < D; k++) hg[dxAt + b * D + k]! += hg[dyAt + b * W + k]!;
        return [tf.engine().makeTensorFromTensorInfo(dx), tf.engine().makeTensorFromTensorInfo(de)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, emb) as tf.Tensor2D;
}
