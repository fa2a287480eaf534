import { tf } from "./tfjs-core.js";

/** What the wasm backend keeps per tensor: its place on the WebAssembly heap. */
export interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

let heap: { buffer: ArrayBufferLike; view: Float32Array } | null = null;

/**
 * One Float32Array over the whole heap, renewed when the heap grows (growth
 * detaches the old buffer): take it after the last allocation of a kernel.
 */
export function heapF32(backend: WasmBackend): Float32Array {
  const buffer = backend.wasm.HEAPU8.buffer;
  if (!heap || heap.buffer !== buffer) heap = { buffer, view: new Float32Array(buffer) };
  return heap.view;
}

/** A float32 tensor's first element's index in heapF32. */
export function heapIndex(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset >>> 2;
}

/** The active backend when it is wasm (kernels that read and write its heap in place), else null. */
export function wasmBackend(): WasmBackend | null {
  return tf.getBackend() === "wasm" ? (tf.backend() as unknown as WasmBackend) : null;
}

/**
 * A new [rows, cols] float32 tensor written by `fill`: on wasm straight into
 * its place on the heap (making a tensor from a JS array costs a copy that
 * took longer than the op itself), else through a JS array. `zeroed`: the
 * values start at 0 (heap memory is reused, not cleared).
 */
export function withOutput(shape: [number, number], zeroed: boolean, fill: (out: Float32Array) => void): tf.Tensor2D {
  const wasm = wasmBackend();
  const n = shape[0] * shape[1];
  if (!wasm) {
    const out = new Float32Array(n);
    fill(out);
    return tf.tensor2d(out, shape);
  }
  const info = wasm.makeOutput(shape, "float32");
  // Views are taken after the allocation: growing the heap detaches earlier ones.
  const at = heapIndex(wasm, info);
  const out = heapF32(wasm).subarray(at, at + n);
  if (zeroed) out.fill(0);
  fill(out);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}

/** A float32 tensor's values to read now: in place on the wasm heap (valid until the next allocation), else a copy. */
export function readFloats(t: tf.Tensor): Float32Array {
  const wasm = wasmBackend();
  if (wasm && t.dtype === "float32") {
    const at = heapIndex(wasm, t);
    return heapF32(wasm).subarray(at, at + t.size);
  }
  return t.dataSync() as Float32Array;
}
