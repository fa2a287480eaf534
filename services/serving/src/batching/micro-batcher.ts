import type { Examples, Servable } from "../model/servable.js";

interface Pending {
  servable: Servable;
  x: Examples;
  resolve(p: Float32Array): void;
  reject(e: unknown): void;
}

/**
 * Runs concurrent requests for the same model version as one forward pass:
 * requests queue until the window closes (0 = those already waiting when the
 * event loop comes round), then each version's requests are concatenated,
 * predicted together and split back. Fewer, larger passes amortise the
 * per-pass overhead under load; a lone request waits at most the window.
 */
export class MicroBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  batches = 0;
  examples = 0;
  /** Predict calls and their model-input bytes (dense values and ids), for the agent's load report. */
  requests = 0;
  inputBytes = 0;

  constructor(private readonly windowUs: number, private readonly maxExamples: number) {}

  /** The examples' predictions as Servable.predict gives them, [count, T]. */
  predict(servable: Servable, x: Examples): Promise<Float32Array> {
    this.requests++;
    this.inputBytes += x.dense.byteLength + x.idWords.byteLength;
    return new Promise((resolve, reject) => {
      this.queue.push({ servable, x, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      if (this.windowUs > 0) setTimeout(() => this.flush(), this.windowUs / 1000);
      else setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queue = this.queue;
    this.queue = [];
    const byVersion = new Map<Servable, Pending[]>();
    for (const p of queue) {
      const list = byVersion.get(p.servable) ?? [];
      list.push(p);
      byVersion.set(p.servable, list);
    }
    for (const [servable, all] of byVersion) {
      for (let i = 0; i < all.length; ) {
        const group: Pending[] = [];
        let n = 0;
        while (i < all.length && (group.length === 0 || n + all[i]!.x.count <= this.maxExamples)) {
          n += all[i]!.x.count;
          group.push(all[i++]!);
        }
        this.run(servable, group, n);
      }
    }
  }

  private run(servable: Servable, group: Pending[], n: number): void {
    try {
      const { numDense, numSlots } = servable.spec;
      let out: Float32Array;
      if (group.length === 1) out = servable.predict(group[0]!.x);
      else if (group.some((p) => p.x.cellOffsets)) out = servable.predict(concatCsr(group.map((p) => p.x), numDense, numSlots));
      else {
        const dense = new Float32Array(n * numDense);
        const idWords = new Uint32Array(n * numSlots * 2);
        let at = 0;
        for (const p of group) {
          dense.set(p.x.dense, at * numDense);
          idWords.set(p.x.idWords, at * numSlots * 2);
          at += p.x.count;
        }
        out = servable.predict({ count: n, dense, idWords });
      }
      this.batches++;
      this.examples += n;
      // Each example's T predictions sit together: a request's rows are one contiguous run.
      const T = servable.tasks.length;
      let at = 0;
      for (const p of group) {
        p.resolve(out.slice(at * T, (at + p.x.count) * T));
        at += p.x.count;
      }
    } catch (err) {
      for (const p of group) p.reject(err);
    }
  }
}

/** Several requests' examples as one, in the ragged (cell offsets) form. */
function concatCsr(parts: Examples[], numDense: number, numSlots: number): Examples {
  const count = parts.reduce((n, x) => n + x.count, 0);
  const nnz = parts.reduce((n, x) => n + x.idWords.length / 2, 0);
  const dense = new Float32Array(count * numDense);
  const idWords = new Uint32Array(nnz * 2);
  const cellOffsets = new Uint32Array(count * numSlots + 1);
  let e = 0;
  let v = 0;
  for (const x of parts) {
    dense.set(x.dense, e * numDense);
    idWords.set(x.idWords, v * 2);
    for (let c = 0; c < x.count * numSlots; c++) cellOffsets[e * numSlots + c + 1] = v + (x.cellOffsets ? x.cellOffsets[c + 1]! : c + 1);
    e += x.count;
    v += x.idWords.length / 2;
  }
  return { count, dense, idWords, cellOffsets };
}
