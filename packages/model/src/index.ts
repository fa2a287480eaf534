export {
  validateSpec,
  parseModelSpec,
  architectureConfig,
  architectureOf,
  describeArchitecture,
  sameModel,
  modelIdentity,
  specDifference,
  canonical,
  rowWidths,
  uniformRowWidth,
  slotDimsOf,
  MAX_EMBEDDING_DIM,
  denseParams,
  hyperParams,
  paramSize,
  initDenseParams,
  dlrmSpec,
  modelSpecToWire,
  modelSpecFromWire,
  validateTasks,
  MAX_TASKS,
  RESERVED_TASK_NAMES,
} from "./spec.js";
export { ModelErrors } from "./errors.js";
export { architectureFromFlags, dlrmBottomFor, standInShape, MAX_MODEL_CONFIG_BYTES, type ModelFlags } from "./model-flags.js";
export type { ModelSpec, ArchitectureConfig, WireModelSpec } from "./spec.js";
export type { Architecture, DenseParam, ModelShape, ModelInputs, TaskSpec, Loss } from "./architectures/architecture.js";
export { dimsOf, poolingOf, poolingScale, POOLINGS, LOSSES, DEFAULT_TASK, tasksOf, taskCount, taskColumn, type Pooling } from "./architectures/architecture.js";
export type { LinearLayer, Ops } from "./architectures/ops.js";
export { ARCHITECTURES, ARCHITECTURE_NAMES } from "./architectures/registry.js";
export { PlainForward } from "./forward/plain-forward.js";
export { PlainOps, addGated, addGatedOn, matmulBias, type Mat } from "./forward/plain-ops.js";
export { aucAndLogloss, groupedAuc, taskMetrics, type GroupedAuc, type TaskMetrics } from "./metrics.js";
export { StreamingAuc } from "./streaming-auc.js";
export { featureListModelMismatch } from "./feature-list-fit.js";
export { JOB_LOCK_FILE, checkpointsIn, isCheckpoint, isJobDirectory, jobDirectoryIn, manifestFormatOf } from "./checkpoint-places.js";
export { CHECKPOINT_FORMAT, EXPORT_FORMAT, EXPORT_SCHEMA_VERSION, SUPPORTED_EXPORT_SCHEMA_VERSIONS } from "./export-format.js";
export type { ExportManifest } from "./export-format.js";
export { RowLayout } from "./row-layout.js";
export { storedParamsDifference } from "./stored-params.js";
