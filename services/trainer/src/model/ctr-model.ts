import { tf } from "../backend/tfjs-core.js";
import { architectureOf, denseParams, hyperParams, poolingOf, poolingScale, rowWidths, tasksOf, uniformRowWidth, type Architecture, type DenseParam, type ModelSpec, type Pooling, type TaskSpec } from "@pangea/model";
import { nativeBlas } from "@pangea/blas";
import { TfOps, type RowSource } from "./tf-ops.js";
import type { DropoutMasks } from "./dropout-masks.js";
import { readFloats, wasmBackend, withOutput } from "../backend/wasm-heap.js";

/** One batch in the form the model consumes. */
export interface ModelBatch {
  size: number;
  /** [size, numDense] */
  dense: Float32Array;
  /** [size, T] row-major: 0/1 for a binary task, the target for a regression task; unused by predict. */
  labels: Float32Array;
  /** [size] loss weights, or null for all 1; unused by predict. */
  weights?: Float32Array | null;
  /** For each feature value, the row of its id among the pulled unique rows. */
  inverse: Int32Array;
  /** For each feature value, its cell (sample * S + slot); null when every cell has exactly one value. */
  cellOfValue: Int32Array | null;
  /** Where each pulled row starts (and the total at the end) when slots' rows differ in width (RowLayout.offsets); null or absent when they are alike. */
  rowOffsets?: Int32Array | null;
}

export interface StepOutput {
  /** The total loss: the tasks' weighted sum. */
  loss: number;
  /** Each task's mean loss, [T] (binary cross-entropy or squared error). */
  taskLosses: Float32Array;
  denseGrads: Float32Array[];
  /** [uniqueRows, dim]: gradient of the mean loss w.r.t. each pulled row. */
  rowGrads: Float32Array;
  /** The batch's predictions before this step's update (progressive validation), [B, T] row-major. */
  predictions: Float32Array;
}

/**
 * The job's architecture (see @pangea/model) with each task's loss, as
 * a pure function of the dense parameters and the pulled embedding rows; the
 * parameter server owns the state, the trainer only computes.
 */
export class CtrModel {
  readonly params: DenseParam[];
  /** Each slot's row width (its embedding dim, plus the architecture's per-id extras), in slot order. */
  readonly rowWidths: number[];
  /** The row width every slot shares, or null when they differ (then pooling runs the ragged path). */
  readonly uniformWidth: number | null;
  /** The pooled row of an example: every slot's row side by side. */
  private readonly embCols: number;
  /** Where slot s's row starts in an example's pooled row. */
  private readonly slotAt: Int32Array;
  /** Each slot's pooling; null when every slot sums (nothing to scale). */
  private readonly pooling: Pooling[] | null;
  private readonly arch: Architecture<any>;
  private readonly hyper: Record<string, unknown>;
  private readonly index: Map<string, number>;
  readonly ops = new TfOps();
  /** The model's tasks, in output order. */
  readonly tasks: TaskSpec[];
  /** One binary task of weight 1: the single-task loss, computed as it always was (bit for bit). */
  private readonly plain: boolean;

  constructor(
    readonly spec: ModelSpec,
    /** Whether slots' columns may come straight from the pulled rows (see rowsTensor); false: always the pooled block (tests compare the two). */
    private readonly rowsSourcing = true,
  ) {
    this.params = denseParams(spec);
    this.rowWidths = rowWidths(spec);
    this.uniformWidth = uniformRowWidth(spec);
    this.slotAt = new Int32Array(spec.numSlots + 1);
    this.rowWidths.forEach((w, i) => (this.slotAt[i + 1] = this.slotAt[i]! + w));
    this.embCols = this.slotAt[spec.numSlots]!;
    const pooling = poolingOf(spec);
    this.pooling = pooling.some((p) => p !== "sum") ? pooling : null;
    this.arch = architectureOf(spec);
    this.hyper = hyperParams(spec);
    this.index = new Map(this.params.map((p, i) => [p.name, i]));
    this.tasks = tasksOf(spec);
    this.plain = this.tasks.length === 1 && this.tasks[0]!.loss === "bce" && this.tasks[0]!.weight === 1;
  }

