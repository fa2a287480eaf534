import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { selectBackend } from "../src/backend/select-backend.js";

interface WasmInternals {
  dataIdMap: { get(dataId: object): { memoryOffset: number; refCount: number }; has(dataId: object): boolean };
}

describe("wasm Identity shares memory instead of copying", () => {
  it("a clone is the same memory, outlives its source, and is freed with the last reference", async () => {
    await selectBackend("wasm");
    const backend = tf.backend() as unknown as WasmInternals;
    const before = tf.memory().numBytes;
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const y = tf.clone(x);
    expect(backend.dataIdMap.get(y.dataId)!.memoryOffset).toBe(backend.dataIdMap.get(x.dataId)!.memoryOffset);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    y.dispose();
    expect(backend.dataIdMap.has(y.dataId)).toBe(false);
    expect(tf.memory().numBytes).toBe(before);
    // Ops on a clone read the shared memory and leave the source untouched.
    const a = tf.tensor1d([1, -2, 3]);
    const b = tf.relu(tf.clone(a));
    expect(Array.from(b.dataSync())).toEqual([1, 0, 3]);
    expect(Array.from(a.dataSync())).toEqual([1, -2, 3]);
  });

  it("custom gradients that save their inputs still differentiate correctly", async () => {
    await selectBackend("wasm");
    const f = tf.customGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
      const y = tf.mul(x, x);
      save([x]);
      return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, tf.mul(saved[0]!, 2))] };
    });
    const g = tf.grad((x: tf.Tensor) => tf.sum(f(x) as tf.Tensor))(tf.tensor1d([1, 2, -3]));
    expect(Array.from(g.dataSync())).toEqual([2, 4, -6]);
  });
});
