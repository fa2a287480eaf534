export { validateSpec, interactionWidth, denseParams, paramSize, initDenseParams, ModelErrors } from "./spec.js";
export type { DlrmSpec, DenseParam } from "./spec.js";
export { aucAndLogloss } from "./metrics.js";
export { StreamingAuc } from "./streaming-auc.js";
export { EXPORT_FORMAT, EXPORT_SCHEMA_VERSION, SUPPORTED_EXPORT_SCHEMA_VERSIONS } from "./export-format.js";
export type { ExportManifest } from "./export-format.js";