  /** The outputs [B, T] (the plain single task: [B]). */
  private logits(p: tf.Tensor[], emb: tf.Tensor, b: ModelBatch): tf.Tensor {
    const B = b.size;
    const param = (name: string) => {
      const t = p[this.index.get(name)!]!;
      return (t.rank === 1 ? tf.reshape(t, [1, t.shape[0]!]) : t) as tf.Tensor2D;
    };
    // A row-sourced block is [B, embCols] already, and must reach the architecture as itself (TfOps knows it by identity).
    const block = emb.rank === 2 && emb.shape[0] === B && emb.shape[1] === this.embCols ? (emb as tf.Tensor2D) : (tf.reshape(emb, [B, this.embCols]) as tf.Tensor2D);
    const input = { dense: tf.tensor2d(b.dense, [B, this.spec.numDense]), emb: block };
    const out = this.arch.forward(this.ops, param, input, this.spec, this.hyper);
    return this.plain ? tf.reshape(out, [B]) : out;
  }

  /** The predictions from the outputs: a binary task's probability, a regression task's value. */
  private predictionsOf(logits: tf.Tensor): tf.Tensor {
    if (this.plain) return tf.sigmoid(logits);
    const [binary, regression] = this.lossMasks();
    return tf.add(tf.mul(tf.sigmoid(logits), binary), tf.mul(logits, regression));
  }

  /** Per task, 1 where its loss is binary cross-entropy (and the other 1 where it is squared error): [1, T] each. */
  private lossMasks(): [tf.Tensor2D, tf.Tensor2D] {
    const T = this.tasks.length;
    return [tf.tensor2d(this.tasks.map((t) => (t.loss === "bce" ? 1 : 0)), [1, T]), tf.tensor2d(this.tasks.map((t) => (t.loss === "mse" ? 1 : 0)), [1, T])];
  }

  /**
   * Each task's mean loss over the batch ([T]) and their weighted sum, for
   * outputs and labels [B, T]: binary cross-entropy on the logit of a bce
   * task, squared error of an mse task's value; each sample's loss times its
   * instance weight.
   */
  private multiTaskLoss(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor | null): { total: tf.Scalar; perTask: tf.Tensor1D } {
    const [binary, regression] = this.lossMasks();
    const bce = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
    const err = tf.sub(logits, labels);
    let loss = tf.add(tf.mul(bce, binary), tf.mul(tf.mul(err, err), regression));
    if (weights) loss = tf.mul(loss, tf.reshape(weights, [-1, 1]));
    const perTask = tf.mean(loss, 0) as tf.Tensor1D;
    const total = tf.sum(tf.mul(perTask, tf.tensor1d(this.tasks.map((t) => t.weight)))) as tf.Scalar;
    return { total, perTask };
  }

  private paramTensors(values: readonly Float32Array[]): tf.Tensor[] {
    return this.params.map((p, i) => tf.tensor(values[i]!, p.shape));
  }

  /**
   * Sum-pools each cell's rows into a [B * S, D] block, natively when the
   * addon is built (4x faster than this JS loop), not with tf.gather, whose
   * gradient (UnsortedSegmentSum) the wasm backend lacks.
   */
  private pool(rows: Float32Array, b: ModelBatch): Float32Array {
    if (this.uniformWidth === null) return this.poolRagged(rows, b);
    const D = this.uniformWidth;
    const out = new Float32Array(b.size * this.spec.numSlots * D);
    const inverse = b.inverse;
    const cellOf = b.cellOfValue;
    const native = nativeBlas().blas;
    if (native) {
      native.gatherRows(rows, D, inverse, cellOf, out);
      return this.scaleCells(out, b);
    }
    if (!cellOf) {
      // One value per cell (the common case): a plain copy, no accumulation.
      for (let v = 0, dst = 0; v < inverse.length; v++, dst += D) {
        const src = inverse[v]! * D;
        for (let k = 0; k < D; k++) out[dst + k] = rows[src + k]!;
      }
      return this.scaleCells(out, b);
    }
    for (let v = 0; v < inverse.length; v++) {
      const src = inverse[v]! * D;
      const dst = cellOf[v]! * D;
      for (let k = 0; k < D; k++) out[dst + k]! += rows[src + k]!;
    }
    return this.scaleCells(out, b);
  }

