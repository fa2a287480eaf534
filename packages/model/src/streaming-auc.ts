import { auc } from "./metrics.js";

/**
 * Progressive-validation AUC: each batch is scored by the model before its
 * update, and the AUC is taken over the last `window` scored samples, so it
 * follows training as it goes (Monolith reports a streaming AUC the same
 * way). Kept in a ring buffer; computing it sorts the window.
 */
export class StreamingAuc {
  private readonly p: Float32Array;
  private readonly y: Uint8Array;
  private next = 0;
  private filled = 0;

  constructor(readonly window = 16_384) {
    this.p = new Float32Array(window);
    this.y = new Uint8Array(window);
  }

  add(predictions: ArrayLike<number>, labels: ArrayLike<number>): void {
    for (let i = 0; i < predictions.length; i++) {
      this.p[this.next] = predictions[i]!;
      this.y[this.next] = labels[i]! > 0.5 ? 1 : 0;
      this.next = (this.next + 1) % this.window;
      if (this.filled < this.window) this.filled++;
    }
  }

  /** AUC of the window (NaN until it holds both classes). */
  auc(): number {
    return auc(this.p.subarray(0, this.filled), this.y.subarray(0, this.filled));
  }

  get size(): number {
    return this.filled;
  }
}
