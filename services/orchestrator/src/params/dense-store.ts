import { denseParams, initDenseParams, type DenseParam, type ModelSpec } from "@pangea/model";
import { adagradUpdate, adamUpdate, type DenseOptimizerState, type DenseOptimizerName } from "../optim/optimizers.js";

/** The model's dense parameters, in the order of denseParams(spec), with their optimizer state (Adam's moments; Adagrad's accumulator in v). */
export class DenseStore {
  readonly params: DenseParam[];
  readonly values: Float32Array[];
  readonly state: DenseOptimizerState[];
  steps = 0;
  /**
   * Counts every change of `values`, restores included (`steps` counts only
   * updates: it is Adam's clock, kept in checkpoints): a copy of the values
   * taken at one version is current while it holds (the dense exchange's
   * weight files).
   */
  version = 0;

  /** l2: coupled L2 on every dense parameter (--dense-l2), a training setting like lr: not part of a checkpoint. */
  constructor(spec: ModelSpec, seed: number, private readonly lr: number, readonly optimizer: DenseOptimizerName = "adam", private readonly l2 = 0) {
    this.params = denseParams(spec);
    this.values = initDenseParams(spec, seed);
    this.state = this.values.map((v) => ({ m: new Float32Array(v.length), v: new Float32Array(v.length) }));
  }

  /** Takes values and optimizer state from a checkpoint of the same model. */
  restore(values: readonly Float32Array[], m: readonly Float32Array[], v: readonly Float32Array[], updates?: number): void {
    if (updates !== undefined) this.steps = updates;
    this.version++;
    this.values.forEach((dst, i) => {
      if (values[i]?.length !== dst.length) throw new Error(`dense parameter ${this.params[i]!.name}: checkpoint holds ${values[i]?.length} values, the model ${dst.length}`);
      dst.set(values[i]!);
      this.state[i]!.m.set(m[i]!);
      this.state[i]!.v.set(v[i]!);
    });
  }

  /** Applies one averaged gradient per parameter. */
  apply(grads: readonly Float32Array[]): void {
    this.steps++;
    this.version++;
    if (this.optimizer === "adagrad") grads.forEach((g, i) => adagradUpdate(this.values[i]!, this.state[i]!, g, this.lr, this.l2));
    else grads.forEach((g, i) => adamUpdate(this.values[i]!, this.state[i]!, g, this.lr, this.steps, this.l2));
  }

  totalElements(): number {
    return this.values.reduce((a, v) => a + v.length, 0);
  }
}
