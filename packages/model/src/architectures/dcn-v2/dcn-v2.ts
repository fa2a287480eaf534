import { z } from "zod";
import { denseAndSlotsWidth, mlp, mlpParams, taskCount, type Architecture, type DenseParam } from "../architecture.js";
import { MAX_LAYER_WIDTH, dropout, widths } from "../hyper.js";

const config = z
  .object({
    /** Cross layers x_{l+1} = x0 * (x_l W + b) + x_l. */
    crossLayers: z.number().int("expected crossLayers as a whole number").min(1, "expected at least one cross layer").max(16, "expected at most 16 cross layers").default(3),
    /** 0: a full d0 x d0 W per layer; r > 0: W = U V with U [d0, r], V [r, d0] (the low-rank cross layer). */
    lowRank: z.number().int("expected lowRank as a whole number").min(0, "expected lowRank >= 0 (0 = full rank)").max(MAX_LAYER_WIDTH, `expected lowRank of at most ${MAX_LAYER_WIDTH} (and below the cross width)`).default(0),
    /** parallel: the deep tower reads x0 beside the cross network; stacked: it reads the cross network's output. */
    structure: z.enum(["parallel", "stacked"], { message: 'expected structure "parallel" or "stacked"' }).default("parallel"),
    deepMlp: widths("deepMlp").default([64, 32]),
    /** After every deep-tower layer (the cross layers have none). */
    dropout: dropout(),
  })
  .strict();
export type DcnV2Config = z.infer<typeof config>;

/**
 * DCN-v2 (Wang et al. 2021): x0 = [dense, e_1 .. e_S], cross layers that
 * multiply x0 elementwise with a linear map of the previous layer, and a
 * deep tower beside them (parallel) or on top (stacked); one output layer
 * (a column per task).
 */
export const dcnV2: Architecture<DcnV2Config> = {
  name: "dcn-v2",
  summary: "cross network v2 (full or low-rank cross layers) with a deep tower, parallel or stacked",
  config,
  check(shape, c) {
    if (c.structure === "parallel" && c.deepMlp.length === 0) return 'dcn-v2 with structure "parallel" needs a deepMlp; for the cross network alone use structure "stacked" with an empty deepMlp';
    const d0 = denseAndSlotsWidth(shape);
    return c.lowRank >= d0 ? `dcn-v2's lowRank ${c.lowRank} must be below the cross width ${d0} (0 = full rank)` : null;
  },
  rowWidth: (dim) => dim,
  params(shape, c) {
    const d0 = denseAndSlotsWidth(shape);
    const out: DenseParam[] = [];
    for (let l = 0; l < c.crossLayers; l++) {
      if (c.lowRank > 0) out.push({ name: `cross.${l}.u`, shape: [d0, c.lowRank] }, { name: `cross.${l}.v`, shape: [c.lowRank, d0] });
      else out.push({ name: `cross.${l}.w`, shape: [d0, d0] });
      out.push({ name: `cross.${l}.b`, shape: [d0] });
    }
    const deepOut = mlpParams(out, "deep", d0, c.deepMlp);
    const logitIn = c.structure === "stacked" ? deepOut : d0 + deepOut;
    out.push({ name: "logit.w", shape: [logitIn, taskCount(shape)] }, { name: "logit.b", shape: [taskCount(shape)] });
    return out;
  },
  forward(ops, param, input, _shape, c) {
    const x0 = ops.concat([input.dense, input.emb]);
    let x = x0;
    for (let l = 0; l < c.crossLayers; l++) {
      const mapped =
        c.lowRank > 0
          ? ops.linear(ops.linear(x, param(`cross.${l}.u`), null, false), param(`cross.${l}.v`), param(`cross.${l}.b`), false)
          : ops.linear(x, param(`cross.${l}.w`), param(`cross.${l}.b`), false);
      x = ops.add(ops.mul(x0, mapped), x);
    }
    const layers = c.deepMlp.length;
    const h = c.structure === "stacked" ? mlp(ops, param, "deep", x, layers, c.dropout) : ops.concat([x, mlp(ops, param, "deep", x0, layers, c.dropout)]);
    return ops.linear(h, param("logit.w"), param("logit.b"), false);
  },
};
