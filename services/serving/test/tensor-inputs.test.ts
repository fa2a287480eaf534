import { describe, expect, it } from "vitest";
import { examplesFrom, type TensorProtoMsg } from "../src/api/tensors.js";
import { SPEC } from "./support/versions.js";

const ids: TensorProtoMsg = { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: SPEC.numSlots }] }, uint64_val: BigUint64Array.of(65537n) };
const dense = (t: Partial<TensorProtoMsg>): TensorProtoMsg => ({ tensor_shape: { dim: [{ size: 1 }, { size: SPEC.numDense }] }, ...t });

describe("gRPC dense_features whose dtype and values disagree", () => {
  it("names the field the values are in and the one the dtype takes", () => {
    expect(() => examplesFrom({ dense_features: dense({ dtype: "DT_DOUBLE", float_val: Float32Array.of(0.1, 0.2) }), feature_ids: ids }, SPEC, 64)).toThrow(
      "input dense_features: 0 values in double_val, shape [1, 2] needs 2 (the values are in float_val: a DT_DOUBLE tensor takes double_val)",
    );
    expect(() => examplesFrom({ dense_features: dense({ dtype: "DT_FLOAT", double_val: Float64Array.of(0.1, 0.2) }), feature_ids: ids }, SPEC, 64)).toThrow("(the values are in double_val: a DT_FLOAT tensor takes float_val)");
    expect(() => examplesFrom({ dense_features: dense({ dtype: "DT_INT32" }), feature_ids: ids }, SPEC, 64)).toThrow("input dense_features must be DT_FLOAT (or DT_DOUBLE), got DT_INT32");
    expect(examplesFrom({ dense_features: dense({ dtype: "DT_DOUBLE", double_val: Float64Array.of(0.1, 0.2) }), feature_ids: ids }, SPEC, 64).count).toBe(1);
  });
});
