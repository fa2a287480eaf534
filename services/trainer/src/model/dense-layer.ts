import * as tf from "@tensorflow/tfjs-core";

/**
 * y = act(x W + b) with a hand-written gradient. The gradient materialises
 * W^T and x^T and multiplies without transpose flags, because transposed
 * matmuls on the wasm backend run 10-30x slower than plain ones.
 */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, relu: boolean): tf.Tensor2D {
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor, save: tf.GradSaveFunc) => {
    const z = tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi);
    const y = relu ? tf.relu(z) : z;
    save([xi, wi, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws, ys] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const dz = relu ? tf.mul(dy, tf.step(ys)) : dy;
        const dx = tf.matMul(dz as tf.Tensor2D, tf.transpose(ws));
        const dw = tf.matMul(tf.transpose(xs), dz as tf.Tensor2D);
        const db = tf.sum(dz, 0);
        return [dx, dw, db];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, w, b) as tf.Tensor2D;
}
