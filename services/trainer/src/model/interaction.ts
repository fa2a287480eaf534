import * as tf from "@tensorflow/tfjs-core";
import { nativeBlas } from "@pangea/blas";
import { nativeMatMulActive } from "../backend/native-matmul.js";

/**
 * DLRM's dot interaction: for Z [B, n, D], the dot products of every pair
 * i < j of the n vectors, [B, n(n-1)/2], in upper-triangle order.
 *
 * The gradient is hand-written: dZ = S Z, where S [B, n, n] is the symmetric
 * matrix holding each pair's incoming gradient at (i, j) and (j, i). Building
 * S in JS avoids both transposed matmuls (10-30x slower on wasm) and the
 * gather gradient (UnsortedSegmentSum, which the wasm backend lacks).
 */
export function pairwiseDots(z: tf.Tensor3D, triIndex: tf.Tensor1D, native = nativeBlas().blas !== null): tf.Tensor2D {
  const blas = nativeBlas().blas;
  if (native && blas) return nativePairwiseDots(z, blas);
  const [B, n] = z.shape;
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
 * the products of z z^T, no triangle gather) and its gradient in one pass.
 */
function nativePairwiseDots(z: tf.Tensor3D, blas: NonNullable<ReturnType<typeof nativeBlas>["blas"]>): tf.Tensor2D {
  const [B, n, D] = z.shape;
  const P = (n * (n - 1)) / 2;
  const f = tf.customGrad(((zi: tf.Tensor) => {
    const zv = zi.dataSync() as Float32Array;
    const pairs = new Float32Array(B * P);
    blas.dotInteraction(zv, B, n, D, pairs);
    return {
      value: tf.tensor2d(pairs, [B, P]),
      gradFunc: (dy: tf.Tensor) => {
        const dz = new Float32Array(B * n * D);
        blas.dotInteractionGrad(zv, B, n, D, dy.dataSync() as Float32Array, dz);
        return [tf.tensor3d(dz, [B, n, D])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(z) as tf.Tensor2D;
}
