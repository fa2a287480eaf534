// The module, not the package's index: parse workers load the hashing code without zod and pino.
import { defineErrors } from "@pangea/kit/errors";

export const FeatureErrors = defineErrors({
  FEATURES_ERR_BAD_LIST: { status: "INVALID_ARGUMENT", exit: 2, description: "a feature list cannot be read or is invalid" },
  FEATURES_ERR_SLOT_RANGE: { status: "INVALID_ARGUMENT", exit: 1, description: "a slot id does not fit the feature id layout" },
});