  /**
   * The pooled [B * S, D] block as a tensor. On wasm with the addon it is
   * pooled straight into the tensor's memory on the heap (no JS array and no
   * copy of 3.4 MB per DLRM Kaggle step, nor the garbage).
   */
  private pooledTensor(rows: Float32Array, b: ModelBatch): tf.Tensor2D {
    if (this.uniformWidth === null) return tf.tensor2d(this.poolRagged(rows, b), [b.size, this.embCols]);
    const D = this.uniformWidth;
    const cells = b.size * this.spec.numSlots;
    const native = nativeBlas().blas;
    if (!native) return tf.tensor2d(this.pool(rows, b), [cells, D]);
    return withOutput([cells, D], true, (view) => {
      native.gatherRows(rows, D, b.inverse, b.cellOfValue, view);
      this.scaleCells(view, b);
    });
  }

  /**
   * The pulled rows as a tensor [U, W] when slots' columns can be taken straight from them (see RowSource): on the
   * wasm heap with the addon, every slot as wide, one value a cell (no bags), nothing to scale. Null otherwise: the
   * pooled block is the input, as before.
   */
  private rowsTensor(rows: Float32Array, uniqueRows: number, b: ModelBatch): tf.Tensor2D | null {
    const W = this.uniformWidth;
    if (!this.rowsSourcing || W === null || !nativeBlas().blas || b.cellOfValue || this.pooling || this.spec.numSlots === 0 || uniqueRows === 0 || !wasmBackend()) return null;
    // Fewer rows than asked for, or a value count that is not examples x slots: the pooled path refuses the batch.
    if (rows.length < uniqueRows * W || b.inverse.length !== b.size * this.spec.numSlots) return null;
    return withOutput([uniqueRows, W], false, (out) => out.set(rows.subarray(0, uniqueRows * W)));
  }

