import { z } from "zod";

/** Layer widths: a list of positive integers. */
export const widths = (what: string) =>
  z.array(z.number({ message: `expected ${what} as a list of positive integers` }).int(`expected ${what} as whole numbers`).positive(`expected ${what} as positive integers`), {
    message: `expected ${what} as a list of positive integers, e.g. [64, 32]`,
  });
