import type { z } from "zod";
import { parseConfig, type FlagTable } from "@pangea/kit";
import { COMPUTE_FLAGS, computeSchema } from "@pangea/service-flags";

const schema = computeSchema;

/** Declared in @pangea/service-flags, which `pangea run` reads too. */
export const FLAGS: FlagTable = COMPUTE_FLAGS;

export type ComputeConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<ComputeConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
