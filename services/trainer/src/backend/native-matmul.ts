import { tf } from "./tfjs-core.js";
import { nativeBlas, type NativeBlas } from "@pangea/blas";
import { heapF32, heapIndex, type WasmBackend } from "./wasm-heap.js";

type KernelArgs = { inputs: Record<string, tf.TensorInfo | undefined>; backend: WasmBackend; attrs: Record<string, unknown> };

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/**
 * op(a) op(b) (+ bias) (relu) on the native BLAS, reading and writing the
 * wasm heap in place. Returns null for what it does not cover (non-float32,
 * batch dimensions that broadcast other than 1-against-n), which the
 * original wasm kernel then computes.
 */
function nativeProduct(blas: NativeBlas, args: KernelArgs, bias: tf.TensorInfo | null, relu: boolean): tf.TensorInfo | null {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const transA = Boolean(args.attrs.transposeA);
  const transB = Boolean(args.attrs.transposeB);
  if (a.dtype !== "float32" || b.dtype !== "float32" || (bias && bias.dtype !== "float32")) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = transB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (K !== Kb) {
    throw new Error(`Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transA} and transposeB=${transB} must match.`);
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = size(outerA);
  const batchB = size(outerB);
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  const outer = batchA >= batchB ? outerA : outerB;
  if (batchA === batchB && outerA.length !== outerB.length) return null;
  if (bias && size(bias.shape) !== N) return null;
  const out = args.backend.makeOutput([...outer, M, N], "float32");
  // The heap view is taken after the output's allocation, which may have grown the heap.
  const h = heapF32(args.backend);
  const at = (t: tf.TensorInfo) => heapIndex(args.backend, t);
  blas.gemm(
    transA, transB, M, N, K,
    h, at(a), h, at(b), h, at(out),
    Math.max(batchA, batchB), batchA === 1 ? 0 : M * K, batchB === 1 ? 0 : K * N, M * N,
    bias ? h : null, bias ? at(bias) : 0, 0, relu,
  );
  return out;
}

export interface NativeMatMulStatus {
  active: boolean;
  /** The BLAS build and thread count, or why the wasm kernels stay. */
  detail: string;
}

let active = false;

/** True once BatchMatMul runs natively: transpose flags are then free, so callers need not materialise transposes. */
export function nativeMatMulActive(): boolean {
  return active;
}

/**
 * Re-registers the wasm backend's BatchMatMul and _FusedMatMul kernels on
 * the native BLAS (OpenBLAS through @pangea/blas), keeping the originals for
 * the shapes the native path does not cover. The gradients of both ops are
 * matmuls too, so training runs on BLAS end to end. Call after the wasm
 * backend is selected; without the addon nothing changes.
 */
export function installNativeMatMul(threads: number): NativeMatMulStatus {
  if (tf.getBackend() !== "wasm") return { active: false, detail: `backend is '${tf.getBackend()}', not wasm` };
  const { blas, reason } = nativeBlas();
  if (!blas) return { active: false, detail: reason };
  blas.setThreads(threads);
  const detail = `${blas.config().split(" ").slice(0, 2).join(" ")}, ${blas.threads()} thread(s)`;
  // Installed once per process (the kernel registry is global); a later call only sets the threads.
  if (active) return { active, detail };
  const original = (name: string) => {
    const k = tf.getKernel(name, "wasm");
    if (!k) throw new Error(`the wasm backend has no ${name} kernel to replace`);
    tf.unregisterKernel(name, "wasm");
    return k.kernelFunc as unknown as (args: KernelArgs) => tf.TensorInfo;
  };
  const batchMatMul = original(tf.BatchMatMul);
  const fusedMatMul = original(tf._FusedMatMul);
  tf.registerKernel({
    kernelName: tf.BatchMatMul,
    backendName: "wasm",
    kernelFunc: ((args: KernelArgs) => nativeProduct(blas, args, null, false) ?? batchMatMul(args)) as unknown as tf.KernelFunc,
  });
  tf.registerKernel({
    kernelName: tf._FusedMatMul,
    backendName: "wasm",
    kernelFunc: ((args: KernelArgs) => {
      const activation = (args.attrs.activation as string | undefined) ?? "linear";
      if ((activation !== "linear" && activation !== "relu") || args.inputs.preluActivationWeights) return fusedMatMul(args);
      return nativeProduct(blas, args, args.inputs.bias ?? null, activation === "relu") ?? fusedMatMul(args);
    }) as unknown as tf.KernelFunc,
  });
  active = true;
  return { active, detail };
}
