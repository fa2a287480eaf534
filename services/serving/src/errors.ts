import { defineErrors } from "@pangea/kit";

export const ServingErrors = defineErrors({
  SERVING_ERR_BAD_EXPORT: { status: "DATA_LOSS", exit: 1, description: "a model version's files are missing, altered or of an unknown format" },
  SERVING_ERR_UNKNOWN_MODEL: { status: "NOT_FOUND", exit: 1, description: "no such model, or no such version loaded" },
  SERVING_ERR_BAD_INPUT: { status: "INVALID_ARGUMENT", exit: 1, description: "a request's inputs have wrong names, types or shapes" },
  SERVING_ERR_OTHER_MODEL: { status: "INVALID_ARGUMENT", exit: 1, description: "a parameter sync update is from another model (architecture, inputs or tasks) than the version served" },
  SERVING_ERR_TOO_LARGE: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "a request is above the configured size" },
  SERVING_ERR_UNAUTHENTICATED: { status: "UNAUTHENTICATED", exit: 1, description: "a REST request without serving's API token (--api-token-file)" },
  SERVING_ERR_PERMISSION_DENIED: { status: "PERMISSION_DENIED", exit: 1, description: "a REST :pin under TLS from a client without an admin certificate (or, where one is set, serving's API token)" },
  SERVING_ERR_ABANDONED: { status: "DEADLINE_EXCEEDED", exit: 1, description: "the caller gave up (its deadline passed, it cancelled or closed the connection) while its request waited: it was not computed" },
  SERVING_ERR_OVERLOADED: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "too many requests are waiting for a forward pass (--max-queued-requests), or too many request bytes are in flight (--max-inflight-request-mb); the request was refused at once (REST 503)" },
  SERVING_ERR_LISTEN: { status: "UNAVAILABLE", exit: 1, description: "the REST server could not listen on its address (--rest-port in use, --host not an address of this machine)" },
  SERVING_ERR_NOT_READY: { status: "UNAVAILABLE", exit: 1, description: "no version of the model is loaded yet" },
});
