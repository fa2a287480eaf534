import { createRequire } from "node:module";
import { refreshStatBuffer } from "@pangea/kit";
import { dirname, join } from "node:path";
import { tf } from "./tfjs-core.js";
import { TrainerErrors } from "../errors.js";
import { installNativeMatMul } from "./native-matmul.js";
import { installSharedIdentity } from "./shared-identity.js";

export type BackendPreference = "auto" | "tensorflow" | "wasm" | "cpu";

// TensorFlow.js's packages are CommonJS bundles: loaded with require, not
// import, because an import of one has Node scan its source (and the
// bundles it re-exports) for export names, about 100 ms of every trainer's
// start. Both ways load the same module instances.
const require = createRequire(import.meta.url);
// tfjs-core ships its gradient definitions only in the umbrella package's bundle;
// loading it registers them (the registries are process-global).
require("@tensorflow/tfjs");

/**
 * Picks the fastest TensorFlow.js backend this machine can load: the native
 * one (@tensorflow/tfjs-node-gpu, then tfjs-node; optional packages, since
 * their install downloads libtensorflow), else WebAssembly with its matrix
 * products on the native BLAS when built ("wasm+blas", `blasThreads`
 * threads), else WebAssembly, else plain JS.
 * An explicitly requested backend that cannot load is an error, not a
 * silent fallback.
 */
export async function selectBackend(preference: BackendPreference, blasThreads = 1): Promise<{ name: string; detail: string }> {
  const tried: string[] = [];
  // The backends below are loaded on demand.
  refreshStatBuffer();
  if (preference === "auto" || preference === "tensorflow") {
    for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
      try {
        require(pkg);
        if (await tf.setBackend("tensorflow")) return { name: "tensorflow", detail: pkg };
        tried.push(`${pkg}: loaded but the 'tensorflow' backend did not initialise`);
      } catch (err) {
        tried.push(`${pkg}: ${(err as Error).message.split("\n")[0]}`);
      }
    }
    if (preference === "tensorflow") {
      throw TrainerErrors.create("TRAINER_ERR_BACKEND", `backend 'tensorflow' requested but not loadable (${tried.join("; ")})`);
    }
  }
  if (preference === "auto" || preference === "wasm") {
    try {
      const wasm = require("@tensorflow/tfjs-backend-wasm") as typeof import("@tensorflow/tfjs-backend-wasm");
      const distDir = dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
      wasm.setWasmPaths(`${distDir}/`);
      // Node runs the wasm backend on one thread; SIMD is used when present.
      if (await tf.setBackend("wasm")) {
        installSharedIdentity();
        // Matrix products go to the native BLAS when its addon is built here.
        const blas = installNativeMatMul(blasThreads);
        return blas.active
          ? { name: "wasm+blas", detail: `matmuls on ${blas.detail}; other ops on ${join(distDir, "tfjs-backend-wasm-simd.wasm")}` }
          : { name: "wasm", detail: `${join(distDir, "tfjs-backend-wasm-simd.wasm")} (native BLAS: ${blas.detail})` };
      }
      tried.push("wasm: backend did not initialise");
    } catch (err) {
      tried.push(`wasm: ${(err as Error).message.split("\n")[0]}`);
    }
    if (preference === "wasm") throw TrainerErrors.create("TRAINER_ERR_BACKEND", `backend 'wasm' requested but not loadable (${tried.join("; ")})`);
  }
  require("@tensorflow/tfjs-backend-cpu");
  if (!(await tf.setBackend("cpu"))) throw TrainerErrors.create("TRAINER_ERR_BACKEND", `no backend could be initialised (${tried.join("; ")})`);
  return { name: "cpu", detail: tried.length ? `fallback after: ${tried.join("; ")}` : "requested" };
}
