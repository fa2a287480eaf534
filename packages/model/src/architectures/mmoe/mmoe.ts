import { z } from "zod";
import { denseAndSlotsWidth, mlpFrom, mlpParams, taskCount, type Architecture, type DenseParam } from "../architecture.js";
import { dropout, widths } from "../hyper.js";
import { towerParams, towers } from "../towers.js";

const config = z
  .object({
    numExperts: z.number().int("expected numExperts as a whole number").min(1, "expected at least one expert").max(64, "expected at most 64 experts").default(4),
    /** Every expert's ReLU layers over x = [dense, every slot's embedding]; all experts alike. */
    expertMlp: widths("expertMlp").min(1, "expected at least one expertMlp layer").default([64, 32]),
    /** Each task's ReLU layers over its mixture of the experts; an output layer of width 1 follows. */
    towerMlp: widths("towerMlp").default([32]),
    /** After every expert and tower layer. */
    dropout: dropout(),
  })
  .strict();
export type MmoeConfig = z.infer<typeof config>;

/**
 * MMoE (Ma et al. 2018, Multi-gate Mixture-of-Experts): E expert MLPs
 * over x = [dense, e_1 .. e_S]; per task a gate, softmax(x W_t + b_t) over
 * the experts, mixes their outputs into the input of that task's tower,
 * whose width-1 output is the task's column.
 */
export const mmoe: Architecture<MmoeConfig> = {
  name: "mmoe",
  summary: "multi-gate mixture of experts: shared expert MLPs, a softmax gate and a tower per task",
  config,
  multiTask: true,
  check: () => null,
  rowWidth: (dim) => dim,
  params(shape, c) {
    const d0 = denseAndSlotsWidth(shape);
    const out: DenseParam[] = [];
    let expertOut = d0;
    for (let e = 0; e < c.numExperts; e++) expertOut = mlpParams(out, `expert.${e}`, d0, c.expertMlp);
    for (let t = 0; t < taskCount(shape); t++) out.push({ name: `gate.${t}.w`, shape: [d0, c.numExperts] }, { name: `gate.${t}.b`, shape: [c.numExperts] });
    towerParams(out, shape, expertOut, c.towerMlp);
    return out;
  },
  forward(ops, param, input, shape, c) {
    const x = ops.concat([input.dense, input.emb]);
    const E = c.numExperts;
    // Every expert's first layer and every task's gate read x: one product.
    const first = ops.linears(x, [
      ...Array.from({ length: E }, (_, e) => ({ w: param(`expert.${e}.0.w`), b: param(`expert.${e}.0.b`), relu: true })),
      ...Array.from({ length: taskCount(shape) }, (_, t) => ({ w: param(`gate.${t}.w`), b: param(`gate.${t}.b`), relu: false })),
    ]);
    const experts = first.slice(0, E).map((h, e) => mlpFrom(ops, param, `expert.${e}`, h, c.expertMlp.length, c.dropout));
    return towers(ops, param, shape, c.towerMlp.length, (t) => ops.mixture(ops.softmax(first[E + t]!), experts), c.dropout);
  },
};
