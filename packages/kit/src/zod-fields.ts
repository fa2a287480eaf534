import { z } from "zod";

/** Reusable config field schemas, so every service validates the same things the same way. */
export const port = z.coerce.number({ message: "expected a port number" }).int().min(0, "expected a port 0..65535").max(65535, "expected a port 0..65535");

export const address = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):\d{1,5}$/, "expected host:port");

export const positiveInt = (what: string) => z.coerce.number({ message: `expected ${what}` }).int(`expected ${what}`).positive(`expected ${what}`);

export const nonNegativeInt = (what: string) => z.coerce.number({ message: `expected ${what}` }).int(`expected ${what}`).min(0, `expected ${what}`);

export const intList = (what: string) =>
  z
    .string()
    .regex(/^\d+(,\d+)*$/, `expected ${what} as comma-separated positive integers, e.g. 64,16`)
    .transform((s) => s.split(",").map(Number))
    .refine((xs) => xs.every((x) => x > 0), `expected ${what} as positive integers`);
