import { Rng, hashWords } from "@pangea/kit";

/** How a new row starts; Monolith's default is uniform in ±0.05. */
export type Initializer =
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "constant"; value: number }
  | { kind: "uniform"; range: number };

export const DEFAULT_INITIALIZER: Initializer = { kind: "uniform", range: 0.05 };

/** Fills out[at .. at + dim) for id (lo, hi); random values depend only on (seed, id), never on arrival order. */
export function initialize(init: Initializer, out: Float32Array, at: number, dim: number, seed: number, lo: number, hi: number): void {
  switch (init.kind) {
    case "zeros":
      out.fill(0, at, at + dim);
      return;
    case "ones":
      out.fill(1, at, at + dim);
      return;
    case "constant":
      out.fill(init.value, at, at + dim);
      return;
    case "uniform": {
      const rng = new Rng(hashWords(seed, lo, hi));
      for (let k = 0; k < dim; k++) out[at + k] = rng.uniform(-init.range, init.range);
    }
  }
}
