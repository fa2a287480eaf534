import { defineErrors } from "@pangea/kit";

export const SchemaErrors = defineErrors({
  SCHEMA_ERR_BAD_TENSOR: { status: "INVALID_ARGUMENT", exit: 1, description: "a tensor's dtype, shape or byte length is inconsistent" },
  SCHEMA_ERR_BAD_FILE: { status: "INVALID_ARGUMENT", exit: 1, description: "a dense exchange file is missing, not a regular file, of the wrong size, or was recycled while it was read" },
  SCHEMA_ERR_BAD_MESSAGE: { status: "INVALID_ARGUMENT", exit: 1, description: "a hot-path message cannot be decoded or carries the wrong payload" },
});
