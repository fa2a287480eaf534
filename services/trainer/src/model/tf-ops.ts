import * as tf from "@tensorflow/tfjs-core";
import type { Ops } from "@pangea/model";
import { dense } from "./dense-layer.js";
import { interactionFeatures, upperTriangleIndex } from "./interaction.js";

/**
 * Ops on TensorFlow.js: what the trainer runs an architecture with, inside
 * tf.valueAndGrads. Linear layers and DLRM's interaction have hand-written
 * gradients (fast on the native kernels and on plain wasm, see dense-layer
 * and interaction); the rest are tfjs ops with its own gradients.
 */
export class TfOps implements Ops<tf.Tensor2D> {
  /** DLRM's upper-triangle indexes by slot count (kept: they outlive the tidy of a step). */
  private readonly triangles = new Map<number, tf.Tensor1D>();

  linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor2D | null, relu: boolean): tf.Tensor2D {
    if (b) return dense(x, w, tf.reshape(b, [w.shape[1]]) as tf.Tensor1D, relu);
    const y: tf.Tensor2D = tf.matMul(x, w);
    return relu ? tf.relu(y) : y;
  }

  concat(xs: readonly tf.Tensor2D[]): tf.Tensor2D {
    return tf.concat(xs as tf.Tensor2D[], 1);
  }

  add(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
    return tf.add(a, b);
  }

  mul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
    return tf.mul(a, b);
  }

  dotInteraction(x: tf.Tensor2D, emb: tf.Tensor2D, S: number, D: number): tf.Tensor2D {
    let tri = this.triangles.get(S);
    if (!tri) this.triangles.set(S, (tri = tf.keep(tf.tensor1d(upperTriangleIndex(S + 1), "int32"))));
    return interactionFeatures(x, tf.reshape(emb, [x.shape[0], S, D]), tri);
  }

  slotColumns(emb: tf.Tensor2D, rowWidths: readonly number[], from: number, take: readonly number[]): tf.Tensor2D {
    const B = emb.shape[0];
    const S = rowWidths.length;
    const W = rowWidths[0]!;
    const width = take[0]!;
    // Every slot alike: one slice of the [B, S, W] view.
    if (rowWidths.every((w) => w === W) && take.every((t) => t === width)) return tf.reshape(tf.slice(tf.reshape(emb, [B, S, W]), [0, 0, from], [B, S, width]), [B, S * width]);
    const parts: tf.Tensor2D[] = [];
    let at = 0;
    rowWidths.forEach((w, s) => {
      parts.push(tf.slice(emb, [0, at + from], [B, take[s]!]));
      at += w;
    });
    return tf.concat(parts, 1);
  }

  sumSlots(x: tf.Tensor2D, S: number, width: number): tf.Tensor2D {
    return tf.sum(tf.reshape(x, [x.shape[0], S, width]), 1);
  }

  fmInteraction(v: tf.Tensor2D, S: number, D: number): tf.Tensor2D {
    const v3 = tf.reshape(v, [v.shape[0], S, D]);
    const sum = tf.sum(v3, 1);
    const squares = tf.sum(tf.square(v3), 1);
    return tf.mul(tf.sum(tf.sub(tf.square(sum), squares), 1, true), 0.5);
  }
}
