import { denseParams, initDenseParams, type DenseParam, type DlrmSpec } from "@pangea/model";
import { adamUpdate, type AdamState } from "../optim/optimizers.js";

/** The model's dense parameters, in the order of denseParams(spec), with their Adam state. */
export class DenseStore {
  readonly params: DenseParam[];
  readonly values: Float32Array[];
  readonly adam: AdamState[];
  steps = 0;

  constructor(spec: DlrmSpec, seed: number, private readonly lr: number) {
    this.params = denseParams(spec);
    this.values = initDenseParams(spec, seed);
    this.adam = this.values.map((v) => ({ m: new Float32Array(v.length), v: new Float32Array(v.length), t: 0 }));
  }

  /** Applies one averaged gradient per parameter. */
  apply(grads: readonly Float32Array[]): void {
    this.steps++;
    grads.forEach((g, i) => adamUpdate(this.values[i]!, this.adam[i]!, g, this.lr, this.steps));
  }

  totalElements(): number {
    return this.values.reduce((a, v) => a + v.length, 0);
  }
}
