import type { JobSpec, SourceInfo__Output } from "@pangea/schema";
import { modelSpecToWire, type ModelSpec } from "@pangea/model";
import type { JobConfig } from "./job-config.js";

/** Where the job's workers find each other: compute, and every parameter-server shard (shard 0 first). */
export interface JobPlaces {
  source: SourceInfo__Output;
  computeAddress: string;
  psShards: string[];
}

/** The JobSpec sent to every worker when the job starts (and to each that joins later). */
export function buildJobSpec(config: JobConfig, spec: ModelSpec, places: JobPlaces, batchesPerStep: number, resumedFromStep: number): JobSpec {
  return {
    jobId: config.jobId,
    model: modelSpecToWire(spec, places.source.slotIds),
    batchSize: config.batchSize,
    steps: config.steps,
    worldSize: batchesPerStep,
    computeAddress: places.computeAddress,
    seed: config.seed,
    evalBatchSize: config.evalBatchSize,
    gradientCompression: config.gradientCompression,
    psShards: places.psShards,
    mode: config.mode,
    batchesPerStep,
    maxStaleness: config.maxStaleness,
    heartbeatMs: config.heartbeatMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    checkpointEverySteps: config.checkpointEverySteps,
    keepCheckpoints: config.keepCheckpoints,
    resumedFromStep,
    servingSync: [...(config.servingSync ?? [])],
    syncIntervalMs: Math.round((config.syncIntervalSeconds ?? 10) * 1000),
    denseSyncIntervalMs: Math.round((config.denseSyncIntervalSeconds ?? 60) * 1000),
    // Compute checked the feature list's group slot is one of its slots.
    hasGroupSlot: places.source.hasGroupSlot && places.source.slotIds.includes(places.source.groupSlot),
    groupSlot: places.source.groupSlot,
  };
}
