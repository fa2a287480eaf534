import { z } from "zod";
import { denseAndSlotsWidth, mlp, mlpParams, type Architecture, type DenseParam } from "../architecture.js";
import { dropout, widths } from "../hyper.js";
import { towerParams, towers } from "../towers.js";

const config = z
  .object({
    /** The shared ReLU layers over x = [dense, every slot's embedding]. */
    bottomMlp: widths("bottomMlp").min(1, "expected at least one bottomMlp layer").default([64, 32]),
    /** Each task's ReLU layers over the shared output; an output layer of width 1 follows. */
    towerMlp: widths("towerMlp").default([32]),
    /** After every bottom and tower layer. */
    dropout: dropout(),
  })
  .strict();
export type SharedBottomConfig = z.infer<typeof config>;

/**
 * Shared-bottom multi-task learning (Caruana 1997): one ReLU MLP over
 * x = [dense, e_1 .. e_S] that every task shares, then a tower per task
 * whose width-1 output is the task's column.
 */
export const sharedBottom: Architecture<SharedBottomConfig> = {
  name: "shared-bottom",
  summary: "one shared MLP over [dense, embeddings], then a tower per task",
  config,
  multiTask: true,
  check: () => null,
  rowWidth: (dim) => dim,
  params(shape, c) {
    const out: DenseParam[] = [];
    const last = mlpParams(out, "bottom", denseAndSlotsWidth(shape), c.bottomMlp);
    towerParams(out, shape, last, c.towerMlp);
    return out;
  },
  forward(ops, param, input, shape, c) {
    const h = mlp(ops, param, "bottom", ops.concat([input.dense, input.emb]), c.bottomMlp.length, c.dropout);
    return towers(ops, param, shape, c.towerMlp.length, () => h, c.dropout);
  },
};
