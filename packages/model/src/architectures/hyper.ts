import { z } from "zod";

/** The widest layer a hyper-parameter may ask for. */
export const MAX_LAYER_WIDTH = 65_536;

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
