/** A layer's weight [in, out], bias (null: none) and whether its output is ReLU'd. */
export interface LinearLayer<T> {
  w: T;
  b: T | null;
  relu: boolean;
}

/**
 * The operations an architecture is written with. The trainer implements
 * them on TensorFlow.js tensors (gradients come from its autodiff and our
 * custom gradients), serving on plain arrays (forward only, native BLAS when
 * built), so an architecture's forward function is written once and both run
 * it. Every value is a [batch, width] matrix.
 */
export interface Ops<T> {
  /** x W + b ([B, in] x [in, out]), ReLU'd when relu; no bias when b is null. */
  linear(x: T, w: T, b: T | null, relu: boolean): T;
  /**
   * Several layers over the same x at once: [linear(x, w, b, relu) for each],
   * computed as one product where the implementation can (the trainer: one
   * matmul for the forward pass, one for x's gradient, instead of one each
   * and a sum of the gradients).
   */
  linears(x: T, layers: readonly LinearLayer<T>[]): T[];
  /** The columns of each matrix side by side. */
  concat(xs: readonly T[]): T;
  /** a + b; either may be [B, 1] against the other's [B, n] (its column added to every column). */
  add(a: T, b: T): T;
  /** Elementwise product of two matrices of the same shape. */
  mul(a: T, b: T): T;
  /**
   * DLRM's interaction: for x [B, dim] and slot vectors emb [B, slots*dim],
   * [x, the dot products of every pair i < j of (x, e_1 .. e_slots) in
   * upper-triangle order] ([B, dim + n(n-1)/2], n = slots + 1).
   */
  dotInteraction(x: T, emb: T, slots: number, dim: number): T;
  /**
   * Of emb, whose rows are the slots' blocks side by side (slot s's block
   * rowWidths[s] wide), each slot's columns from .. from+take[s]: [B, sum of take].
   */
  slotColumns(emb: T, rowWidths: readonly number[], from: number, take: readonly number[]): T;
  /** The sum of the slots' width-wide blocks of x [B, slots*width]: [B, width]. */
  sumSlots(x: T, slots: number, width: number): T;
  /** Factorization machines' second-order term of v [B, slots*dim]: 0.5 * sum_k ((sum_s v_sk)^2 - sum_s v_sk^2), [B, 1]. */
  fmInteraction(v: T, slots: number, dim: number): T;
  /** Each row's softmax: exp(x_j - max) / sum_k exp(x_k - max), [B, n]. */
  softmax(x: T): T;
  /**
   * Inverted dropout of x at rate p (0 < p < 1) after the hidden layer
   * `name`: in a training step each value is kept (times 1 / (1 - p)) or
   * zeroed by the step's seeded mask for that layer; the identity in
   * evaluation and serving.
   */
  dropout(x: T, rate: number, name: string): T;
  /** A gated mixture: sum_e g[:, e] * xs[e], for gates g [B, E] and E matrices [B, n] alike: [B, n]. */
  mixture(g: T, xs: readonly T[]): T;
}
