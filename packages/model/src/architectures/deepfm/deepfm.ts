import { z } from "zod";
import type { Architecture } from "../architecture.js";
import { FIRST_ORDER_COLUMNS, deepPart, linearAndDeepParams, linearPart, vectors } from "../first-order.js";
import { dropout, widths } from "../hyper.js";

const config = z.object({ deepMlp: widths("deepMlp").default([64, 32]), dropout: dropout() }).strict();
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
  params: (shape, c) => linearAndDeepParams("linear", shape, c.deepMlp),
  forward(ops, param, input, shape, c) {
    const v = vectors(ops, input, shape);
    const first = linearPart(ops, param, "linear", input, shape);
    const deep = deepPart(ops, param, input, v, c.deepMlp.length, c.dropout);
    return ops.add(ops.add(first, ops.fmInteraction(v, shape.numSlots, shape.embeddingDim)), deep);
  },
};
