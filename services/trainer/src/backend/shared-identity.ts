import { tf } from "./tfjs-core.js";

interface RefCounting {
  incRef(dataId: object): void;
}

let installed = false;

/**
 * Makes the wasm backend's Identity (tf.clone, and every tensor a custom
 * gradient saves for its backward pass) share the input's memory with a
 * reference count, as the cpu backend does and as wasm's own Reshape does,
 * instead of copying it. Tensors are immutable and no wasm kernel writes
 * into its inputs, so sharing is safe; the copies were 2-3% of a DLRM
 * training step (every dense layer saves its input and output).
 */
export function installSharedIdentity(): void {
  if (installed || tf.getBackend() !== "wasm") return;
  const original = tf.getKernel(tf.Identity, "wasm");
  if (!original) throw new Error("the wasm backend has no Identity kernel to replace");
  tf.unregisterKernel(tf.Identity, "wasm");
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: "wasm",
    kernelFunc: ((args: { inputs: { x: tf.TensorInfo }; backend: RefCounting }) => {
      const { x } = args.inputs;
      // Strings live outside the wasm heap; the original kernel handles them.
      if (x.dtype === "string") return (original.kernelFunc as unknown as (a: typeof args) => tf.TensorInfo)(args);
      args.backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    }) as unknown as tf.KernelFunc,
  });
  installed = true;
}