  /**
   * The pooled block over a rows tensor, as an op (its gradient scatters into the rows, in unpool's order), and what
   * stands behind it. The block is allocated, and written only when an op reads it whole: DLRM's interaction does;
   * the other architectures take its columns straight from the rows.
   */
  private rowSource(rows: tf.Tensor2D, b: ModelBatch): RowSource {
    const native = nativeBlas().blas!;
    const W = this.uniformWidth!;
    const U = rows.shape[0];
    const inverse = b.inverse;
    const f = tf.customGrad(((r: tf.Tensor) => ({
      value: withOutput([b.size, this.embCols], false, () => {}),
      gradFunc: (dy: tf.Tensor) => [withOutput([U, W], true, (dr) => native.scatterAddRows(readFloats(dy), W, null, inverse, dr))],
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    const emb = f(rows) as tf.Tensor2D;
    let filled = false;
    const fill = () => {
      if (filled) return;
      filled = true;
      const view = readFloats(emb);
      view.fill(0);
      native.gatherRows(readFloats(rows), W, inverse, null, view);
    };
    return { emb, rows, inverse, S: this.spec.numSlots, W, fill };
  }

  /** The pooling's backward pass: each value's cell gradient is added to its row's. */
  private unpool(cellGrads: tf.Tensor, uniqueRows: number, b: ModelBatch): Float32Array {
    if (this.uniformWidth === null) return this.unpoolRagged(this.scaleCells((cellGrads.dataSync() as Float32Array).slice(), b), b);
    const D = this.uniformWidth;
    const out = new Float32Array(uniqueRows * D);
    const inverse = b.inverse;
    const cellOf = b.cellOfValue;
    const native = nativeBlas().blas;
    if (native) {
      // On wasm, read in place on the heap (nothing allocates until it returns).
      let src = readFloats(cellGrads);
      // A mean or sqrtn cell passes its rows the gradient times its factor (on a copy: the gradient tensor stays as it is).
      if (this.pooling) src = this.scaleCells(src.slice(), b);
      native.scatterAddRows(src, D, cellOf, inverse, out);
      return out;
    }
    let g = cellGrads.dataSync() as Float32Array;
    if (this.pooling) g = this.scaleCells(g.slice(), b);
    for (let v = 0; v < inverse.length; v++) {
      const dst = inverse[v]! * D;
      const src = (cellOf ? cellOf[v]! : v) * D;
      for (let k = 0; k < D; k++) out[dst + k]! += g[src + k]!;
    }
    return out;
  }

  /** Where value v's row starts, its width, and where its cell starts in the pooled [B, embCols] block, for slots of different widths. */
  private *raggedValues(b: ModelBatch): Generator<[src: number, width: number, dst: number]> {
    const offsets = b.rowOffsets;
    if (!offsets) throw new Error("a batch of slots with different row widths needs rowOffsets");
    const S = this.spec.numSlots;
    for (let v = 0; v < b.inverse.length; v++) {
      const cell = b.cellOfValue ? b.cellOfValue[v]! : v;
      const slot = cell % S;
      const u = b.inverse[v]!;
      yield [offsets[u]!, offsets[u + 1]! - offsets[u]!, ((cell - slot) / S) * this.embCols + this.slotAt[slot]!];
    }
  }

  /** Sum pooling of rows of per-slot widths into [B, embCols]: the path for mixed dims (no native kernel takes ragged rows). */
  private poolRagged(rows: Float32Array, b: ModelBatch): Float32Array {
    const out = new Float32Array(b.size * this.embCols);
    for (const [src, width, dst] of this.raggedValues(b)) for (let k = 0; k < width; k++) out[dst + k]! += rows[src + k]!;
    return this.scaleCells(out, b);
  }

  /**
   * Scales each cell of a pooled [B, embCols] block (or its gradient) by its
   * slot's pooling factor for the cell's number of values (mean: 1/n, sqrtn:
   * 1/sqrt(n)), in place; nothing when every slot sums or every cell holds
   * one value.
   */
  private scaleCells(block: Float32Array, b: ModelBatch): Float32Array {
    const pooling = this.pooling;
    if (!pooling || !b.cellOfValue) return block;
    const S = this.spec.numSlots;
    const counts = new Int32Array(b.size * S);
    for (const c of b.cellOfValue) counts[c]!++;
    for (let c = 0; c < counts.length; c++) {
      const slot = c % S;
      const f = poolingScale(pooling[slot]!, counts[c]!);
      if (f === 1) continue;
      const at = ((c - slot) / S) * this.embCols + this.slotAt[slot]!;
      for (let k = 0; k < this.rowWidths[slot]!; k++) block[at + k]! *= f;
    }
    return block;
  }

  /** Its backward pass: each value's cell gradient added to its row's. */
  private unpoolRagged(g: Float32Array, b: ModelBatch): Float32Array {
    const out = new Float32Array(b.rowOffsets![b.rowOffsets!.length - 1]!);
    for (const [src, width, dst] of this.raggedValues(b)) for (let k = 0; k < width; k++) out[src + k]! += g[dst + k]!;
    return out;
  }

  /**
   * The loss (each task's mean, optionally instance-weighted, loss times its
   * task weight, summed) and its gradients w.r.t. every dense parameter and
   * pulled row; with the architecture's dropout, the hidden layers dropped
   * out by `masks` (none without: the layers as they are). The predictions
   * are the step's own forward pass (dropped out too).
   */
  trainStep(values: readonly Float32Array[], rows: Float32Array, uniqueRows: number, b: ModelBatch, masks: DropoutMasks | null = null): StepOutput {
    let probs: tf.Tensor | null = null;
    let perTask: tf.Tensor | null = null;
    const T = this.tasks.length;
    this.ops.masks = masks;
    let out: { value: tf.Scalar; grads: tf.Tensor[] };
    let sourced = false;
    try {
      out = tf.tidy(() => {
        const rowsT = this.rowsTensor(rows, uniqueRows, b);
        sourced = rowsT !== null;
        const inputs = [...this.paramTensors(values), rowsT ?? this.pooledTensor(rows, b)];
        const labels = this.plain ? tf.tensor1d(b.labels) : tf.tensor2d(b.labels, [b.size, T]);
        const weights = b.weights ? tf.tensor1d(b.weights) : null;
        return tf.valueAndGrads((...xs: tf.Tensor[]) => {
          const last = xs[xs.length - 1]!;
          // Made inside the differentiated function: the pooled block's op must be on the tape.
          this.ops.rowSource = rowsT ? this.rowSource(last as tf.Tensor2D, b) : null;
          const logits = this.logits(xs.slice(0, -1), this.ops.rowSource?.emb ?? last, b);
          // The forward pass's predictions come for free: kept past the tidy for the streaming metrics.
          probs = tf.keep(this.predictionsOf(logits));
          if (!this.plain) {
            const l = this.multiTaskLoss(logits, labels, weights);
            perTask = tf.keep(l.perTask);
            return l.total;
          }
          // log(1 + e^-|l|) + max(l, 0) - l*y: the numerically stable form.
          const loss = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
          // Weighted samples: mean of weight x loss over the batch (Monolith's instance_weight).
          return tf.mean(weights ? tf.mul(loss, weights) : loss) as tf.Scalar;
        })(inputs);
      });
    } finally {
      this.ops.masks = null;
      this.ops.rowSource = null;
    }
    const loss = out.value.dataSync()[0]!;
    const kept = perTask as tf.Tensor | null;
    const taskLosses = kept ? Float32Array.from(kept.dataSync() as Float32Array) : Float32Array.of(loss);
    kept?.dispose();
    const denseGrads = out.grads.slice(0, -1).map((g) => g.dataSync() as Float32Array);
    const lastGrad = out.grads[out.grads.length - 1]!;
    // Row-sourced: the gradient is the rows' already ([U, W]); else the pooled block's, scattered to the rows.
    const rowGrads = sourced ? (lastGrad.dataSync() as Float32Array) : this.unpool(lastGrad, uniqueRows, b);
    out.value.dispose();
    for (const g of out.grads) g.dispose();
    const keptProbs = probs as tf.Tensor | null;
    // dataSync returns a copy on wasm, a view of the backend's array on cpu: a copy either way.
    const predictions = keptProbs ? Float32Array.from(keptProbs.dataSync() as Float32Array) : new Float32Array(0);
    keptProbs?.dispose();
    return { loss, taskLosses, denseGrads, rowGrads, predictions };
  }

  /** The predictions for a batch, [B, T] row-major: a binary task's probability, a regression task's value. */
  predict(values: readonly Float32Array[], rows: Float32Array, uniqueRows: number, b: ModelBatch): Float32Array {
    let probs: tf.Tensor;
    try {
      probs = tf.tidy(() => {
        const rowsT = this.rowsTensor(rows, uniqueRows, b);
        this.ops.rowSource = rowsT ? this.rowSource(rowsT, b) : null;
        return this.predictionsOf(this.logits(this.paramTensors(values), this.ops.rowSource?.emb ?? this.pooledTensor(rows, b), b));
      });
    } finally {
      this.ops.rowSource = null;
    }
    const data = probs.dataSync() as Float32Array;
    probs.dispose();
    return data;
  }
}
