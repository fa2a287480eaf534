import { SPARSE_OPTIMIZERS, type SparseOptimizerName } from "@pangea/service-flags";

/**
 * The embedding optimizers, with Monolith's update rules and defaults
 * (monolith/native_training/runtime/hash_table/optimizer). Each keeps its
 * state beside the row, `stateSize(dim)` floats per row, and updates one row
 * in place. L2 on the rows (hyper l2, plus Monolith's weightDecay where it
 * has one: the same term) is the coupled row gradient + λ row, and lazy: only
 * the rows a step touches decay, as in Monolith's and TF's sparse
 * optimizers; ftrl's l2 is FTRL-proximal's own.
 */
export interface SparseOptimizer {
  readonly name: SparseOptimizerName;
  stateSize(dim: number): number;
  init(state: Float32Array, at: number, dim: number): void;
  /** w[wAt..wAt+dim) -= update(g[gAt..gAt+dim)), using and updating state[sAt..). */
  apply(w: Float32Array, wAt: number, state: Float32Array, sAt: number, g: Float32Array, gAt: number, dim: number): void;
  /** Adagrad's learning rate and coupled L2, for the addon's many-row update (the same bits as `apply`); absent for the others. */
  readonly adagrad?: { readonly lr: number; readonly wd: number };
}

// The names are declared with the --sparse-optimizer flag (@pangea/service-flags); makeSparseOptimizer implements each.
export { SPARSE_OPTIMIZERS, type SparseOptimizerName };

/** Hyper-parameters; anything not given takes Monolith's default for that optimizer. */
export interface SparseHyper {
  learningRate?: number;
  initialAccumulator?: number;
  weightDecay?: number;
  beta?: number;
  l1?: number;
  l2?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  momentum?: number;
  nesterov?: boolean;
  rho?: number;
}

/** An optimizer keeping one state value per weight, each starting at `start`. */
function perWeightState(name: SparseOptimizerName, start: number, apply: SparseOptimizer["apply"]): SparseOptimizer {
  return { name, stateSize: (dim) => dim, init: (s, at, dim) => s.fill(start, at, at + dim), apply };
}

