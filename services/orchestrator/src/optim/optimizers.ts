import { nativeBlas } from "@pangea/blas";

/** The dense parameters' optimizers (the embeddings' are in sparse-optimizers.ts); their names are declared with --dense-optimizer (@pangea/service-flags). */
export type { DenseOptimizerName } from "@pangea/service-flags";

/** One dense tensor's optimizer state: Adam's first and second moments, or Adagrad's accumulator in v (m unused). */
export interface DenseOptimizerState {
  m: Float32Array;
  v: Float32Array;
}

/** Adam with bias correction (Kingma & Ba), beta1 0.9, beta2 0.999. */
export function adamUpdate(w: Float32Array, state: DenseOptimizerState, g: Float32Array, lr: number, step: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
  const c1 = 1 - Math.pow(beta1, step);
  const c2 = 1 - Math.pow(beta2, step);
  const { m, v } = state;
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]!;
    m[i] = beta1 * m[i]! + (1 - beta1) * gi;
    v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
    w[i]! -= (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
  }
}

/**
 * Adagrad (Duchi et al.): the accumulator (kept in state.v) sums squared
 * gradients from 0; eps 1e-10, as PyTorch's torch.optim.Adagrad defaults, so
 * the two train the same model in the side-by-side benchmark. On the native
 * addon when built (the same operations in the same precision: the same
 * bits, 5-8x faster), else this loop.
 */
export function adagradUpdate(w: Float32Array, state: DenseOptimizerState, g: Float32Array, lr: number, eps = 1e-10, native = nativeBlas().blas): void {
  const { v } = state;
  if (native) return native.adagrad(w, v, g, lr, eps);
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]!;
    const acc = v[i]! + gi * gi;
    v[i] = acc;
    w[i]! -= (lr * gi) / (Math.sqrt(acc) + eps);
  }
}
