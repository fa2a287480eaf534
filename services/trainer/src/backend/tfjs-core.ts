import { createRequire } from "node:module";
import type * as Core from "@tensorflow/tfjs-core";

/**
 * @tensorflow/tfjs-core, loaded with require (see select-backend.ts: an
 * import has Node scan the CommonJS bundle for its export names at every
 * start). The namespace gives the types the trainer names as `tf.X`.
 */
export const tf: typeof Core = createRequire(import.meta.url)("@tensorflow/tfjs-core");

// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace tf {
  type Rank = Core.Rank;
  type Tensor<R extends Core.Rank = Core.Rank> = Core.Tensor<R>;
  type Scalar = Core.Scalar;
  type Tensor1D = Core.Tensor1D;
  type Tensor2D = Core.Tensor2D;
  type Tensor3D = Core.Tensor3D;
  type TensorInfo = Core.TensorInfo;
  type GradSaveFunc = Core.GradSaveFunc;
  type KernelFunc = Core.KernelFunc;
  type DataType = Core.DataType;
}
