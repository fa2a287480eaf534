import { z } from "zod";
import { mlp, mlpParams, type Architecture, type DenseParam } from "../architecture.js";
import { FIRST_ORDER_COLUMNS, firstOrder, vectors, vectorsWidth } from "../first-order.js";
import { widths } from "../hyper.js";

const config = z.object({ deepMlp: widths("deepMlp").default([64, 32]) }).strict();
export type DeepFmConfig = z.infer<typeof config>;

/**
 * DeepFM (Guo et al. 2017): a first-order part (a weight per id, plus a
 * linear map of the dense features), the factorization machine's pairwise
 * term over the slot vectors, and a deep tower over [dense, vectors]; their
 * logits add.
 */
export const deepfm: Architecture<DeepFmConfig> = {
  name: "deepfm",
  summary: "first-order weights + factorization-machine pairs + deep tower over the same embeddings",
  config,
  check: () => null,
  oneDim: "its factorization machine takes the dot product of every pair of slots",
  rowWidth: (dim) => dim + FIRST_ORDER_COLUMNS,
  params(shape, c) {
    const out: DenseParam[] = [{ name: "linear.w", shape: [shape.numDense, 1] }, { name: "linear.b", shape: [1] }];
    const last = mlpParams(out, "deep", shape.numDense + vectorsWidth(shape), c.deepMlp);
    out.push({ name: "deep.logit.w", shape: [last, 1] }, { name: "deep.logit.b", shape: [1] });
    return out;
  },
  forward(ops, param, input, shape, c) {
    const v = vectors(ops, input, shape);
    const first = ops.add(ops.linear(input.dense, param("linear.w"), param("linear.b"), false), firstOrder(ops, input, shape));
    const deep = ops.linear(mlp(ops, param, "deep", ops.concat([input.dense, v]), c.deepMlp.length), param("deep.logit.w"), param("deep.logit.b"), false);
    return ops.add(ops.add(first, ops.fmInteraction(v, shape.numSlots, shape.embeddingDim)), deep);
  },
};
