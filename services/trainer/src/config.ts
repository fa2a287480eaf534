import type { z } from "zod";
import { parseConfig, type FlagTable } from "@pangea/kit";
import { TRAINER_FLAGS, trainerSchema } from "@pangea/service-flags";

const schema = trainerSchema;

/** Declared in @pangea/service-flags, which `pangea run` reads too. */
export const FLAGS: FlagTable = TRAINER_FLAGS;

export type TrainerConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<TrainerConfig> | null {
  return parseConfig(schema, FLAGS, argv, env);
}
