import * as tf from "@tensorflow/tfjs-core";
import { architectureOf, denseParams, hyperParams, rowWidth, type Architecture, type DenseParam, type ModelSpec } from "@pangea/model";
import { nativeBlas } from "@pangea/blas";
import { TfOps } from "./tf-ops.js";
import { heapF32, heapIndex, wasmBackend } from "../backend/wasm-heap.js";

/** One batch in the form the model consumes. */
export interface ModelBatch {
  size: number;
  /** [size, numDense] */
  dense: Float32Array;
  /** [size], 0/1; unused by predict. */
  labels: Float32Array;
  /** [size] loss weights, or null for all 1; unused by predict. */
  weights?: Float32Array | null;
  /** For each feature value, the row of its id among the pulled unique rows. */
  inverse: Int32Array;
  /** For each feature value, its cell (sample * S + slot); null when every cell has exactly one value. */
  cellOfValue: Int32Array | null;
}

export interface StepOutput {
  loss: number;
  denseGrads: Float32Array[];
  /** [uniqueRows, dim]: gradient of the mean loss w.r.t. each pulled row. */
  rowGrads: Float32Array;
  /** The batch's click probabilities before this step's update (progressive validation). */
  predictions: Float32Array;
}

/**
 * The job's architecture (see @pangea/model) with sigmoid cross-entropy, as
 * a pure function of the dense parameters and the pulled embedding rows; the
 * parameter server owns the state, the trainer only computes.
 */
export class CtrModel {
  readonly params: DenseParam[];
  /** The width of a pulled row: the embedding dim, plus the architecture's per-id extras. */
  readonly rowWidth: number;
  private readonly arch: Architecture<any>;
  private readonly hyper: Record<string, unknown>;
  private readonly index: Map<string, number>;
  private readonly ops = new TfOps();

  constructor(readonly spec: ModelSpec) {
    this.params = denseParams(spec);
    this.rowWidth = rowWidth(spec);
    this.arch = architectureOf(spec);
    this.hyper = hyperParams(spec);
    this.index = new Map(this.params.map((p, i) => [p.name, i]));
  }

  private logits(p: tf.Tensor[], emb: tf.Tensor, b: ModelBatch): tf.Tensor1D {
    const B = b.size;
    const param = (name: string) => {
      const t = p[this.index.get(name)!]!;
      return (t.rank === 1 ? tf.reshape(t, [1, t.shape[0]!]) : t) as tf.Tensor2D;
    };
    const input = { dense: tf.tensor2d(b.dense, [B, this.spec.numDense]), emb: tf.reshape(emb, [B, this.spec.numSlots * this.rowWidth]) as tf.Tensor2D };
    return tf.reshape(this.arch.forward(this.ops, param, input, this.spec, this.hyper), [B]);
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
    const D = this.rowWidth;
    const out = new Float32Array(b.size * this.spec.numSlots * D);
    const inverse = b.inverse;
    const cellOf = b.cellOfValue;
    const native = nativeBlas().blas;
    if (native) {
      native.gatherRows(rows, D, inverse, cellOf, out);
      return out;
    }
    if (!cellOf) {
      // One value per cell (the common case): a plain copy, no accumulation.
      for (let v = 0, dst = 0; v < inverse.length; v++, dst += D) {
        const src = inverse[v]! * D;
        for (let k = 0; k < D; k++) out[dst + k] = rows[src + k]!;
      }
      return out;
    }
    for (let v = 0; v < inverse.length; v++) {
      const src = inverse[v]! * D;
      const dst = cellOf[v]! * D;
      for (let k = 0; k < D; k++) out[dst + k]! += rows[src + k]!;
    }
    return out;
  }

