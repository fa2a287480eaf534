import { tf } from "../backend/tfjs-core.js";
import { nativeBlas } from "@pangea/blas";
import { nativeMatMulActive } from "../backend/native-matmul.js";
import { heapF32, heapIndex, wasmBackend } from "../backend/wasm-heap.js";

/**
 * y = act(x W + b) with a hand-written gradient.
 *
 * On the native BLAS kernels (wasm+blas) the forward pass is one fused
 * matmul+bias+relu and the gradient uses transpose flags, which BLAS reads
 * in place; the ReLU mask and the bias gradient are one native pass over
 * the heap (instead of wasm's step, mul and a product with a ones row). On
 * plain wasm the gradient materialises W^T and x^T and multiplies without
 * flags, because transposed matmuls there run 10-30x slower than plain ones.
 */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, relu: boolean, native = nativeMatMulActive()): tf.Tensor2D {
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = native
      ? tf.fused.matMul({ a: xi as tf.Tensor2D, b: wi as tf.Tensor2D, bias: bi, activation: relu ? "relu" : "linear" })
      : relu
        ? tf.relu(tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi))
        : tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi);
    save([xi, wi, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws, ys] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const blas = nativeBlas().blas;
        const wasm = wasmBackend();
        if (native && blas && wasm) {
          const [rows, cols] = ys.shape;
          const dbInfo = wasm.makeOutput([cols], "float32");
          const dzInfo = relu ? wasm.makeOutput([rows, cols], "float32") : null;
          const h = heapF32(wasm);
          blas.biasReluGrad(h, heapIndex(wasm, dy), relu ? h : null, heapIndex(wasm, ys), dzInfo ? h : null, dzInfo ? heapIndex(wasm, dzInfo) : 0, rows, cols, h, heapIndex(wasm, dbInfo));
          const dz = dzInfo ? (tf.engine().makeTensorFromTensorInfo(dzInfo) as tf.Tensor2D) : (dy as tf.Tensor2D);
          return [tf.matMul(dz, ws, false, true), tf.matMul(xs, dz, true, false), tf.engine().makeTensorFromTensorInfo(dbInfo)];
        }
        const dz = (relu ? tf.mul(dy, tf.step(ys)) : dy) as tf.Tensor2D;
        const dx = native ? tf.matMul(dz, ws, false, true) : tf.matMul(dz, tf.transpose(ws));
        const dw = native ? tf.matMul(xs, dz, true, false) : tf.matMul(tf.transpose(xs), dz);
        // Column sums as a product with a ones row: one BLAS call instead of wasm's slow axis-0 reduction.
        const db = native ? tf.reshape(tf.matMul(tf.ones([1, dz.shape[0]]), dz), [dz.shape[1]]) : tf.sum(dz, 0);
        return [dx, dw, db];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, w, b) as tf.Tensor2D;
}
