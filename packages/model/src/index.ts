export { validateSpec, interactionWidth, denseParams, paramSize, initDenseParams, ModelErrors } from "./spec.js";
export type { DlrmSpec, DenseParam } from "./spec.js";
export { aucAndLogloss } from "./metrics.js";
export { StreamingAuc } from "./streaming-auc.js";
