import { nativeBlas } from "@pangea/blas";

/** The dense parameters' optimizers (the embeddings' are in sparse-optimizers.ts); their names are declared with --dense-optimizer (@pangea/service-flags). */
export type { DenseOptimizerName } from "@pangea/service-flags";

/** One dense tensor's optimizer state: Adam's first and second moments, or Adagrad's accumulator in v (m unused). */
export interface DenseOptimizerState {
  m: Float32Array;
  v: Float32Array;
}

/**
 * The gradient with coupled L2 (--dense-l2): g + l2 w, as torch.optim's
 * weight_decay adds it before the update (not AdamW's decoupled decay).
 * l2 0 leaves g as it is: not g + 0 w, which may flip a zero's sign.
 */
function withL2(g: number, w: number, l2: number): number {
  return l2 === 0 ? g : g + l2 * w;
}

/** Adam with bias correction (Kingma & Ba), beta1 0.9, beta2 0.999, coupled L2 l2. */
export function adamUpdate(w: Float32Array, state: DenseOptimizerState, g: Float32Array, lr: number, step: number, l2 = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
  const c1 = 1 - Math.pow(beta1, step);
  const c2 = 1 - Math.pow(beta2, step);
  const { m, v } = state;
  for (let i = 0; i < w.length; i++) {
    const gi = withL2(g[i]!, w[i]!, l2);
    m[i] = beta1 * m[i]! + (1 - beta1) * gi;
    v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
    w[i]! -= (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
  }
}

/**
 * Adagrad (Duchi et al.): the accumulator (kept in state.v) sums squared
 * gradients from 0; eps 1e-10, as PyTorch's torch.optim.Adagrad defaults, so
 * the two train the same model in the side-by-side benchmark; coupled L2 l2
 * (torch's weight_decay). On the native
 * addon when built (the same operations in the same precision: the same
 * bits, 5-8x faster), else this loop.
 */
export function adagradUpdate(w: Float32Array, state: DenseOptimizerState, g: Float32Array, lr: number, l2 = 0, eps = 1e-10, native = nativeBlas().blas): void {
  const { v } = state;
  if (native) return native.adagrad(w, v, g, lr, eps, l2);
  for (let i = 0; i < w.length; i++) {
    const gi = withL2(g[i]!, w[i]!, l2);
    const acc = v[i]! + gi * gi;
    v[i] = acc;
    w[i]! -= (lr * gi) / (Math.sqrt(acc) + eps);
  }
}
