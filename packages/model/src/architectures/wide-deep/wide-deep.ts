import { z } from "zod";
import { mlp, mlpParams, type Architecture, type DenseParam } from "../architecture.js";
import { FIRST_ORDER_COLUMNS, firstOrder, vectors, vectorsWidth } from "../first-order.js";
import { widths } from "../hyper.js";

const config = z.object({ deepMlp: widths("deepMlp").default([64, 32]) }).strict();
export type WideDeepConfig = z.infer<typeof config>;

/**
 * Wide & Deep (Cheng et al. 2016): a wide linear model (a weight per sparse
 * id, plus a linear map of the dense features) and a deep tower over
 * [dense, slot vectors]; their logits add.
 */
export const wideDeep: Architecture<WideDeepConfig> = {
  name: "wide-deep",
  summary: "wide linear part over the sparse ids and dense features + deep tower",
  config,
  check: () => null,
  rowWidth: (dim) => dim + FIRST_ORDER_COLUMNS,
  params(shape, c) {
    const out: DenseParam[] = [{ name: "wide.w", shape: [shape.numDense, 1] }, { name: "wide.b", shape: [1] }];
    const last = mlpParams(out, "deep", shape.numDense + vectorsWidth(shape), c.deepMlp);
    out.push({ name: "deep.logit.w", shape: [last, 1] }, { name: "deep.logit.b", shape: [1] });
    return out;
  },
  forward(ops, param, input, shape, c) {
    const wide = ops.add(ops.linear(input.dense, param("wide.w"), param("wide.b"), false), firstOrder(ops, input, shape));
    const deep = ops.linear(mlp(ops, param, "deep", ops.concat([input.dense, vectors(ops, input, shape)]), c.deepMlp.length), param("deep.logit.w"), param("deep.logit.b"), false);
    return ops.add(wide, deep);
  },
};
