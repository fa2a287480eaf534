import { z } from "zod";
import type { Architecture } from "../architecture.js";
import { FIRST_ORDER_COLUMNS, deepPart, linearAndDeepParams, linearPart, vectors } from "../first-order.js";
import { dropout, widths } from "../hyper.js";

const config = z.object({ deepMlp: widths("deepMlp").default([64, 32]), dropout: dropout() }).strict();
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
  params: (shape, c) => linearAndDeepParams("wide", shape, c.deepMlp),
  forward(ops, param, input, shape, c) {
    const wide = linearPart(ops, param, "wide", input, shape);
    const deep = deepPart(ops, param, input, vectors(ops, input, shape), c.deepMlp.length, c.dropout);
    return ops.add(wide, deep);
  },
};
