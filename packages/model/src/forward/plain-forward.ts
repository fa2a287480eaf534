import type { NativeBlas } from "@pangea/blas";
import { architectureOf, denseParams, hyperParams, rowWidths, type ModelSpec } from "../spec.js";
import { tasksOf, type Architecture } from "../architectures/architecture.js";
import { PlainOps, type Mat } from "./plain-ops.js";

/**
 * A model's forward pass on plain arrays: the architecture's own forward
 * function run over PlainOps, so serving computes exactly the function the
 * trainer learned, with no second copy of any architecture.
 */
export class PlainForward {
  private readonly arch: Architecture<any>;
  private readonly hyper: Record<string, unknown>;
  private readonly params = new Map<string, Mat>();
  private readonly ops: PlainOps;
  private readonly embCols: number;
  /** Per task: whether its output is a probability (binary cross-entropy) rather than a value. */
  readonly binary: boolean[];

  constructor(readonly spec: ModelSpec, values: readonly Float32Array[], blas?: NativeBlas | null) {
    this.arch = architectureOf(spec);
    this.hyper = hyperParams(spec);
    this.embCols = rowWidths(spec).reduce((a, w) => a + w, 0);
    this.binary = tasksOf(spec).map((t) => t.loss === "bce");
    this.ops = blas === undefined ? new PlainOps() : new PlainOps(blas);
    denseParams(spec).forEach((p, i) => {
      const [rows, cols] = p.shape.length === 2 ? p.shape : [1, p.shape[0]];
      this.params.set(p.name, { data: values[i]!, rows, cols });
    });
  }

  /**
   * The predictions of B examples, [B, T] row-major into out (a binary
   * task's probability, a regression task's value): dense [B, numDense] and
   * pooled embedding rows [B, sum of the slots' row widths], each example's
   * slots side by side (a slot without a row reads as zeros).
   */
  predict(B: number, dense: Float32Array, pooled: Float32Array, out: Float32Array): void {
    const numDense = this.spec.numDense;
    this.ops.begin();
    const param = (name: string) => this.params.get(name)!;
    const logits = this.arch.forward(this.ops, param, { dense: { data: dense, rows: B, cols: numDense }, emb: { data: pooled, rows: B, cols: this.embCols } }, this.spec, this.hyper);
    const T = this.binary.length;
    for (let i = 0; i < B * T; i++) out[i] = this.binary[i % T] ? 1 / (1 + Math.exp(-logits.data[i]!)) : logits.data[i]!;
  }
}
