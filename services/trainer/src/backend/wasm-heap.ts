import * as tf from "@tensorflow/tfjs-core";

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
