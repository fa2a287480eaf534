import type { z } from "zod";
import { parseConfig, type FlagTable } from "@pangea/kit";
import { ORCHESTRATOR_FLAGS, orchestratorConfigSchema } from "@pangea/service-flags";

/** Declared in @pangea/service-flags, which `pangea run` reads too. */
export const FLAGS: FlagTable = ORCHESTRATOR_FLAGS;

export type OrchestratorConfig = z.infer<typeof orchestratorConfigSchema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<OrchestratorConfig> | null {
  return parseConfig(orchestratorConfigSchema, FLAGS, argv, env);
}
