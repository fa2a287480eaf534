import { z } from "zod";
import { mlp, mlpParams, taskCount, type Architecture, type DenseParam } from "../architecture.js";
import { dropout, widths } from "../hyper.js";

const config = z
  .object({
    /** Over the dense features; the last width must be the embedding dim, to meet the embeddings. */
    bottomMlp: widths("bottomMlp").min(1, "expected at least one bottomMlp layer").default([64, 16]),
    /** Over the interaction; an output layer (one column per task) follows. */
    topMlp: widths("topMlp").default([64, 32]),
    /** After every bottom and top MLP layer. */
    dropout: dropout(),
  })
  .strict();
export type DlrmConfig = z.infer<typeof config>;

/**
 * DLRM: a bottom MLP over the dense features, the dot products of every
 * pair of (its output, one embedding per slot), and a top MLP over
 * [bottom output, dots]. Every slot has the same width, which the bottom
 * MLP ends in.
 */
export const dlrm: Architecture<DlrmConfig> = {
  name: "dlrm",
  summary: "bottom MLP, pairwise dot interaction of the slot embeddings, top MLP",
  config,
  check(shape, c) {
    const last = c.bottomMlp[c.bottomMlp.length - 1];
    return last === shape.embeddingDim ? null : `dlrm's bottomMlp must end in the embedding dim ${shape.embeddingDim}, ends in ${last}`;
  },
  oneDim: "its dot products pair every slot with every other and with the bottom MLP's output",
  rowWidth: (dim) => dim,
  params(shape, c) {
    const out: DenseParam[] = [];
    mlpParams(out, "bottom", shape.numDense, c.bottomMlp);
    const n = shape.numSlots + 1;
    const last = mlpParams(out, "top", shape.embeddingDim + (n * (n - 1)) / 2, c.topMlp);
    out.push({ name: "top.logit.w", shape: [last, taskCount(shape)] }, { name: "top.logit.b", shape: [taskCount(shape)] });
    return out;
  },
  forward(ops, param, input, shape, c) {
    const x = mlp(ops, param, "bottom", input.dense, c.bottomMlp.length, c.dropout);
    const h = mlp(ops, param, "top", ops.dotInteraction(x, input.emb, shape.numSlots, shape.embeddingDim), c.topMlp.length, c.dropout);
    return ops.linear(h, param("top.logit.w"), param("top.logit.b"), false);
  },
};