  /**
   * The pooled [B * S, D] block as a tensor. On wasm with the addon it is
   * pooled straight into the tensor's memory on the heap (no JS array and no
   * copy of 3.4 MB per DLRM Kaggle step, nor the garbage).
   */
  private pooledTensor(rows: Float32Array, b: ModelBatch): tf.Tensor2D {
    const D = this.rowWidth;
    const cells = b.size * this.spec.numSlots;
    const wasm = wasmBackend();
    const native = nativeBlas().blas;
    if (!wasm || !native) return tf.tensor2d(this.pool(rows, b), [cells, D]);
    const info = wasm.makeOutput([cells, D], "float32");
    const at = heapIndex(wasm, info);
    const view = heapF32(wasm).subarray(at, at + cells * D);
    view.fill(0);
    native.gatherRows(rows, D, b.inverse, b.cellOfValue, view);
    return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
  }

  /** The pooling's backward pass: each value's cell gradient is added to its row's. */
  private unpool(cellGrads: tf.Tensor, uniqueRows: number, b: ModelBatch): Float32Array {
    const D = this.rowWidth;
    const out = new Float32Array(uniqueRows * D);
    const inverse = b.inverse;
    const cellOf = b.cellOfValue;
    const native = nativeBlas().blas;
    const wasm = wasmBackend();
    if (native) {
      // On wasm, read in place on the heap (nothing allocates until it returns).
      let src: Float32Array;
      if (wasm) {
        const at = heapIndex(wasm, cellGrads);
        src = heapF32(wasm).subarray(at, at + cellGrads.size);
      } else src = cellGrads.dataSync() as Float32Array;
      native.scatterAddRows(src, D, cellOf, inverse, out);
      return out;
    }
    const g = cellGrads.dataSync() as Float32Array;
    for (let v = 0; v < inverse.length; v++) {
      const dst = inverse[v]! * D;
      const src = (cellOf ? cellOf[v]! : v) * D;
      for (let k = 0; k < D; k++) out[dst + k]! += g[src + k]!;
    }
    return out;
  }

  /** Mean (optionally weighted) sigmoid cross-entropy, and its gradients w.r.t. every dense parameter and pulled row. */
  trainStep(values: readonly Float32Array[], rows: Float32Array, uniqueRows: number, b: ModelBatch): StepOutput {
    let probs: tf.Tensor | null = null;
    const out = tf.tidy(() => {
      const inputs = [...this.paramTensors(values), this.pooledTensor(rows, b)];
      const labels = tf.tensor1d(b.labels);
      const weights = b.weights ? tf.tensor1d(b.weights) : null;
      return tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const logits = this.logits(xs.slice(0, -1), xs[xs.length - 1]!, b);
        // The forward pass's probabilities come for free: kept past the tidy for the streaming AUC.
        probs = tf.keep(tf.sigmoid(logits));
        // log(1 + e^-|l|) + max(l, 0) - l*y: the numerically stable form.
        const loss = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
        // Weighted samples: mean of weight x loss over the batch (Monolith's instance_weight).
        return tf.mean(weights ? tf.mul(loss, weights) : loss) as tf.Scalar;
      })(inputs);
    });
    const loss = out.value.dataSync()[0]!;
    const denseGrads = out.grads.slice(0, -1).map((g) => g.dataSync() as Float32Array);
    const rowGrads = this.unpool(out.grads[out.grads.length - 1]!, uniqueRows, b);
    out.value.dispose();
    for (const g of out.grads) g.dispose();
    const kept = probs as tf.Tensor | null;
    // dataSync returns a copy on wasm, a view of the backend's array on cpu: a copy either way.
    const predictions = kept ? Float32Array.from(kept.dataSync() as Float32Array) : new Float32Array(0);
    kept?.dispose();
    return { loss, denseGrads, rowGrads, predictions };
  }

  /** Click probabilities for a batch. */
  predict(values: readonly Float32Array[], rows: Float32Array, uniqueRows: number, b: ModelBatch): Float32Array {
    void uniqueRows;
    const probs = tf.tidy(() => tf.sigmoid(this.logits(this.paramTensors(values), this.pooledTensor(rows, b), b)));
    const data = probs.dataSync() as Float32Array;
    probs.dispose();
    return data;
  }
}
