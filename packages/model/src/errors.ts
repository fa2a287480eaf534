import { defineErrors } from "@pangea/kit";

/** The model package's errors: a model configuration that does not hold, an id of a slot the model lacks. */
export const ModelErrors = defineErrors({
  MODEL_ERR_BAD_SPEC: { status: "INVALID_ARGUMENT", exit: 2, description: "the model configuration is inconsistent" },
  MODEL_ERR_UNKNOWN_SLOT: { status: "INVALID_ARGUMENT", exit: 1, description: "an id belongs to a slot the model does not have" },
});
