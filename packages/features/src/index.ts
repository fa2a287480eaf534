export { FeatureErrors } from "./errors.js";
export {
  V1_MAX_SLOT,
  V1_SLOT_BITS,
  V2_MAX_SLOT,
  V2_SLOT_BITS,
  bigIntToWords,
  jsonIdText,
  jsonIdProblem,
  checkSlot,
  idToBigInt,
  isValidV2,
  slotOfV1,
  slotOfV2,
  stampSlotV2,
  v1HiToV2Hi,
} from "./feature-id.js";
export { hash48, murmur3 } from "./hash.js";
export { hashedIdV2, int64IdV2 } from "./value-id.js";
export { normalizeCount } from "./normalize.js";
export { MAX_IDS_PER_CELL } from "./cell-limit.js";
export { SLOT_KINDS, compileFeatureList, featureListMismatch, loadFeatureList, slotNamesOf, labelValue, targetOutOfRange, MAX_TARGET, tasksOfList, TASK_NAME, RESERVED_TASK_NAMES } from "./feature-list.js";
export type { FeatureList, FeatureListConfig, LabelSpec, SlotKind } from "./feature-list.js";
export { featureInputsMismatch, featureInputsOf, parseFeatureInputs } from "./feature-inputs.js";
export type { FeatureInputs } from "./feature-inputs.js";
export { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, CRITEO_SLOT_BASE, criteoDenseName, criteoFeatureListConfig, criteoLayoutMismatch, criteoSlotName, parseCount } from "./criteo.js";
