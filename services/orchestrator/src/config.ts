import type { z } from "zod";
import { parseConfig, type FlagTable } from "@pangea/kit";
import { ORCHESTRATOR_FLAGS, orchestratorSchema } from "@pangea/service-flags";

const schema = orchestratorSchema;

/** Declared in @pangea/service-flags, which `pangea run` reads too. */
export const FLAGS: FlagTable = ORCHESTRATOR_FLAGS;

export type OrchestratorConfig = z.infer<typeof schema>;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<OrchestratorConfig> | null {
  return parseConfig(
    schema
      .refine((c) => c.role !== "shard" || (c.shardIndex !== undefined && (c.coordinator !== undefined || c.discovery !== "static")), {
        message: "--role shard needs --shard-index, and --coordinator unless --discovery finds the orchestrator",
        path: ["role"],
      })
      .refine((c) => c.shardIndex === undefined || c.role === "shard", { message: "numbers a parameter-server shard; give --role shard too", path: ["shardIndex"] })
      .refine((c) => c.role !== "shard" || c.shardIndex === undefined || (c.shardIndex >= 1 && c.shardIndex < c.psShards), {
        message: "expected 1 .. --ps-shards - 1 (shard 0 is the orchestrator)",
        path: ["shardIndex"],
      })
      .refine((c) => !c.freshStartIfUnreadable || c.resume, { message: "applies to --resume (a job's checkpoints none of which can be read); give --resume too", path: ["freshStartIfUnreadable"] })
      .refine((c) => c.heartbeatTimeoutMs > c.heartbeatMs, { message: "must be longer than --heartbeat-ms", path: ["heartbeatTimeoutMs"] })
      .refine((c) => !(c.resume && c.restoreFrom), { message: "--resume continues the job's own checkpoints; do not combine it with --restore-from", path: ["resume"] })
      .refine((c) => c.exportDir === undefined || c.psShards === 1, {
        message: "exports during training need one parameter-server shard (the other shards' rows are written after shard 0's checkpoint); export a sharded checkpoint with pangea export",
        path: ["exportDir"],
      })
      .refine((c) => !c.keepBest || c.evalEverySteps > 0, { message: "needs evaluations to compare: give --eval-every-steps N too", path: ["keepBest"] })
      .refine((c) => c.bestTask === undefined || c.keepBest, { message: "names the task --keep-best compares; give --keep-best too", path: ["bestTask"] })
      .refine((c) => c.bestMetric === undefined || c.keepBest, { message: "names what --keep-best compares; give --keep-best too", path: ["bestMetric"] })
      .refine((c) => c.exportFeatureList === undefined || c.exportDir !== undefined, { message: "is copied into the versions --export-dir writes; give --export-dir too", path: ["exportFeatureList"] }),
    FLAGS,
    argv,
    env,
  );
}