export function makeSparseOptimizer(name: SparseOptimizerName, h: SparseHyper = {}): SparseOptimizer {
  const wd = (h.weightDecay ?? 0) + (name === "ftrl" ? 0 : (h.l2 ?? 0));
  switch (name) {
    case "sgd": {
      const lr = h.learningRate ?? 0.01;
      return {
        name,
        stateSize: () => 0,
        init: () => {},
        apply(w, wAt, _s, _sAt, g, gAt, dim) {
          for (let i = 0; i < dim; i++) w[wAt + i]! -= lr * (g[gAt + i]! + wd * w[wAt + i]!);
        },
      };
    }
    case "adagrad": {
      const lr = h.learningRate ?? 0.001;
      const opt = perWeightState(name, h.initialAccumulator ?? 0.1, (w, wAt, s, sAt, g, gAt, dim) => {
        for (let i = 0; i < dim; i++) {
          const gi = g[gAt + i]! + wd * w[wAt + i]!;
          const n = s[sAt + i]! + gi * gi;
          s[sAt + i] = n;
          w[wAt + i]! -= (lr * gi) / Math.sqrt(n);
        }
      });
      return { ...opt, adagrad: { lr, wd } };
    }
    case "ftrl": {
      // FTRL-proximal; state: n (squared-gradient sum), then z.
      const lr = h.learningRate ?? 0.01;
      const init = h.initialAccumulator ?? 0.1;
      const beta = h.beta ?? 0;
      const l1 = h.l1 ?? 0;
      const l2 = h.l2 ?? 0;
      return {
        name,
        stateSize: (dim) => 2 * dim,
        init(s, at, dim) {
          s.fill(init, at, at + dim);
          s.fill(0, at + dim, at + 2 * dim);
        },
        apply(w, wAt, s, sAt, g, gAt, dim) {
          for (let i = 0; i < dim; i++) {
            const gi = g[gAt + i]!;
            const n = s[sAt + i]!;
            const nNew = n + gi * gi;
            const sigma = (Math.sqrt(nNew) - Math.sqrt(n)) / lr;
            const z = s[sAt + dim + i]! + gi - sigma * w[wAt + i]!;
            s[sAt + dim + i] = z;
            s[sAt + i] = nNew;
            w[wAt + i] = Math.abs(z) > l1 ? (-(z - Math.sign(z) * l1) * lr) / (Math.sqrt(nNew) + beta + l2 * lr) : 0;
          }
        },
      };
    }
    case "adam":
    case "amsgrad": {
      // state: m, v, (vhat for amsgrad), then beta1^t and beta2^t of this row.
      const lr = h.learningRate ?? 0.01;
      const b1 = h.beta1 ?? 0.9;
      const b2 = h.beta2 ?? 0.99;
      const eps = h.epsilon ?? 0.01;
      const nesterov = h.nesterov ?? false;
      const ams = name === "amsgrad";
      const vecs = ams ? 3 : 2;
      return {
        name,
        stateSize: (dim) => vecs * dim + 2,
        init(s, at, dim) {
          s.fill(0, at, at + vecs * dim);
          s[at + vecs * dim] = b1;
          s[at + vecs * dim + 1] = b2;
        },
        apply(w, wAt, s, sAt, g, gAt, dim) {
          const p1 = sAt + vecs * dim;
          const step = (lr * Math.sqrt(1 - s[p1 + 1]!)) / (1 - s[p1]!);
          for (let i = 0; i < dim; i++) {
            const gi = g[gAt + i]! + wd * w[wAt + i]!;
            const m = s[sAt + i]! + (gi - s[sAt + i]!) * (1 - b1);
            const v = s[sAt + dim + i]! + (gi * gi - s[sAt + dim + i]!) * (1 - b2);
            let denom = v;
            if (ams) {
              denom = Math.max(s[sAt + 2 * dim + i]!, v);
              s[sAt + 2 * dim + i] = denom;
            }
            const num = nesterov ? gi * (1 - b1) + b1 * m : m;
            w[wAt + i]! -= (num * step) / (Math.sqrt(denom) + eps);
            s[sAt + i] = m;
            s[sAt + dim + i] = v;
          }
          s[p1]! *= b1;
          s[p1 + 1]! *= b2;
        },
      };
    }
    case "momentum": {
      const lr = h.learningRate ?? 0.01;
      const mu = h.momentum ?? 0.9;
      const nesterov = h.nesterov ?? false;
      return perWeightState(name, 0, (w, wAt, s, sAt, g, gAt, dim) => {
        for (let i = 0; i < dim; i++) {
          const dx = lr * (g[gAt + i]! + wd * w[wAt + i]!);
          const prev = s[sAt + i]!;
          const n = mu * prev - dx;
          s[sAt + i] = n;
          w[wAt + i]! += nesterov ? -mu * prev + (1 + mu) * n : n;
        }
      });
    }
    case "rmsprop": {
      // Monolith's variant: step size lr / (sqrt(n) + 1).
      const lr = h.learningRate ?? 0.01;
      const mu = h.momentum ?? 0.9;
      return perWeightState(name, 0, (w, wAt, s, sAt, g, gAt, dim) => {
        for (let i = 0; i < dim; i++) {
          const dx = g[gAt + i]! + wd * w[wAt + i]!;
          const n = mu * s[sAt + i]! + (1 - mu) * dx * dx;
          s[sAt + i] = n;
          w[wAt + i]! -= (lr / (Math.sqrt(n) + 1)) * dx;
        }
      });
    }
    case "adadelta": {
      // state: accumulated squared gradients, then accumulated squared updates.
      const lr = h.learningRate ?? 0.01;
      const rho = h.rho ?? 0.9;
      const eps = h.epsilon ?? 0.01;
      return {
        name,
        stateSize: (dim) => 2 * dim,
        init: (s, at, dim) => s.fill(0, at, at + 2 * dim),
        apply(w, wAt, s, sAt, g, gAt, dim) {
          for (let i = 0; i < dim; i++) {
            const gi = g[gAt + i]! + wd * w[wAt + i]!;
            const acc = s[sAt + i]! * rho + (1 - rho) * gi * gi;
            const update = (Math.sqrt(s[sAt + dim + i]! + eps) / Math.sqrt(acc + eps)) * gi;
            w[wAt + i]! -= update * lr;
            s[sAt + dim + i] = s[sAt + dim + i]! * rho + (1 - rho) * update * update;
            s[sAt + i] = acc;
          }
        },
      };
    }
  }
}
