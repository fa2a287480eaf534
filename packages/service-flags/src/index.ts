// Each service's flag declarations, in a package because `pangea run` passes
// them through and services must not import one another.
export { ORCHESTRATOR_FLAGS, isMultiTaskModel, orchestratorConfigSchema, orchestratorSchema, discoveredSyncModel, SPARSE_OPTIMIZERS, DENSE_OPTIMIZERS, TRAINING_MODES, BEST_METRICS } from "./orchestrator.js";
export type { SparseOptimizerName, DenseOptimizerName, TrainingMode, BestMetric } from "./orchestrator.js";
export { COMPUTE_FLAGS, computeSchema, DEFAULT_MAX_MEMORY_MB, DEFAULT_MAX_STREAM_MB, DEFAULT_MAX_BATCH_STREAMS, DEFAULT_MAX_STREAMS_PER_RANK } from "./compute.js";
export { TRAINER_FLAGS, trainerSchema } from "./trainer.js";
export { SLOT_CONFIG_ERRORS, SlotConfigErrors, checkSlotDims, readSlotConfig, type SlotConfigFile, type SlotSettings } from "./slot-config.js";
