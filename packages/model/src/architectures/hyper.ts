import { z } from "zod";

/** The widest layer a hyper-parameter may ask for. */
export const MAX_LAYER_WIDTH = 65_536;

/**
 * The dropout rate of an architecture's MLP towers, in [0, 1): inverted
 * dropout after each hidden ReLU layer, in training steps only (evaluation
 * and serving run the layers as they are). Left out or 0: none, and the
 * config reads as one without it (a training setting: not part of what a
 * model computes, so checkpoints and exports of any rate fit a model of any
 * other).
 */
export const dropout = () =>
  z
    .number({ message: "expected dropout as a rate in [0, 1)" })
    .min(0, "expected dropout >= 0")
    .lt(1, "expected dropout below 1 (the rate of units dropped)")
    .optional();

/** Layer widths: a list of positive integers, at most MAX_LAYER_WIDTH each. */
export const widths = (what: string) =>
  z.array(
    z
      .number({ message: `expected ${what} as a list of positive integers` })
      .int(`expected ${what} as whole numbers`)
      .positive(`expected ${what} as positive integers`)
      .max(MAX_LAYER_WIDTH, `expected ${what} widths of at most ${MAX_LAYER_WIDTH}`),
    { message: `expected ${what} as a list of positive integers, e.g. [64, 32]` },
  ).max(64, `expected ${what} of at most 64 layers`);
