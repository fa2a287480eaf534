/** The dense parameters' optimizer (the embeddings' are in sparse-optimizers.ts). */

export interface AdamState {
  m: Float32Array;
  v: Float32Array;
  t: number;
}

/** Adam with bias correction (Kingma & Ba), beta1 0.9, beta2 0.999. */
export function adamUpdate(w: Float32Array, state: AdamState, g: Float32Array, lr: number, step: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
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
