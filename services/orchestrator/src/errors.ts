import { defineErrors } from "@pangea/kit";

export const OrchestratorErrors = defineErrors({
  ORCH_ERR_JOB_NOT_RUNNING: { status: "FAILED_PRECONDITION", exit: 1, description: "the call needs a running job" },
  ORCH_ERR_JOB_ABORTED: { status: "ABORTED", exit: 1, description: "the job failed while the call waited" },
  ORCH_ERR_WRONG_STEP: { status: "FAILED_PRECONDITION", exit: 1, description: "a worker's step does not match the job's step" },
  ORCH_ERR_DUPLICATE_PUSH: { status: "ALREADY_EXISTS", exit: 1, description: "a worker pushed twice for one step" },
  ORCH_ERR_UNKNOWN_WORKER: { status: "NOT_FOUND", exit: 1, description: "the worker id or rank is not registered" },
  ORCH_ERR_CLUSTER_FULL: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "the job already has all the trainers it expects" },
  ORCH_ERR_BAD_GRADIENT: { status: "INVALID_ARGUMENT", exit: 1, description: "a gradient has the wrong shape or a non-finite value" },
  ORCH_ERR_BAD_REGISTRATION: { status: "INVALID_ARGUMENT", exit: 1, description: "a registration is missing a required field" },
  ORCH_ERR_REGISTER_TIMEOUT: { status: "DEADLINE_EXCEEDED", exit: 1, description: "the expected workers did not all register in time" },
  ORCH_ERR_UNKNOWN_SLOT: { status: "INVALID_ARGUMENT", exit: 1, description: "a feature id's slot is not one the job's data declares" },
  ORCH_ERR_BAD_REQUEST: { status: "INVALID_ARGUMENT", exit: 1, description: "a table request is inconsistent (dim, values)" },
  ORCH_ERR_MEMORY_LIMIT: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "the embedding tables reached the configured memory limit" },
  ORCH_ERR_BAD_SLOT_CONFIG: { status: "INVALID_ARGUMENT", exit: 2, description: "the per-slot embedding configuration is invalid" },
  ORCH_ERR_CHECKPOINT_IO: { status: "INTERNAL", exit: 1, description: "a checkpoint could not be written" },
  ORCH_ERR_NOT_A_MEMBER: { status: "FAILED_PRECONDITION", exit: 1, description: "the trainer was declared dead (missed heartbeats) and must register again" },
  ORCH_ERR_NOT_ASSIGNED: { status: "FAILED_PRECONDITION", exit: 1, description: "gradients for a batch the trainer was not given (or no longer holds)" },
  ORCH_ERR_CHECKPOINT_NOT_FOUND: { status: "NOT_FOUND", exit: 1, description: "the checkpoint directory given does not exist" },
  ORCH_ERR_CHECKPOINT_CORRUPT: { status: "DATA_LOSS", exit: 1, description: "a checkpoint is incomplete or fails its checksums" },
});
